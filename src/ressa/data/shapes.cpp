// ShapesVQA generator. Balance: each split cycles through (family, answer) pairs so families
// are equally frequent and answers uniform within a family, then shuffles; every other choice
// (which shape/colour the question names, distractors, layout) is drawn independently of the
// answer, so the question text alone predicts nothing above chance.
// Determinism: all sampling goes through data/generator.h's Rng, and rendering uses integer
// arithmetic only.
#include "ressa/data/shapes.h"

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

enum Family { kColor, kShape, kCount, kExist, kPosition, kSize, kRelation, kNumFamilies };

const char* const kPlural[kShapesNumShapes] = {"circles", "squares", "triangles", "crosses"};
// Saturated, well-separated hues: every pair differs by >= 100 in some channel, far more than
// the +-15 per-object jitter plus +-8 pixel noise, and none is grey like the background.
// Hues: red 2, yellow 51, green 127, cyan 183, blue 230, purple 281 degrees.
const uint8_t kPalette[kShapesNumColors][3] = {{215, 45, 40},  {40, 165, 55},  {40, 70, 220},
                                               {235, 205, 35}, {145, 55, 185}, {30, 195, 205}};

// Sizes in pixels, scaled from the 64x64 design.
struct Geometry {
  int r_small, r_large;  // half-size of small / large objects (5 / 9 at 64)
  int gap;               // minimum empty pixels between object boxes
  int edge_margin;       // position: nearest edge must beat the next one by this much
  int rel_margin;        // relation: centres must differ in x by at least this much
};

Geometry geometry(int s) {
  auto sc = [s](double v) { return std::max(1, int(std::lround(v * s / 64.0))); };
  return {std::max(3, sc(5)), std::max(5, sc(9)), sc(2), sc(6), sc(8)};
}

// Index of the edge (left, right, top, bottom) nearest the centre, or -1 if the runner-up
// is within `margin` (ambiguous: near a diagonal).
int nearest_edge(const ShapesObject& o, int size, int margin) {
  int d[4] = {o.cx, size - o.cx, o.cy, size - o.cy};
  int best = int(std::min_element(d, d + 4) - d);
  for (int i = 0; i < 4; ++i)
    if (i != best && d[i] - d[best] < margin) return -1;
  return best;
}

bool inside(const ShapesObject& o, int x, int y) {
  // Offsets of the pixel centre from the object centre, in pixels.
  const double fx = x + 0.5 - o.cx, fy = y + 0.5 - o.cy, r = o.r;
  switch (o.shape) {
    case 0:
      return fx * fx + fy * fy <= r * r;  // circle
    case 1:
      return std::abs(fx) <= 0.9 * r && std::abs(fy) <= 0.9 * r;  // square
    case 2:
      return fy <= r && std::abs(fx) <= (fy + r) / 2;  // triangle, apex up
    default: {                                         // cross ("+")
      const double t = std::max(1.0, 0.3 * r);
      return (std::abs(fx) <= t && std::abs(fy) <= r) || (std::abs(fy) <= t && std::abs(fx) <= r);
    }
  }
}

std::string name(const ShapesObject& o) {
  return std::string(kShapesColorNames[o.color]) + " " + kShapesShapeNames[o.shape];
}

}  // namespace

const std::vector<std::string>& shapes_families() {
  static const std::vector<std::string> f = {"color",    "shape", "count",   "exist",
                                             "position", "size",  "relation"};
  return f;
}

const std::vector<std::string>& shapes_answers(const std::string& family) {
  static const std::vector<std::string> colors(kShapesColorNames, kShapesColorNames + 6);
  static const std::vector<std::string> shapes(kShapesShapeNames, kShapesShapeNames + 4);
  static const std::vector<std::string> count = {"zero", "one", "two", "three", "four"};
  static const std::vector<std::string> yes_no = {"yes", "no"};
  static const std::vector<std::string> edges = {"left", "right", "top", "bottom"};
  static const std::vector<std::string> sizes = {"small", "large"};
  const std::vector<std::string>* table[kNumFamilies] = {&colors, &shapes, &count, &yes_no,
                                                         &edges,  &sizes,  &yes_no};
  const auto& fams = shapes_families();
  auto it = std::find(fams.begin(), fams.end(), family);
  RESSA_CHECK_ARG(it != fams.end(), "[shapes_answers] unknown family '", family, "'");
  return *table[it - fams.begin()];
}

