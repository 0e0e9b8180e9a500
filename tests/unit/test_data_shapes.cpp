// Tests for ressa/data/shapes: determinism (same seed and any thread count -> identical
// bytes), an independent re-derivation of every answer from the scene, colours recognisable
// by nearest ideal colour, answer balance, and the question-only baseline staying at chance.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "ressa/core/atomic_file.h"
#include "ressa/data/dataset.h"
#include "ressa/data/shapes.h"

#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace ressa::data;

namespace {
using ressa::test::TempDir;

std::vector<std::string> words(const std::string& s) {
  std::istringstream is(s);
  std::vector<std::string> w;
  for (std::string t; is >> t;) w.push_back(t);
  return w;
}

int index_of(const char* const* names, int n, const std::string& w) {
  for (int i = 0; i < n; ++i)
    if (w == names[i]) return i;
  return -1;
}
int shape_of(const std::string& w) { return index_of(kShapesShapeNames, kShapesNumShapes, w); }
int color_of(const std::string& w) { return index_of(kShapesColorNames, kShapesNumColors, w); }

// Answers the question from the object list alone (written independently of the generator),
// and checks that every "the <...>" reference names exactly one object.
std::string answer_from_scene(const ShapesScene& sc, int size) {
  const auto w = words(sc.question);
  const auto& ob = sc.objects;
  auto count_if = [&](auto pred) { return std::count_if(ob.begin(), ob.end(), pred); };
  auto the = [&](int c, int s) {  // the unique object with colour c (or any if -1), shape s
    auto pred = [&](const ShapesObject& o) {
      return (c < 0 || o.color == c) && (s < 0 || o.shape == s);
    };
    EXPECT_EQ(count_if(pred), 1) << sc.question;
    return *std::find_if(ob.begin(), ob.end(), pred);
  };
  const char* nums[] = {"zero", "one", "two", "three", "four"};
  if (sc.family == "color") return kShapesColorNames[the(-1, shape_of(w[4])).color];
  if (sc.family == "shape") return kShapesShapeNames[the(color_of(w[4]), -1).shape];
  if (sc.family == "count") {
    std::string plural = w[2];
    int s = shape_of(plural.substr(0, plural.size() - (plural == "crosses" ? 2 : 1)));
    EXPECT_GE(s, 0) << plural;
    return nums[count_if([&](const ShapesObject& o) { return o.shape == s; })];
  }
  if (sc.family == "exist") {
    int c = color_of(w[3]), s = shape_of(w[4]);
    return count_if([&](const ShapesObject& o) { return o.color == c && o.shape == s; }) ? "yes"
                                                                                         : "no";
  }
  if (sc.family == "position") {
    ShapesObject o = the(color_of(w[3]), shape_of(w[4]));
    std::vector<std::pair<int, std::string>> d = {
        {o.cx, "left"}, {size - o.cx, "right"}, {o.cy, "top"}, {size - o.cy, "bottom"}};
    std::sort(d.begin(), d.end());
    EXPECT_GE(d[1].first - d[0].first, 3) << "ambiguous position: " << sc.question;
    return d[0].second;
  }
  if (sc.family == "size") return the(color_of(w[2]), shape_of(w[3])).large ? "large" : "small";
  EXPECT_EQ(sc.family, "relation");
  ShapesObject a = the(color_of(w[2]), shape_of(w[3])), b = the(color_of(w[7]), shape_of(w[8]));
  EXPECT_GE(std::abs(a.cx - b.cx), 4) << "ambiguous relation: " << sc.question;
  return a.cx < b.cx ? "yes" : "no";
}

// Colour name from the HSV hue (nearest conventional hue: red 0, yellow 60, green 120,
// cyan 180, blue 240, purple 280 degrees), independent of the generator's palette; "grey"
// for unsaturated pixels.
std::string colour_name(const uint8_t* p) {
  const double r = p[0], g = p[1], b = p[2];
  const double mx = std::max({r, g, b}), mn = std::min({r, g, b});
  if (mx - mn < 0.4 * mx) return "grey";
  double h = mx == r   ? 60 * (g - b) / (mx - mn)
             : mx == g ? 60 * (2 + (b - r) / (mx - mn))
                       : 60 * (4 + (r - g) / (mx - mn));
  if (h < 0) h += 360;
  const double centre[6] = {0, 120, 240, 60, 280, 180};  // in kShapesColorNames order
  int best = 0;
  double best_d = 1e9;
  for (int i = 0; i < 6; ++i) {
    double d = std::abs(h - centre[i]);
    d = std::min(d, 360 - d);
    if (d < best_d) best_d = d, best = i;
  }
  return kShapesColorNames[best];
}
}  // namespace

