// FashionVQA: an answer-balanced VQA task on real product photos. Each scene places 2..4
// Fashion-MNIST items (Zalando, 28x28 grayscale, 10 classes; Debian package
// dataset-fashion-mnist) in the cells of a 2x2 grid on a light product-shot background.
// Train scenes use only the 60,000 training photos, val and test scenes only the 10,000 test
// photos (val and test use disjoint halves of those). Format and balance method are
// documented in docs/data.md. Images are (image_size, image_size, 3) RGB8 PNGs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ressa/data/generator.h"
#include "ressa/data/idx.h"
#include "ressa/data/image.h"

namespace ressa::data {

struct FashionOptions {
  uint64_t seed = 0;                          // master seed; each split derives its own
  int train = 20000, val = 500, test = 1000;  // examples per split (>= 0)
  int image_size = 64;                        // square side in pixels, 32..1024
  int threads = 0;                            // worker threads; 0 = all cores (output identical)
  std::string source_dir = "/usr/share/datasets/fashion-mnist";  // Fashion-MNIST IDX files
  // As in ShapesOptions: for every training image also a "describe" example (the class in each
  // cell in reading order, "empty" for a free cell: describe_fashion_scene) and up to
  // train_questions questions of other families about the same scene
  // (fashion_scene_questions). Val and test keep one balanced question per image.
  bool train_captions = true;
  int train_questions = 3;
};

// Writes out_dir/{train,val,test}.jsonl and out_dir/images/<split>_<index:06d>.png, creating
// directories as needed; each JSONL line lists its photos in "sources" ("train:<index>" or
// "test:<index>": index into the Fashion-MNIST training or test file). Output is a pure
// function of (seed, train, val, test, image_size) and the Fashion-MNIST files, for any
// thread count. Throws std::runtime_error (naming the file and the apt-get command) when the
// Fashion-MNIST files are missing or corrupt.
void generate_fashion(const std::string& out_dir, const FashionOptions& opt);

// Every word that can occur in a FashionVQA question or answer (including "?"), sorted.
std::vector<std::string> fashion_words();

// ---- lower-level pieces (used by generate_fashion; exposed for tests and tools) ----

inline constexpr int kFashionNumClasses = 10, kFashionNumCells = 4, kFashionNumGroups = 3;
// Fashion-MNIST label order; one word each ("tshirt" = T-shirt/top, "boot" = ankle boot).
inline constexpr const char* kFashionClassNames[kFashionNumClasses] = {
    "tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"};
// Groups: tops (tshirt, pullover, shirt, coat), shoes (sandal, sneaker, boot), others
// (trouser, dress, bag).
inline constexpr const char* kFashionGroupNames[kFashionNumGroups] = {"tops", "shoes", "others"};
inline constexpr int kFashionClassGroup[kFashionNumClasses] = {0, 2, 0, 2, 0, 1, 0, 1, 2, 1};
// Grid cells in reading order: 0 top left, 1 top right, 2 bottom left, 3 bottom right.
inline constexpr const char* kFashionCellNames[kFashionNumCells] = {"top left", "top right",
                                                                    "bottom left", "bottom right"};

// The 6 question families in a fixed order: class, group, count, exist, relation, side.
const std::vector<std::string>& fashion_families();
// The possible answers of a family (index = answer index), e.g. count: zero..four.
const std::vector<std::string>& fashion_answers(const std::string& family);

// Fashion-MNIST photos of one file pair, indexed by class.
struct FashionPhotos {
  IdxImages images;                   // (count, 28, 28)
  std::vector<uint8_t> labels;        // (count,), each < 10
  std::vector<std::vector<int>> by_class;  // photo indices of each class, ascending
};

// Loads source_dir/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (train = true: the
// 60,000 training photos). Checks counts match, 28x28 images, labels < 10 and at least one
// photo per class. A missing file gives std::runtime_error naming it and saying
// "apt-get install dataset-fashion-mnist".
FashionPhotos load_fashion_mnist(const std::string& source_dir, bool train);

// One item: a photo drawn in a grid cell. Its pixels lie in the box [x, x + size) x
// [y, y + size), which lies inside the cell, so items never overlap.
struct FashionItem {
  int cls = 0;    // class index into kFashionClassNames
  int cell = 0;   // 0..3, see kFashionCellNames
  int photo = 0;  // index into the photo file (set by make_fashion_scene from the pool)
  int x = 0, y = 0, size = 0;  // top-left corner and side in pixels (x right, y down)
  int color[3] = {0, 0, 0};    // product colour (RGB) the grayscale photo is tinted with
};

struct FashionScene {
  std::vector<FashionItem> items;  // 2..4 items in distinct cells, sorted by cell
  std::string family, question, answer;
};

// Builds a scene whose correct answer is fashion_answers(family)[answer], drawing every
// other choice (named class, cells, distractors, photos, placement, colours) from `seed`.
// `by_class[c]` lists the photo indices of class c to draw from (each non-empty).
FashionScene make_fashion_scene(uint64_t seed, int family, int answer, int image_size,
                                const std::vector<std::vector<int>>& by_class);

// Renders a scene: light, slightly tinted background with a faint gradient and noise; each
// item is its photo resized (integer bilinear) to size x size and used as coverage for its
// product colour (Fashion-MNIST stores items bright on black, so dark items on a light
// background, as in the original product shots). `images` holds the scene's photos.
Image render_fashion(const FashionScene& scene, const IdxImages& images, int image_size,
                     uint64_t seed);

// Up to k questions of families other than scene.family about the same scene, each family at
// most once (in an order drawn from `seed`), answers read off the items: class / group of an
// occupied cell, count of a target, existence of a class (yes or no with equal odds), the class
// next to a class that occurs once, the side of such a class. A family with no askable question
// in this scene is skipped.
std::vector<FashionScene> fashion_scene_questions(const FashionScene& scene, uint64_t seed, int k);

// The "describe" answer: the class in each cell in reading order, "empty" for a free cell,
// e.g. "tshirt empty sneaker bag".
std::string describe_fashion_scene(const FashionScene& scene);
inline constexpr const char* kFashionDescribeQuestion = "what is there ?";

}  // namespace ressa::data
