// FashionVQA generator. Balance, as in ShapesVQA: each split cycles through (family, answer)
// pairs so families are equally frequent and answers uniform within a family, then shuffles;
// the scene is built to make the chosen answer true, and everything the question names (the
// class, cell, direction, count target) is drawn independently of the answer, so the question
// text alone predicts nothing above chance.
// Determinism: all sampling goes through data/generator.h's Rng, and rendering (resize
// included) is integer-only.
#include "ressa/data/fashion.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "ressa/core/error.h"
#include "ressa/data/dataset.h"
#include "ressa/data/generator.h"

namespace ressa::data {

namespace {

enum Family { kClass, kGroup, kCount, kExist, kRelation, kSide, kNumFamilies };

// Count targets: the plural the question uses and the classes it covers.
struct CountTarget {
  const char* plural;
  bool (*covers)(int cls);
};
const CountTarget kCountTargets[] = {
    {"tops", [](int c) { return kFashionClassGroup[c] == 0; }},
    {"shoes", [](int c) { return kFashionClassGroup[c] == 1; }},
    {"bags", [](int c) { return c == 8; }},
    {"trousers", [](int c) { return c == 1; }},
    {"dresses", [](int c) { return c == 3; }},
};
constexpr int kNumCountTargets = int(sizeof kCountTargets / sizeof kCountTargets[0]);

// Relation directions: the phrase and, for the named item's cell, the cell the answer is in
// (-1 when that cell has no neighbour in this direction).
const char* const kDirPhrase[4] = {"left of", "right of", "above", "below"};
int neighbour(int cell, int dir) {
  const int row = cell / 2, col = cell % 2;
  switch (dir) {
    case 0: return col == 1 ? cell - 1 : -1;
    case 1: return col == 0 ? cell + 1 : -1;
    case 2: return row == 1 ? cell - 2 : -1;
    default: return row == 0 ? cell + 2 : -1;
  }
}

// Integer bilinear resize of one grayscale (rows, cols) photo to (s, s), half-pixel centres
// (align_corners = false), edges clamped, rounded to nearest. Returns (s, s) row-major.
std::vector<uint8_t> resize_gray(const uint8_t* src, int rows, int cols, int s) {
  // Source coordinate of output index i, in units of 1 / (2s) source pixels:
  // p = (2i + 1) * n - s; index p / (2s), weight of the next pixel p % (2s).
  struct Tap {
    int i0, i1, w1;
  };
  auto taps = [s](int n) {
    std::vector<Tap> t(s);
    for (int i = 0; i < s; ++i) {
      const int p = std::max(0, (2 * i + 1) * n - s);
      const int i0 = std::min(p / (2 * s), n - 1);
      t[i] = {i0, std::min(i0 + 1, n - 1), p / (2 * s) >= n - 1 ? 0 : p % (2 * s)};
    }
    return t;
  };
  const auto ty = taps(rows), tx = taps(cols);
  const int64_t d = 2 * int64_t(s), dd = d * d;
  std::vector<uint8_t> out(size_t(s) * s);
  for (int y = 0; y < s; ++y)
    for (int x = 0; x < s; ++x) {
      const Tap a = ty[y], b = tx[x];
      auto v = [&](int r, int c) { return int64_t(src[size_t(r) * cols + c]); };
      const int64_t top = v(a.i0, b.i0) * (d - b.w1) + v(a.i0, b.i1) * b.w1;
      const int64_t bot = v(a.i1, b.i0) * (d - b.w1) + v(a.i1, b.i1) * b.w1;
      out[size_t(y) * s + x] = uint8_t((top * (d - a.w1) + bot * a.w1 + dd / 2) / dd);
    }
  return out;
}

// Index pool of one split: by_class restricted to photos whose index satisfies `keep`.
std::vector<std::vector<int>> pool(const FashionPhotos& p, const std::function<bool(int)>& keep) {
  std::vector<std::vector<int>> out(kFashionNumClasses);
  for (int c = 0; c < kFashionNumClasses; ++c)
    for (int i : p.by_class[c])
      if (keep(i)) out[c].push_back(i);
  return out;
}

}  // namespace

const std::vector<std::string>& fashion_families() {
  static const std::vector<std::string> f = {"class", "group", "count", "exist", "relation", "side"};
  return f;
}

const std::vector<std::string>& fashion_answers(const std::string& family) {
  static const std::vector<std::string> classes(kFashionClassNames, kFashionClassNames + 10);
  static const std::vector<std::string> groups(kFashionGroupNames, kFashionGroupNames + 3);
  static const std::vector<std::string> count = {"zero", "one", "two", "three", "four"};
  static const std::vector<std::string> yes_no = {"yes", "no"};
  static const std::vector<std::string> sides = {"left", "right", "top", "bottom"};
  const std::vector<std::string>* table[kNumFamilies] = {&classes, &groups,  &count,
                                                         &yes_no,  &classes, &sides};
  const auto& fams = fashion_families();
  auto it = std::find(fams.begin(), fams.end(), family);
  RESSA_CHECK_ARG(it != fams.end(), "[fashion_answers] unknown family '", family, "'");
  return *table[it - fams.begin()];
}

std::vector<std::string> fashion_words() {
  std::vector<std::string> w = {"?",    "a",     "above", "are",  "at",    "belong", "below",
                                "does", "group", "how",   "is",   "item",  "many",   "of",
                                "on",   "or",    "the",   "there", "to",   "what",   "which"};
  for (const auto& t : kCountTargets) w.push_back(t.plural);
  for (const auto& f : fashion_families())
    for (const auto& a : fashion_answers(f)) w.push_back(a);  // classes, groups, left, ...
  std::sort(w.begin(), w.end());
  w.erase(std::unique(w.begin(), w.end()), w.end());
  return w;
}

FashionPhotos load_fashion_mnist(const std::string& source_dir, bool train) {
  namespace fs = std::filesystem;
  const std::string prefix = train ? "train" : "t10k";
  auto locate = [&](const std::string& stem) {
    const fs::path gz = fs::path(source_dir) / (stem + ".gz"), raw = fs::path(source_dir) / stem;
    std::error_code ec;
    if (fs::is_regular_file(gz, ec)) return gz.string();
    if (fs::is_regular_file(raw, ec)) return raw.string();
    fail("[load_fashion_mnist] ", gz.string(),
         ": no such file (nor uncompressed); Fashion-MNIST is packaged by Debian: "
         "apt-get install dataset-fashion-mnist (or point source_dir at a folder holding "
         "the IDX files)");
  };
  const std::string images_path = locate(prefix + "-images-idx3-ubyte");
  const std::string labels_path = locate(prefix + "-labels-idx1-ubyte");
  IdxDataset ds = read_idx_dataset(images_path, labels_path);
  RESSA_CHECK(ds.images.rows == 28 && ds.images.cols == 28, "[load_fashion_mnist] ", images_path,
              ": images are ", ds.images.rows, "x", ds.images.cols, ", expected 28x28");
  FashionPhotos p;
  p.by_class.resize(kFashionNumClasses);
  for (size_t i = 0; i < ds.labels.size(); ++i) {
    RESSA_CHECK(ds.labels[i] < kFashionNumClasses, "[load_fashion_mnist] ", labels_path,
                ": label ", int(ds.labels[i]), " at index ", i, " outside 0..9");
    p.by_class[ds.labels[i]].push_back(int(i));
  }
  for (int c = 0; c < kFashionNumClasses; ++c)
    RESSA_CHECK(!p.by_class[c].empty(), "[load_fashion_mnist] ", labels_path, ": no photo of class ",
                c, " (", kFashionClassNames[c], ")");
  p.images = std::move(ds.images);
  p.labels = std::move(ds.labels);
  return p;
}

FashionScene make_fashion_scene(uint64_t seed, int family, int answer, int image_size,
                                const std::vector<std::vector<int>>& by_class) {
  RESSA_CHECK_ARG(family >= 0 && family < kNumFamilies, "[make_fashion_scene] family ", family,
                  " outside 0..", kNumFamilies - 1);
  const auto& answers = fashion_answers(fashion_families()[family]);
  RESSA_CHECK_ARG(answer >= 0 && answer < int(answers.size()), "[make_fashion_scene] answer ",
                  answer, " outside 0..", answers.size() - 1);
  RESSA_CHECK_ARG(image_size >= 32 && image_size <= 1024, "[make_fashion_scene] image_size ",
                  image_size, " outside 32..1024");
  RESSA_CHECK_ARG(by_class.size() == size_t(kFashionNumClasses), "[make_fashion_scene] by_class has ",
                  by_class.size(), " classes, expected 10");
  for (int c = 0; c < kFashionNumClasses; ++c)
    RESSA_CHECK_ARG(!by_class[c].empty(), "[make_fashion_scene] no photo of class ", c, " (",
                    kFashionClassNames[c], ")");
  Rng rng(seed);
  FashionScene sc;
  sc.family = fashion_families()[family];
  sc.answer = answers[answer];

  std::vector<FashionItem> items;  // the items the question is about, then the others
  std::vector<int> free_cells = {0, 1, 2, 3};
  auto add = [&](int cls, int cell) {
    free_cells.erase(std::find(free_cells.begin(), free_cells.end(), cell));
    FashionItem it;
    it.cls = cls, it.cell = cell;
    items.push_back(it);
  };
  auto random_free_cell = [&] { return free_cells[rng.uniform(0, int(free_cells.size()) - 1)]; };
  auto class_where = [&](const std::function<bool(int)>& ok) {  // uniform over allowed classes
    std::vector<int> allowed;
    for (int c = 0; c < kFashionNumClasses; ++c)
      if (ok(c)) allowed.push_back(c);
    return allowed[rng.uniform(0, int(allowed.size()) - 1)];
  };
  std::function<bool(int)> other_ok = [](int) { return true; };  // classes of the other items
  int min_items = 2;
  switch (family) {
    case kClass: {  // the item in a named cell
      const int cell = rng.uniform(0, kFashionNumCells - 1);
      add(answer, cell);
      sc.question = std::string("what is at the ") + kFashionCellNames[cell] + " ?";
      break;
    }
    case kGroup: {
      const int cell = rng.uniform(0, kFashionNumCells - 1);
      add(class_where([answer](int c) { return kFashionClassGroup[c] == answer; }), cell);
      sc.question = std::string("which group does the item at the ") + kFashionCellNames[cell] +
                    " belong to ?";
      break;
    }
    case kCount: {  // answer = number of items the target covers
      const CountTarget& t = kCountTargets[rng.uniform(0, kNumCountTargets - 1)];
      for (int i = 0; i < answer; ++i) add(class_where(t.covers), random_free_cell());
      other_ok = [&t](int c) { return !t.covers(c); };
      sc.question = std::string("how many ") + t.plural + " are there ?";
      break;
    }
    case kExist: {
      const int x = rng.uniform(0, kFashionNumClasses - 1);
      if (answer == 0)
        add(x, random_free_cell());
      else
        other_ok = [x](int c) { return c != x; };
      sc.question = std::string("is there a ") + kFashionClassNames[x] + " ?";
      break;
    }
    case kRelation: {  // "what is <dir> the X ?": X unique, answer in the neighbouring cell
      const int x = rng.uniform_except(0, kFashionNumClasses - 1, answer);
      const int dir = rng.uniform(0, 3);
      std::vector<int> cells;
      for (int c = 0; c < kFashionNumCells; ++c)
        if (neighbour(c, dir) >= 0) cells.push_back(c);
      const int xc = cells[rng.uniform(0, int(cells.size()) - 1)];
      add(x, xc);
      add(answer, neighbour(xc, dir));
      other_ok = [x](int c) { return c != x; };
      sc.question = std::string("what is ") + kDirPhrase[dir] + " the " + kFashionClassNames[x] + " ?";
      break;
    }
    default: {  // kSide: answer left/right/top/bottom = the column or row of the unique X
      const int x = rng.uniform(0, kFashionNumClasses - 1);
      std::vector<int> cells;
      for (int c = 0; c < kFashionNumCells; ++c) {
        const bool ok = answer == 0 ? c % 2 == 0 : answer == 1 ? c % 2 == 1 : answer == 2 ? c / 2 == 0 : c / 2 == 1;
        if (ok) cells.push_back(c);
      }
      add(x, cells[rng.uniform(0, 1)]);
      other_ok = [x](int c) { return c != x; };
      sc.question = std::string("is the ") + kFashionClassNames[x] +
                    (answer < 2 ? " on the left or the right ?" : " at the top or the bottom ?");
    }
  }
  const int n = rng.uniform(std::max<int>(min_items, int(items.size())), kFashionNumCells);
  while (int(items.size()) < n) add(class_where(other_ok), random_free_cell());

  // Photo, placement inside the cell, and product colour (dark enough to stand out from the
  // light background). None of these depends on the answer.
  const int half = image_size / 2;
  const int min_size = std::max(8, (half * 11 + 8) / 16);  // 22 px of a 32 px cell
  for (FashionItem& it : items) {
    const auto& photos = by_class[it.cls];
    it.photo = photos[rng.uniform(0, int(photos.size()) - 1)];
    it.size = rng.uniform(min_size, half);
    it.x = (it.cell % 2) * half + rng.uniform(0, half - it.size);
    it.y = (it.cell / 2) * half + rng.uniform(0, half - it.size);
    do {
      for (int& c : it.color) c = rng.uniform(10, 170);
    } while (it.color[0] + it.color[1] + it.color[2] > 330);
  }
  std::sort(items.begin(), items.end(),
            [](const FashionItem& a, const FashionItem& b) { return a.cell < b.cell; });
  sc.items = std::move(items);
  return sc;
}

std::vector<FashionScene> fashion_scene_questions(const FashionScene& scene, uint64_t seed, int k) {
  RESSA_CHECK_ARG(k >= 0, "[fashion_scene_questions] k must be >= 0, got ", k);
  const auto& items = scene.items;
  RESSA_CHECK_ARG(!items.empty(), "[fashion_scene_questions] scene has no items");
  Rng rng(seed);
  auto pick = [&](int n) { return rng.uniform(0, n - 1); };
  int at_cell[kFashionNumCells] = {-1, -1, -1, -1};  // item index per cell
  int count_of[kFashionNumClasses] = {};
  for (int i = 0; i < int(items.size()); ++i) at_cell[items[i].cell] = i, ++count_of[items[i].cls];
  std::vector<int> unique;  // items whose class occurs once
  for (int i = 0; i < int(items.size()); ++i)
    if (count_of[items[i].cls] == 1) unique.push_back(i);

  const std::vector<int> fams = other_families_shuffled(fashion_families(), scene.family, rng);
  std::vector<FashionScene> out;
  for (int f : fams) {
    if (int(out.size()) >= k) break;
    FashionScene q;
    q.family = fashion_families()[f];
    switch (f) {
      case kClass:
      case kGroup: {
        const FashionItem& it = items[size_t(pick(int(items.size())))];
        q.question = f == kClass ? std::string("what is at the ") + kFashionCellNames[it.cell] + " ?"
                                 : std::string("which group does the item at the ") +
                                       kFashionCellNames[it.cell] + " belong to ?";
        q.answer = f == kClass ? kFashionClassNames[it.cls] : kFashionGroupNames[kFashionClassGroup[it.cls]];
        break;
      }
      case kCount: {
        const CountTarget& t = kCountTargets[pick(kNumCountTargets)];
        int n = 0;
        for (const FashionItem& it : items) n += t.covers(it.cls);
        q.question = std::string("how many ") + t.plural + " are there ?";
        q.answer = fashion_answers(q.family)[size_t(n)];
        break;
      }
      case kExist: {
        const bool yes = rng.coin();
        std::vector<int> classes;
        for (int c = 0; c < kFashionNumClasses; ++c)
          if ((count_of[c] > 0) == yes) classes.push_back(c);
        const int x = classes[size_t(pick(int(classes.size())))];
        q.question = std::string("is there a ") + kFashionClassNames[x] + " ?";
        q.answer = yes ? "yes" : "no";
        break;
      }
      case kRelation: {  // "what is <dir> the X ?": X occurs once, the neighbouring cell is occupied
        std::vector<std::pair<int, int>> asks;  // (item, direction)
        for (int i : unique)
          for (int dir = 0; dir < 4; ++dir) {
            const int nb = neighbour(items[i].cell, dir);
            if (nb >= 0 && at_cell[nb] >= 0) asks.push_back({i, dir});
          }
        if (asks.empty()) continue;
        const auto [i, dir] = asks[size_t(pick(int(asks.size())))];
        q.question = std::string("what is ") + kDirPhrase[dir] + " the " + kFashionClassNames[items[i].cls] + " ?";
        q.answer = kFashionClassNames[items[at_cell[neighbour(items[i].cell, dir)]].cls];
        break;
      }
      default: {  // kSide: column or row of a class that occurs once
        if (unique.empty()) continue;
        const FashionItem& it = items[size_t(unique[size_t(pick(int(unique.size())))])];
        const bool columns = rng.coin();
        q.question = std::string("is the ") + kFashionClassNames[it.cls] +
                     (columns ? " on the left or the right ?" : " at the top or the bottom ?");
        q.answer = columns ? (it.cell % 2 == 0 ? "left" : "right") : (it.cell / 2 == 0 ? "top" : "bottom");
      }
    }
    out.push_back(std::move(q));
  }
  return out;
}

std::string describe_fashion_scene(const FashionScene& scene) {
  const char* cells[kFashionNumCells] = {"empty", "empty", "empty", "empty"};
  for (const FashionItem& it : scene.items) {
    RESSA_CHECK_ARG(it.cell >= 0 && it.cell < kFashionNumCells && it.cls >= 0 && it.cls < kFashionNumClasses,
                    "[describe_fashion_scene] item with cell ", it.cell, " class ", it.cls);
    cells[it.cell] = kFashionClassNames[it.cls];
  }
  return std::string(cells[0]) + " " + cells[1] + " " + cells[2] + " " + cells[3];
}

Image render_fashion(const FashionScene& scene, const IdxImages& images, int image_size,
                     uint64_t seed) {
  RESSA_CHECK_ARG(image_size >= 32 && image_size <= 1024, "[render_fashion] image_size ",
                  image_size, " outside 32..1024");
  const int S = image_size;
  Rng rng(seed);
  Noise noise(rng);
  // Background: light warm-or-cool grey (a product shot's backdrop), a gradient of up to +-10
  // per axis, +-5 noise.
  Image img = render_backdrop(S, Backdrop{200, 240, 8, 20, 5}, rng, noise);
  auto at = [&](int x, int y, int c) -> uint8_t& { return img.rgb[(size_t(y) * S + x) * 3 + c]; };
  // Items: the photo's intensity v (0 = background, 255 = item) is the coverage of the
  // product colour, so the photo's texture shows as shading; +-6 noise on the colour.
  for (const FashionItem& it : scene.items) {
    RESSA_CHECK_ARG(it.photo >= 0 && it.photo < images.count, "[render_fashion] photo index ",
                    it.photo, " outside 0..", images.count - 1);
    RESSA_CHECK_ARG(it.size > 0 && it.x >= 0 && it.y >= 0 && it.x + it.size <= S &&
                        it.y + it.size <= S,
                    "[render_fashion] item box (", it.x, ", ", it.y, ", size ", it.size,
                    ") outside the ", S, "x", S, " image");
    const std::vector<uint8_t> cover =
        resize_gray(images.image(it.photo), images.rows, images.cols, it.size);
    for (int y = 0; y < it.size; ++y)
      for (int x = 0; x < it.size; ++x) {
        const int v = cover[size_t(y) * it.size + x];
        if (v == 0) continue;
        for (int c = 0; c < 3; ++c) {
          uint8_t& p = at(it.x + x, it.y + y, c);
          const int col = it.color[c] + noise(6);
          p = uint8_t(std::clamp(p + ((col - p) * v) / 255, 0, 255));
        }
      }
  }
  return img;
}

void generate_fashion(const std::string& out_dir, const FashionOptions& opt) {
  check_split_options("generate_fashion", opt.train, opt.val, opt.test, opt.image_size, opt.threads,
                      opt.train_questions, kNumFamilies);
  // Load the photos first: a missing package fails before anything is written.
  FashionPhotos train_photos, test_photos;
  if (opt.train > 0) train_photos = load_fashion_mnist(opt.source_dir, true);
  if (opt.val > 0 || opt.test > 0) test_photos = load_fashion_mnist(opt.source_dir, false);
  // Photo pools: train uses the training file; val the even-indexed and test the odd-indexed
  // photos of the test file, so val and test never share a photo either.
  const int sizes[3] = {opt.train, opt.val, opt.test};
  std::vector<std::vector<int>> by_class[3];
  for (int si = 0; si < 3; ++si) {
    if (sizes[si] == 0) continue;
    by_class[si] = si == 0   ? train_photos.by_class
                   : si == 1 ? pool(test_photos, [](int i) { return i % 2 == 0; })
                             : pool(test_photos, [](int i) { return i % 2 == 1; });
    for (int c = 0; c < kFashionNumClasses; ++c)
      RESSA_CHECK(!by_class[si][c].empty(), "[generate_fashion] no ", si == 0 ? "train" : si == 1 ? "val" : "test",
                  " photo of class ", kFashionClassNames[c]);
  }
  SplitPlan plan;
  plan.fn = "generate_fashion";
  plan.seed = opt.seed, plan.salt = 0xFA5410Full;
  plan.sizes[0] = opt.train, plan.sizes[1] = opt.val, plan.sizes[2] = opt.test;
  plan.threads = opt.threads;
  for (const std::string& f : fashion_families()) plan.answers_per_family.push_back(int(fashion_answers(f).size()));
  plan.train_captions = opt.train_captions, plan.train_questions = opt.train_questions;
  plan.describe_question = kFashionDescribeQuestion;
  write_splits(out_dir, plan, [&](const ExampleRequest& r) {
    const FashionPhotos& photos = r.split == 0 ? train_photos : test_photos;
    FashionScene sc = make_fashion_scene(r.seed, r.family, r.answer, opt.image_size, by_class[r.split]);
    GeneratedExample g;
    g.image = render_fashion(sc, photos.images, opt.image_size, splitmix64(r.seed ^ 0xC0105ull));
    for (const FashionItem& it : sc.items)
      g.sources.push_back((r.split == 0 ? "train:" : "test:") + std::to_string(it.photo));
    if (r.caption) g.caption = describe_fashion_scene(sc);
    if (r.extra > 0)
      for (FashionScene& q : fashion_scene_questions(sc, splitmix64(r.seed ^ 0x9E57ull), r.extra))
        g.extra.push_back({std::move(q.family), std::move(q.question), std::move(q.answer)});
    g.question = std::move(sc.question);
    g.answer = std::move(sc.answer);
    g.family = std::move(sc.family);
    return g;
  });
}

}  // namespace ressa::data
