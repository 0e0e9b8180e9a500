// What the scene generators (ShapesVQA, FashionVQA) share: portable seeded sampling, the
// balanced (family, answer) schedule of a split, the threaded example loop and the checks of
// their common options. Torch-free.
// Determinism: std::mt19937_64 output is fixed by the standard, std distributions are not, so
// all sampling goes through Rng; a generator's output depends only on its seeds, never on the
// thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "ressa/data/dataset.h"
#include "ressa/data/image.h"

namespace ressa::data {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Portable sampling on top of std::mt19937_64.
class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t bits() { return g_(); }
  // Uniform integer in [lo, hi] (unbiased: rejects the top partial block of 2^64).
  int uniform(int lo, int hi) {
    const uint64_t range = uint64_t(int64_t(hi) - lo) + 1;
    const uint64_t rem = (UINT64_MAX % range + 1) % range;  // 2^64 mod range
    uint64_t x = g_();
    while (rem != 0 && x >= 0 - rem) x = g_();
    return int(lo + int64_t(x % range));
  }
  bool coin() { return (g_() >> 63) != 0; }
  // Uniform in [lo, hi] excluding `skip` (which must lie in the range).
  int uniform_except(int lo, int hi, int skip) {
    int v = uniform(lo, hi - 1);
    return v >= skip ? v + 1 : v;
  }

 private:
  std::mt19937_64 g_;
};

// Cheap noise: eight bytes per 64-bit draw, each mapped to [-k, k].
class Noise {
 public:
  explicit Noise(Rng& rng) : rng_(rng) {}
  int operator()(int k) {
    if (left_ == 0) bits_ = rng_.bits(), left_ = 8;
    int b = int(bits_ & 0xFF);
    bits_ >>= 8, --left_;
    return b % (2 * k + 1) - k;
  }

 private:
  Rng& rng_;
  uint64_t bits_ = 0;
  int left_ = 0;
};

// A photo-like backdrop of size x size pixels: base + tint[c] + a linear gradient + noise(noise),
// clamped to 0..255, in integer arithmetic so that every platform renders alike. Draws from rng,
// in this order: base in [base_lo, base_hi], tint[c] in [-tint, tint] for c = 0..2, the
// gradient slopes gx, gy in [-grad, grad] (a pixel gets (gx (2x+1-S) + gy (2y+1-S)) / 2S, up to
// +-grad/2 per axis); then noise per pixel, row by row, channel by channel.
struct Backdrop {
  int base_lo, base_hi, tint, grad, noise;
};
Image render_backdrop(int size, const Backdrop& b, Rng& rng, Noise& noise);

// The balanced schedule of a split of n examples: example i gets family i % F and that family's
// answers in turn (answers_per_family[f] of them), so families are equally frequent and answers
// uniform within a family; then shuffled with Rng(split_seed). Returns (family, answer) pairs.
std::vector<std::pair<int, int>> balanced_tasks(int n, const std::vector<int>& answers_per_family,
                                                uint64_t split_seed);

// The indices of `families` other than `asked`, in an order drawn from rng (Fisher-Yates): the
// order in which a scene's extra training questions try the other families.
std::vector<int> other_families_shuffled(const std::vector<std::string>& families, const std::string& asked, Rng& rng);

// Calls body(i) for every i in [0, n) on `threads` threads (0 = one per core, clamped to 1..n).
// The first exception stops the other workers early and is rethrown here.
void parallel_for(int n, int threads, const std::function<void(int)>& body);

// Example stem of split `split` ("train_000012").
std::string example_stem(const std::string& split, int i);

// Checks the options every generator has (fn names the caller in the error; train_questions
// must be below the task's number of families) and creates out_dir/images.
void check_split_options(const char* fn, int train, int val, int test, int image_size, int threads,
                         int train_questions, int families);
void create_image_dir(const char* fn, const std::string& out_dir);

// Writes one generated image: temp file (path + tmp_suffix) + rename, so a reader never sees a
// half-written image, but no fsync: one per image would dominate generation time and the
// dataset can be regenerated. The JSONL files, written last with fsync, make a split visible.
void write_image_file(const char* fn, const std::string& path, const std::string& bytes,
                      const std::string& tmp_suffix);

// A question about a scene with its answer read off the scene.
struct SceneQa {
  std::string family, question, answer;
};

// What a generator is asked for: example `index` of split `split` (0 train, 1 val, 2 test) with
// its own seed, the (family, answer) the balanced schedule gave it, and whether to also
// describe the scene (caption) and ask up to `extra` more questions (train split only).
struct ExampleRequest {
  int split = 0, index = 0;
  uint64_t seed = 0;
  int family = 0, answer = 0;
  bool caption = false;
  int extra = 0;
};

// What it returns.
struct GeneratedExample {
  std::string family, question, answer;
  std::vector<std::string> sources;  // provenance ("sources" in the JSONL), may be empty
  Image image;
  std::string caption;          // when asked: the describe answer
  std::vector<SceneQa> extra;   // when asked: up to `extra` more questions
};

// How a task lays out its splits.
struct SplitPlan {
  const char* fn = "";  // the generator, for error messages
  uint64_t seed = 0;    // master seed
  uint64_t salt = 0;    // task constant: split s gets splitmix64(seed ^ splitmix64(salt * (s + 1)))
  int sizes[3] = {0, 0, 0};  // train, val, test
  int threads = 0;
  std::vector<int> answers_per_family;  // the balanced schedule (balanced_tasks)
  bool train_captions = false;
  int train_questions = 0;
  std::string describe_question;
};

// Writes out_dir/images/<split>_<index:06d>.png and out_dir/{train,val,test}.jsonl: for each
// split the balanced examples made by `make` (example i's seed: splitmix64(split seed +
// splitmix64(i)), so the output never depends on the thread count), then on the train split
// the extra questions and captions (append_train_extras).
void write_splits(const std::string& out_dir, const SplitPlan& plan,
                  const std::function<GeneratedExample(const ExampleRequest&)>& make);

// Appends the training-only examples of a split after its balanced ones, in a fixed order:
// first extra[i][j] for every image i (id "<id of example i>_q<j+1>"), then captions[i]
// (id "<id>_describe", question describe_question, family "describe"); each on the image (and
// with the sources) of its balanced example. extra and captions are
// empty or hold one entry per balanced example.
void append_train_extras(std::vector<VqaExample>& examples, std::vector<std::vector<SceneQa>> extra,
                         std::vector<std::string> captions, const std::string& describe_question);
inline constexpr const char* kDescribeFamily = "describe";

}  // namespace ressa::data