TEST(DataShapes, ScenesAnswerTheirQuestions) {
  const int size = 64;
  int checked = 0, max_small = 0, min_large = 1 << 30;
  for (uint64_t seed = 0; seed < 60; ++seed)
    for (int f = 0; f < 7; ++f) {
      const int k = int(shapes_answers(shapes_families()[f]).size());
      for (int a = 0; a < k; ++a) {
        ShapesScene sc = make_shapes_scene(seed * 1000 + f * 10 + a, f, a, size);
        ASSERT_EQ(sc.answer, shapes_answers(sc.family)[a]);
        ASSERT_GE(sc.objects.size(), 2u);
        ASSERT_LE(sc.objects.size(), 4u);
        EXPECT_EQ(answer_from_scene(sc, size), sc.answer) << sc.question;
        for (size_t i = 0; i < sc.objects.size(); ++i) {
          const ShapesObject& o = sc.objects[i];
          EXPECT_TRUE(o.cx - o.r >= 0 && o.cx + o.r <= size && o.cy - o.r >= 0 &&
                      o.cy + o.r <= size);
          (o.large ? min_large : max_small) =
              o.large ? std::min(min_large, o.r) : std::max(max_small, o.r);
          for (size_t j = 0; j < i; ++j) {  // boxes never overlap
            const ShapesObject& p = sc.objects[j];
            EXPECT_TRUE(std::abs(o.cx - p.cx) >= o.r + p.r || std::abs(o.cy - p.cy) >= o.r + p.r);
          }
        }
        // The 2x2 pixels around each centre lie inside every shape; their colour must be
        // recognisable despite jitter and noise. The background corners are grey.
        Image img = render_shapes(sc, size, seed);
        EXPECT_EQ(colour_name(&img.rgb[0]), "grey");
        for (const ShapesObject& o : sc.objects)
          for (int y = o.cy - 1; y <= o.cy; ++y)
            for (int x = o.cx - 1; x <= o.cx; ++x)
              EXPECT_EQ(colour_name(&img.rgb[(y * size + x) * 3]), kShapesColorNames[o.color]);
        ++checked;
      }
    }
  EXPECT_EQ(checked, 60 * (6 + 4 + 5 + 2 + 4 + 2 + 2));
  EXPECT_LT(max_small, min_large);
}

TEST(DataShapes, WordsCoverEveryQuestionAndAnswer) {
  auto vocab = shapes_words();
  std::set<std::string> known(vocab.begin(), vocab.end());
  EXPECT_TRUE(std::is_sorted(vocab.begin(), vocab.end()));
  for (int f = 0; f < 7; ++f)
    for (int a = 0; a < int(shapes_answers(shapes_families()[f]).size()); ++a)
      for (uint64_t seed = 0; seed < 20; ++seed) {
        ShapesScene sc = make_shapes_scene(seed, f, a, 64);
        EXPECT_EQ(sc.question.substr(sc.question.size() - 2), " ?");
        for (const auto& w : words(sc.question + " " + sc.answer)) EXPECT_TRUE(known.count(w)) << w;
        EXPECT_EQ(words(sc.answer).size(), 1u);
      }
}

TEST(DataShapes, DeterministicForSeedAndThreads) {
  TempDir a("a"), b("b"), c("c");
  ShapesOptions opt;
  opt.train = 40, opt.val = 10, opt.test = 20, opt.seed = 7, opt.threads = 1;
  generate_shapes(a.str(), opt);
  opt.threads = 3;
  generate_shapes(b.str(), opt);
  opt.seed = 8;
  generate_shapes(c.str(), opt);
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(a.path)) {
    if (!e.is_regular_file()) continue;
    const fs::path rel = fs::relative(e.path(), a.path);
    ASSERT_EQ(ressa::read_file(e.path().string()), ressa::read_file((b.path / rel).string()))
        << rel;
    ++files;
  }
  EXPECT_EQ(files, 3u + 70u);
  EXPECT_NE(ressa::read_file(a.str() + "/train.jsonl"), ressa::read_file(c.str() + "/train.jsonl"));
  EXPECT_NE(ressa::read_file(a.str() + "/images/train_000000.png"),
            ressa::read_file(c.str() + "/images/train_000000.png"));
  // Splits use different derived seeds.
  EXPECT_NE(ressa::read_file(a.str() + "/images/train_000000.png"),
            ressa::read_file(a.str() + "/images/test_000000.png"));
  auto val = read_split(a.str(), "val");
  ASSERT_EQ(val.size(), 10u);
  EXPECT_EQ(val[3].id, "val_000003");
  EXPECT_EQ(val[3].image, "images/val_000003.png");
  EXPECT_THROW(generate_shapes(a.str(), ShapesOptions{0, -1, 0, 0, 64, 0}), std::invalid_argument);
}

