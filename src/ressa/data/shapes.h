// ShapesVQA: a synthetic, answer-balanced VQA task (coloured shapes on a noisy background)
// small enough to train a tiny LLaVA-style model on a CPU. Format and balance method are
// documented in docs/data.md. Images are (image_size, image_size, 3) RGB8 PNGs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ressa/data/generator.h"
#include "ressa/data/image.h"

namespace ressa::data {

struct ShapesOptions {
  uint64_t seed = 0;                          // master seed; each split derives its own
  int train = 20000, val = 500, test = 1000;  // examples per split (>= 0)
  int image_size = 64;                        // square side in pixels, 32..1024
  int threads = 0;                            // worker threads; 0 = all cores (output identical)
  // Also write, for every training image, a "describe" example ("what is there ?" -> the objects
  // left to right, e.g. "small red circle and large blue square"): dense image-grounded
  // supervision, like the caption data of LLaVA's alignment stage. Val and test never have them.
  bool train_captions = true;
  // Also ask, for every training image, up to this many more questions of other families about
  // the same scene (answers read off the scene; see scene_questions). With `ressa train`'s
  // packing (all questions of an image in one sequence, like LLaVA's multi-turn data) each
  // image then supervises several families at the cost of one vision pass. Val and test keep
  // one balanced question per image.
  int train_questions = 3;
};

// Writes out_dir/{train,val,test}.jsonl and out_dir/images/<split>_<index:06d>.png, creating
// directories as needed. Output is a pure function of (seed, train, val, test, image_size):
// byte-identical across runs, thread counts and standard libraries.
void generate_shapes(const std::string& out_dir, const ShapesOptions& opt);

// Every word that can occur in a ShapesVQA question or answer (including "?"), sorted.
std::vector<std::string> shapes_words();

// ---- lower-level pieces (used by generate_shapes; exposed for tests and tools) ----

inline constexpr int kShapesNumShapes = 4, kShapesNumColors = 6, kShapesMaxObjects = 4;
inline constexpr const char* kShapesShapeNames[kShapesNumShapes] = {"circle", "square", "triangle",
                                                                    "cross"};
inline constexpr const char* kShapesColorNames[kShapesNumColors] = {"red",    "green",  "blue",
                                                                    "yellow", "purple", "cyan"};

// The 7 question families in a fixed order: color, shape, count, exist, position, size,
// relation.
const std::vector<std::string>& shapes_families();
// The possible answers of a family (index = answer index), e.g. count: zero..four.
const std::vector<std::string>& shapes_answers(const std::string& family);

// One object. Its pixels lie inside the box [cx - r, cx + r) x [cy - r, cy + r); boxes of
// different objects are separated by a gap, so objects never touch.
struct ShapesObject {
  int shape = 0, color = 0;  // indices into kShapesShapeNames / kShapesColorNames
  bool large = false;
  int cx = 0, cy = 0, r = 0;  // centre and half-size in pixels (x right, y down)
};

struct ShapesScene {
  std::vector<ShapesObject> objects;  // 2..4 objects
  std::string family, question, answer;
};

// The "describe" answer of a scene: "<size> <colour> <shape>" per object, left to right (ties:
// top to bottom), joined by "and".
std::string describe_shapes_scene(const ShapesScene& scene);
inline constexpr const char* kShapesDescribeQuestion = "what is there ?";
inline constexpr const char* kShapesDescribeFamily = kDescribeFamily;

// Up to `k` questions of families other than scene.family (in an order drawn from `seed`) that
// the scene answers unambiguously under the same rules as the generator's own questions ("the
// X" names exactly one object; position and relation keep their margins). Families the scene
// cannot support (e.g. no shape occurs exactly once) are skipped. Each result holds only
// family, question and answer.
std::vector<ShapesScene> scene_questions(const ShapesScene& scene, int image_size, uint64_t seed, int k);

// Builds a scene whose correct answer is shapes_answers(family)[answer], drawing every other
// choice (referenced attributes, distractors, positions) from `seed`.
ShapesScene make_shapes_scene(uint64_t seed, int family, int answer, int image_size);

// Renders a scene: noisy tinted grey background with a faint gradient, then the objects
// with per-object colour jitter and per-pixel noise. Returns (image_size, image_size, 3).
Image render_shapes(const ShapesScene& scene, int image_size, uint64_t seed);

}  // namespace ressa::data