std::vector<std::string> shapes_words() {
  std::vector<std::string> w = {"?",  "a",  "and", "are",   "color", "how",   "is",   "many", "object",
                                "of", "or", "shape", "the",   "there", "what", "where"};
  for (int i = 0; i < kShapesNumShapes; ++i)
    w.push_back(kShapesShapeNames[i]), w.push_back(kPlural[i]);
  for (const auto& f : shapes_families())
    for (const auto& a : shapes_answers(f)) w.push_back(a);  // colours, left, small, ...
  std::sort(w.begin(), w.end());
  w.erase(std::unique(w.begin(), w.end()), w.end());
  return w;
}

std::string describe_shapes_scene(const ShapesScene& scene) {
  std::vector<ShapesObject> objs = scene.objects;
  std::stable_sort(objs.begin(), objs.end(), [](const ShapesObject& a, const ShapesObject& b) {
    return a.cx != b.cx ? a.cx < b.cx : a.cy < b.cy;
  });
  std::string out;
  for (const auto& o : objs) {
    if (!out.empty()) out += " and ";
    out += std::string(o.large ? "large " : "small ") + kShapesColorNames[o.color] + " " + kShapesShapeNames[o.shape];
  }
  return out;
}

ShapesScene make_shapes_scene(uint64_t seed, int family, int answer, int image_size) {
  RESSA_CHECK_ARG(family >= 0 && family < kNumFamilies, "[make_shapes_scene] family ", family,
                  " outside 0..", kNumFamilies - 1);
  const auto& answers = shapes_answers(shapes_families()[family]);
  RESSA_CHECK_ARG(answer >= 0 && answer < int(answers.size()), "[make_shapes_scene] answer ",
                  answer, " outside 0..", answers.size() - 1);
  RESSA_CHECK_ARG(image_size >= 32 && image_size <= 1024, "[make_shapes_scene] image_size ",
                  image_size, " outside 32..1024");
  const int S = image_size;
  const Geometry g = geometry(S);
  Rng rng(seed);
  auto random_obj = [&] {
    ShapesObject o;
    o.shape = rng.uniform(0, kShapesNumShapes - 1);
    o.color = rng.uniform(0, kShapesNumColors - 1);
    o.large = rng.coin();
    return o;
  };
  auto same = [](const ShapesObject& a, const ShapesObject& b) {
    return a.shape == b.shape && a.color == b.color;
  };

  ShapesScene sc;
  sc.family = shapes_families()[family];
  sc.answer = answers[answer];
  std::vector<ShapesObject> req;  // objects the question is about, placed first in order
  std::function<bool(const ShapesObject&)> other_ok;  // constraint on the remaining objects
  // Position constraint on req[i] given the objects placed before it.
  std::function<bool(size_t, const ShapesObject&, const std::vector<ShapesObject>&)> pos_ok =
      [](size_t, const ShapesObject&, const std::vector<ShapesObject>&) { return true; };
  ShapesObject t = random_obj();  // the referenced object (when there is one)
  switch (family) {
    case kColor:  // shape unique in the scene, so "the <shape>" is well defined
      t.color = answer;
      req = {t};
      other_ok = [s = t.shape](const ShapesObject& o) { return o.shape != s; };
      sc.question = std::string("what color is the ") + kShapesShapeNames[t.shape] + " ?";
      break;
    case kShape:  // colour unique in the scene
      t.shape = answer;
      req = {t};
      other_ok = [c = t.color](const ShapesObject& o) { return o.color != c; };
      sc.question = std::string("what shape is the ") + kShapesColorNames[t.color] + " object ?";
      break;
    case kCount:
      for (int i = 0; i < answer; ++i) {
        ShapesObject o = random_obj();
        o.shape = t.shape;
        req.push_back(o);
      }
      other_ok = [s = t.shape](const ShapesObject& o) { return o.shape != s; };
      sc.question = std::string("how many ") + kPlural[t.shape] + " are there ?";
      break;
    case kExist: {
      // Both answers come with partial matches (same colour or same shape), so finding the
      // colour and the shape separately is not enough: the model must bind them.
      auto partial = [&](bool keep_color) {
        ShapesObject o = random_obj();
        o.shape = keep_color ? rng.uniform_except(0, kShapesNumShapes - 1, t.shape) : t.shape;
        o.color = keep_color ? t.color : rng.uniform_except(0, kShapesNumColors - 1, t.color);
        return o;
      };
      if (answer == 0)
        req = {t, partial(rng.coin())};
      else
        req = {partial(true), partial(false)};
      other_ok = [&same, t](const ShapesObject& o) { return !same(o, t); };
      sc.question = "is there a " + name(t) + " ?";
      break;
    }
    case kPosition:  // answer = the image edge nearest the object's centre, with a margin
      req = {t};
      other_ok = [&same, t](const ShapesObject& o) { return !same(o, t); };
      pos_ok = [&, answer](size_t, const ShapesObject& o, const std::vector<ShapesObject>&) {
        return nearest_edge(o, S, g.edge_margin) == answer;
      };
      sc.question = "where is the " + name(t) + " ?";
      break;
    case kSize:
      t.large = answer == 1;
      req = {t};
      other_ok = [&same, t](const ShapesObject& o) { return !same(o, t); };
      sc.question = "is the " + name(t) + " small or large ?";
      break;
    default: {  // kRelation: "is A left of B ?" yes: xA + margin <= xB; no: xA >= xB + margin
      ShapesObject b = random_obj();
      while (same(b, t)) b = random_obj();
      req = {t, b};
      other_ok = [&same, t, b](const ShapesObject& o) { return !same(o, t) && !same(o, b); };
      pos_ok = [&, answer](size_t i, const ShapesObject& o, const std::vector<ShapesObject>& p) {
        if (i == 0) return true;
        return answer == 0 ? p[0].cx + g.rel_margin <= o.cx : p[0].cx >= o.cx + g.rel_margin;
      };
      sc.question = "is the " + name(t) + " left of the " + name(b) + " ?";
    }
  }
  const int n = rng.uniform(std::max<int>(2, int(req.size())), kShapesMaxObjects);
  std::vector<ShapesObject> objs = req;
  while (int(objs.size()) < n) {
    ShapesObject o = random_obj();
    if (other_ok(o)) objs.push_back(o);
  }
  for (auto& o : objs) o.r = o.large ? g.r_large : g.r_small;

  // Rejection-sample centres: boxes inside the image (1 px border), separated by g.gap.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::vector<ShapesObject> placed;
    for (size_t i = 0; i < objs.size(); ++i) {
      ShapesObject o = objs[i];
      bool ok = false;
      for (int t2 = 0; t2 < 200 && !ok; ++t2) {
        o.cx = rng.uniform(o.r + 1, S - 1 - o.r);
        o.cy = rng.uniform(o.r + 1, S - 1 - o.r);
        ok = std::all_of(placed.begin(), placed.end(), [&](const ShapesObject& p) {
          return std::abs(o.cx - p.cx) >= o.r + p.r + g.gap ||
                 std::abs(o.cy - p.cy) >= o.r + p.r + g.gap;
        });
        ok = ok && (i >= req.size() || pos_ok(i, o, placed));
      }
      if (!ok) break;
      placed.push_back(o);
    }
    if (placed.size() == objs.size()) {
      sc.objects = std::move(placed);
      return sc;
    }
  }
  fail("[make_shapes_scene] could not place ", objs.size(), " objects in a ", S, "x", S,
       " image (seed ", seed, ")");
}