TEST(DataShapes, BalancedAndNotAnswerableFromQuestionText) {
  TempDir d;
  ShapesOptions opt;
  opt.train = 3500, opt.val = 0, opt.test = 3500, opt.seed = 1;
  opt.train_captions = false;  // the describe examples are checked in TrainCaptions
  opt.train_questions = 0;     // the extra questions are checked in ExtraTrainQuestions
  generate_shapes(d.str(), opt);
  auto train = read_split(d.str(), "train"), test = read_split(d.str(), "test");
  ASSERT_EQ(train.size(), 3500u);
  ASSERT_EQ(test.size(), 3500u);

  // Families in equal proportion; answers uniform within each family (5% tolerance).
  std::map<std::string, std::map<std::string, int>> counts;
  for (const auto& e : train) counts[e.family][e.answer]++;
  ASSERT_EQ(counts.size(), 7u);
  for (const auto& [fam, by_answer] : counts) {
    const auto& answers = shapes_answers(fam);
    int n = 0;
    for (const auto& [ans, k] : by_answer) n += k;
    EXPECT_NEAR(n, 3500 / 7, 1) << fam;
    EXPECT_EQ(by_answer.size(), answers.size()) << fam;
    for (const auto& ans : answers)
      EXPECT_NEAR(by_answer.count(ans) ? by_answer.at(ans) : 0, double(n) / answers.size(),
                  std::max(2.0, 0.05 * n / answers.size()))
          << fam << " " << ans;
  }

  // Question-only baseline: majority answer per exact question text (family majority for
  // questions unseen in train), fitted on train, scored on test. Must stay within 3 standard
  // errors of chance (1 / #answers) for every family.
  std::map<std::string, std::map<std::string, int>> by_question;
  for (const auto& e : train) by_question[e.question][e.answer]++;
  auto majority = [](const std::map<std::string, int>& m) {
    return std::max_element(m.begin(), m.end(),
                            [](auto& x, auto& y) { return x.second < y.second; })
        ->first;
  };
  std::map<std::string, std::pair<int, int>> score;  // family -> (correct, total)
  for (const auto& e : test) {
    auto it = by_question.find(e.question);
    std::string guess = it != by_question.end() ? majority(it->second) : majority(counts[e.family]);
    score[e.family].first += guess == e.answer;
    score[e.family].second++;
  }
  for (const auto& [fam, s] : score) {
    const double chance = 1.0 / shapes_answers(fam).size();
    const double acc = double(s.first) / s.second;
    const double margin = 3 * std::sqrt(chance * (1 - chance) / s.second);
    EXPECT_LE(acc, chance + margin) << fam << ": question-only accuracy " << acc;
  }

  for (const auto& e : test) {  // every image is image_size x image_size RGB
    Image img = load_image(image_path(d.str(), e));
    ASSERT_EQ(img.width, 64);
    ASSERT_EQ(img.height, 64);
    ASSERT_EQ(img.rgb.size(), 64u * 64u * 3u);
  }
}

TEST(DataShapes, TrainCaptions) {
  TempDir d;
  ShapesOptions opt;
  opt.train = 40, opt.val = 10, opt.test = 10, opt.seed = 3;
  opt.train_questions = 0;
  generate_shapes(d.str(), opt);
  auto train = read_split(d.str(), "train");
  ASSERT_EQ(train.size(), 80u);  // 40 VQA examples, then one describe example per training image
  for (int i = 0; i < 40; ++i) {
    const auto& q = train[i];
    const auto& c = train[40 + i];
    EXPECT_NE(q.family, kShapesDescribeFamily);
    EXPECT_EQ(c.family, kShapesDescribeFamily);
    EXPECT_EQ(c.id, q.id + "_describe");
    EXPECT_EQ(c.image, q.image);
    EXPECT_EQ(c.question, kShapesDescribeQuestion);
    // 2..4 objects of "<size> <colour> <shape>" joined by "and": 3k + (k - 1) words.
    std::istringstream words(c.answer);
    std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
    ASSERT_TRUE(w.size() == 11 || w.size() == 15 || w.size() == 7) << c.answer;
    for (size_t j = 0; j < w.size(); ++j) {
      if (j % 4 == 3) { EXPECT_EQ(w[j], "and") << c.answer; }
      if (j % 4 == 0) { EXPECT_TRUE(w[j] == "small" || w[j] == "large") << c.answer; }
    }
  }
  for (const char* split : {"val", "test"})
    for (const auto& e : read_split(d.str(), split)) EXPECT_NE(e.family, kShapesDescribeFamily) << split;
  // Left to right: a scene with known objects.
  ShapesScene sc;
  sc.objects = {{1, 2, true, 40, 10, 9}, {0, 0, false, 10, 30, 5}, {2, 1, false, 40, 5, 5}};
  EXPECT_EQ(describe_shapes_scene(sc), "small red circle and small green triangle and large blue square");
  // Every word of a description is in the task vocabulary.
  const auto vocab = shapes_words();
  for (const auto& e : train)
    if (e.family == kShapesDescribeFamily) {
      std::istringstream ws(e.answer + " " + e.question);
      for (std::string w; ws >> w;) EXPECT_TRUE(std::binary_search(vocab.begin(), vocab.end(), w)) << w;
    }
}

TEST(DataShapes, SceneQuestionsAreAnsweredByTheScene) {
  std::map<std::string, std::set<std::string>> answers_seen;
  int asked = 0;
  for (uint64_t seed = 0; seed < 700; ++seed) {
    const int f = int(seed % 7);
    const int a = int(seed / 7 % shapes_answers(shapes_families()[f]).size());
    const ShapesScene sc = make_shapes_scene(seed, f, a, 64);
    const auto qs = scene_questions(sc, 64, seed * 31 + 1, 6);
    const auto again = scene_questions(sc, 64, seed * 31 + 1, 6);  // deterministic
    ASSERT_EQ(qs.size(), again.size());
    EXPECT_LE(scene_questions(sc, 64, seed * 31 + 1, 2).size(), 2u);
    std::set<std::string> fams;
    for (size_t i = 0; i < qs.size(); ++i) {
      EXPECT_EQ(qs[i].question, again[i].question);
      EXPECT_NE(qs[i].family, sc.family);
      EXPECT_TRUE(fams.insert(qs[i].family).second) << "family asked twice: " << qs[i].family;
      ShapesScene check = sc;  // the same objects, asked the new question
      check.family = qs[i].family, check.question = qs[i].question;
      EXPECT_EQ(answer_from_scene(check, 64), qs[i].answer) << qs[i].question;
      answers_seen[qs[i].family].insert(qs[i].answer);
      ++asked;
    }
  }
  // Every family is asked, with every yes/no, size, position, shape and colour answer.
  EXPECT_EQ(answers_seen.size(), 7u);
  for (const char* fam : {"exist", "relation", "size", "position", "shape", "color"})
    EXPECT_EQ(answers_seen[fam].size(), shapes_answers(fam).size()) << fam;
  EXPECT_GT(asked, 700 * 4);  // most scenes support most families
}

TEST(DataShapes, ExtraTrainQuestions) {
  TempDir d;
  ShapesOptions opt;
  opt.train = 30, opt.val = 10, opt.test = 10, opt.seed = 5, opt.train_questions = 3;
  opt.train_captions = false;
  generate_shapes(d.str(), opt);
  const auto train = read_split(d.str(), "train");
  ASSERT_GT(train.size(), 30u + 30u * 2);
  ASSERT_LE(train.size(), 30u + 30u * 3);
  std::map<std::string, std::vector<const VqaExample*>> by_image;
  for (size_t i = 30; i < train.size(); ++i) by_image[train[i].image].push_back(&train[i]);
  for (int i = 0; i < 30; ++i) {
    const auto& extra = by_image[train[i].image];
    EXPECT_GE(extra.size(), 2u);
    EXPECT_LE(extra.size(), 3u);
    for (size_t j = 0; j < extra.size(); ++j) {
      EXPECT_EQ(extra[j]->id, train[i].id + "_q" + std::to_string(j + 1));
      EXPECT_NE(extra[j]->family, train[i].family);
    }
  }
  for (const char* split : {"val", "test"}) EXPECT_EQ(read_split(d.str(), split).size(), 10u) << split;
  opt.train_questions = 7;
  EXPECT_THROW(generate_shapes(d.str() + "x", opt), std::invalid_argument);
}