std::vector<ShapesScene> scene_questions(const ShapesScene& scene, int image_size, uint64_t seed, int k) {
  RESSA_CHECK_ARG(k >= 0, "[scene_questions] k must be >= 0, got ", k);
  const Geometry g = geometry(image_size);
  const auto& objs = scene.objects;
  Rng rng(seed);
  auto pick = [&](const std::vector<int>& v) { return v[size_t(rng.uniform(0, int(v.size()) - 1))]; };
  // Objects whose "<colour> <shape>" name is unique in the scene.
  std::vector<int> named;
  for (int i = 0; i < int(objs.size()); ++i) {
    int same = 0;
    for (const auto& o : objs) same += o.shape == objs[i].shape && o.color == objs[i].color;
    if (same == 1) named.push_back(i);
  }
  const std::vector<int> fams = other_families_shuffled(shapes_families(), scene.family, rng);
  std::vector<ShapesScene> out;
  for (int f : fams) {
    if (int(out.size()) >= k) break;
    ShapesScene q;
    q.family = shapes_families()[f];
    switch (f) {
      case kColor:
      case kShape: {  // "the <shape>" / "the <colour> object" must be unique
        std::vector<int> unique;
        for (int i = 0; i < int(objs.size()); ++i) {
          int n = 0;
          for (const auto& o : objs) n += f == kColor ? o.shape == objs[i].shape : o.color == objs[i].color;
          if (n == 1) unique.push_back(i);
        }
        if (unique.empty()) continue;
        const ShapesObject& o = objs[pick(unique)];
        q.question = f == kColor ? std::string("what color is the ") + kShapesShapeNames[o.shape] + " ?"
                                 : std::string("what shape is the ") + kShapesColorNames[o.color] + " object ?";
        q.answer = f == kColor ? kShapesColorNames[o.color] : kShapesShapeNames[o.shape];
        break;
      }
      case kCount: {
        const int s = rng.uniform(0, kShapesNumShapes - 1);
        int n = 0;
        for (const auto& o : objs) n += o.shape == s;
        q.question = std::string("how many ") + kPlural[s] + " are there ?";
        q.answer = shapes_answers(q.family)[n];
        break;
      }
      case kExist: {
        ShapesObject t;
        const bool yes = rng.coin();
        if (yes) {
          t = objs[size_t(rng.uniform(0, int(objs.size()) - 1))];
        } else {  // a partial match of a present object (its colour or its shape changed)
          bool found = false;
          for (int tries = 0; tries < 50 && !found; ++tries) {
            t = objs[size_t(rng.uniform(0, int(objs.size()) - 1))];
            if (rng.coin()) t.color = rng.uniform_except(0, kShapesNumColors - 1, t.color);
            else t.shape = rng.uniform_except(0, kShapesNumShapes - 1, t.shape);
            found = std::none_of(objs.begin(), objs.end(),
                                 [&](const ShapesObject& o) { return o.shape == t.shape && o.color == t.color; });
          }
          if (!found) continue;
        }
        q.question = "is there a " + name(t) + " ?";
        q.answer = yes ? "yes" : "no";
        break;
      }
      case kPosition: {
        std::vector<int> clear;
        for (int i : named)
          if (nearest_edge(objs[i], image_size, g.edge_margin) >= 0) clear.push_back(i);
        if (clear.empty()) continue;
        const ShapesObject& o = objs[pick(clear)];
        q.question = "where is the " + name(o) + " ?";
        q.answer = shapes_answers(q.family)[nearest_edge(o, image_size, g.edge_margin)];
        break;
      }
      case kSize: {
        if (named.empty()) continue;
        const ShapesObject& o = objs[pick(named)];
        q.question = "is the " + name(o) + " small or large ?";
        q.answer = o.large ? "large" : "small";
        break;
      }
      default: {  // relation: two named objects whose centres differ in x by the margin
        std::vector<std::pair<int, int>> pairs;
        for (int a : named)
          for (int b : named)
            if (a != b && std::abs(objs[a].cx - objs[b].cx) >= g.rel_margin) pairs.push_back({a, b});
        if (pairs.empty()) continue;
        const auto [a, b] = pairs[size_t(rng.uniform(0, int(pairs.size()) - 1))];
        q.question = "is the " + name(objs[a]) + " left of the " + name(objs[b]) + " ?";
        q.answer = objs[a].cx < objs[b].cx ? "yes" : "no";
      }
    }
    out.push_back(std::move(q));
  }
  return out;
}

Image render_shapes(const ShapesScene& scene, int image_size, uint64_t seed) {
  RESSA_CHECK_ARG(image_size >= 32 && image_size <= 1024, "[render_shapes] image_size ", image_size,
                  " outside 32..1024");
  const int S = image_size;
  Rng rng(seed);
  Noise noise(rng);
  // Background: light grey with a slight tint, a gradient of up to +-12 per axis, +-10 noise.
  Image img = render_backdrop(S, Backdrop{145, 205, 10, 24, 10}, rng, noise);
  auto put = [&](int x, int y, int c, int v) {
    img.rgb[(size_t(y) * S + x) * 3 + c] = uint8_t(std::clamp(v, 0, 255));
  };
  for (const ShapesObject& o : scene.objects) {
    RESSA_CHECK_ARG(o.shape >= 0 && o.shape < kShapesNumShapes && o.color >= 0 &&
                        o.color < kShapesNumColors && o.r > 0,
                    "[render_shapes] invalid object (shape ", o.shape, ", color ", o.color, ", r ",
                    o.r, ")");
    int col[3];
    for (int c = 0; c < 3; ++c) col[c] = kPalette[o.color][c] + rng.uniform(-15, 15);
    for (int y = std::max(0, o.cy - o.r); y < std::min(S, o.cy + o.r); ++y)
      for (int x = std::max(0, o.cx - o.r); x < std::min(S, o.cx + o.r); ++x)
        if (inside(o, x, y))
          for (int c = 0; c < 3; ++c) put(x, y, c, col[c] + noise(8));
  }
  return img;
}

void generate_shapes(const std::string& out_dir, const ShapesOptions& opt) {
  check_split_options("generate_shapes", opt.train, opt.val, opt.test, opt.image_size, opt.threads,
                      opt.train_questions, kNumFamilies);
  SplitPlan plan;
  plan.fn = "generate_shapes";
  plan.seed = opt.seed, plan.salt = 0x5EEDull;
  plan.sizes[0] = opt.train, plan.sizes[1] = opt.val, plan.sizes[2] = opt.test;
  plan.threads = opt.threads;
  for (const std::string& f : shapes_families()) plan.answers_per_family.push_back(int(shapes_answers(f).size()));
  plan.train_captions = opt.train_captions, plan.train_questions = opt.train_questions;
  plan.describe_question = kShapesDescribeQuestion;
  write_splits(out_dir, plan, [&](const ExampleRequest& r) {
    ShapesScene sc = make_shapes_scene(r.seed, r.family, r.answer, opt.image_size);
    GeneratedExample g;
    g.image = render_shapes(sc, opt.image_size, splitmix64(r.seed ^ 0xC0105ull));
    if (r.caption) g.caption = describe_shapes_scene(sc);
    if (r.extra > 0)
      for (ShapesScene& q : scene_questions(sc, opt.image_size, splitmix64(r.seed ^ 0x9E57ull), r.extra))
        g.extra.push_back({std::move(q.family), std::move(q.question), std::move(q.answer)});
    g.question = std::move(sc.question);
    g.answer = std::move(sc.answer);
    g.family = std::move(sc.family);
    return g;
  });
}

}  // namespace ressa::data
