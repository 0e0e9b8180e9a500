#include "ressa/data/generator.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "ressa/core/error.h"
#include "ressa/core/runtime.h"

#include <unistd.h>

namespace ressa::data {

std::vector<std::pair<int, int>> balanced_tasks(int n, const std::vector<int>& answers_per_family,
                                                uint64_t split_seed) {
  const int families = static_cast<int>(answers_per_family.size());
  RESSA_CHECK(families > 0, "[balanced_tasks] no question families");
  std::vector<std::pair<int, int>> tasks(std::max(n, 0));
  for (int i = 0; i < n; ++i) {
    const int f = i % families;
    tasks[i] = {f, (i / families) % answers_per_family[f]};
  }
  Rng shuffle_rng(split_seed);
  for (int i = n - 1; i > 0; --i) std::swap(tasks[i], tasks[shuffle_rng.uniform(0, i)]);
  return tasks;
}

Image render_backdrop(int size, const Backdrop& b, Rng& rng, Noise& noise) {
  const int S = size;
  Image img;
  img.width = img.height = S;
  img.rgb.resize(size_t(S) * S * 3);
  const int base = rng.uniform(b.base_lo, b.base_hi);
  const int tint[3] = {rng.uniform(-b.tint, b.tint), rng.uniform(-b.tint, b.tint), rng.uniform(-b.tint, b.tint)};
  const int gx = rng.uniform(-b.grad, b.grad), gy = rng.uniform(-b.grad, b.grad);
  uint8_t* px = img.rgb.data();
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      const int grad = (gx * (2 * x + 1 - S) + gy * (2 * y + 1 - S)) / (2 * S);
      for (int c = 0; c < 3; ++c) *px++ = uint8_t(std::clamp(base + tint[c] + grad + noise(b.noise), 0, 255));
    }
  return img;
}

std::vector<int> other_families_shuffled(const std::vector<std::string>& families, const std::string& asked, Rng& rng) {
  std::vector<int> fams;
  for (int f = 0; f < int(families.size()); ++f)
    if (families[size_t(f)] != asked) fams.push_back(f);
  for (int i = int(fams.size()) - 1; i > 0; --i) std::swap(fams[size_t(i)], fams[size_t(rng.uniform(0, i))]);
  return fams;
}

void parallel_for(int n, int threads, const std::function<void(int)>& body) {
  std::atomic<int> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
  auto worker = [&] {
    try {
      for (int i = next++; i < n; i = next++) body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
      next = n;  // stop the other workers early
    }
  };
  int t = threads > 0 ? threads : hardware_threads();
  t = std::clamp(t, 1, std::max(1, n));
  std::vector<std::thread> pool;
  for (int k = 1; k < t; ++k) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

std::string example_stem(const std::string& split, int i) {
  char num[16];
  std::snprintf(num, sizeof num, "_%06d", i);
  return split + num;
}

void check_split_options(const char* fn, int train, int val, int test, int image_size, int threads,
                         int train_questions, int families) {
  RESSA_CHECK_ARG(train >= 0 && val >= 0 && test >= 0, "[", fn, "] split sizes must be >= 0, got train=",
                  train, " val=", val, " test=", test);
  RESSA_CHECK_ARG(image_size >= 32 && image_size <= 1024, "[", fn, "] image_size ", image_size,
                  " outside 32..1024");
  RESSA_CHECK_ARG(threads >= 0, "[", fn, "] threads must be >= 0, got ", threads);
  RESSA_CHECK_ARG(train_questions >= 0 && train_questions < families, "[", fn, "] train_questions must be in 0..",
                  families - 1, ", got ", train_questions);
}

void create_image_dir(const char* fn, const std::string& out_dir) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(out_dir) / "images", ec);
  if (ec) fail("[", fn, "] ", out_dir, ": cannot create directory: ", ec.message());
}

void write_image_file(const char* fn, const std::string& path, const std::string& bytes,
                      const std::string& tmp_suffix) {
  const std::string tmp = path + tmp_suffix;
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
    if (!f.flush()) fail("[", fn, "] ", path, ": cannot write image");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    fail("[", fn, "] ", path, ": cannot rename temp file: ", ec.message());
  }
}

void append_train_extras(std::vector<VqaExample>& examples, std::vector<std::vector<SceneQa>> extra,
                         std::vector<std::string> captions, const std::string& describe_question) {
  const size_t n = examples.size();
  RESSA_CHECK((extra.empty() || extra.size() == n) && (captions.empty() || captions.size() == n),
              "[append_train_extras] ", extra.size(), " extra lists and ", captions.size(),
              " captions for ", n, " examples");
  for (size_t i = 0; i < extra.size(); ++i)
    for (size_t j = 0; j < extra[i].size(); ++j) {
      VqaExample q;
      q.id = examples[i].id + "_q" + std::to_string(j + 1);
      q.image = examples[i].image;
      q.sources = examples[i].sources;
      q.question = std::move(extra[i][j].question);
      q.answer = std::move(extra[i][j].answer);
      q.family = std::move(extra[i][j].family);
      examples.push_back(std::move(q));
    }
  for (size_t i = 0; i < captions.size(); ++i) {
    VqaExample c;
    c.id = examples[i].id + "_describe";
    c.image = examples[i].image;
    c.sources = examples[i].sources;
    c.question = describe_question;
    c.answer = std::move(captions[i]);
    c.family = kDescribeFamily;
    examples.push_back(std::move(c));
  }
}

void write_splits(const std::string& out_dir, const SplitPlan& plan,
                  const std::function<GeneratedExample(const ExampleRequest&)>& make) {
  namespace fs = std::filesystem;
  create_image_dir(plan.fn, out_dir);
  const std::string tmp_suffix = ".tmp." + std::to_string(::getpid());
  const char* splits[3] = {"train", "val", "test"};
  for (int si = 0; si < 3; ++si) {
    const int n = plan.sizes[si];
    const uint64_t split_seed = splitmix64(plan.seed ^ splitmix64(plan.salt * uint64_t(si + 1)));
    const std::vector<std::pair<int, int>> tasks = balanced_tasks(n, plan.answers_per_family, split_seed);
    std::vector<VqaExample> examples(n);
    const bool captions = plan.train_captions && si == 0;
    std::vector<std::string> described(captions ? n : 0);
    const int n_extra = si == 0 ? plan.train_questions : 0;
    std::vector<std::vector<SceneQa>> extra(n_extra > 0 ? n : 0);
    parallel_for(n, plan.threads, [&](int i) {
      ExampleRequest req;
      req.split = si, req.index = i;
      req.seed = splitmix64(split_seed + splitmix64(uint64_t(i)));
      req.family = tasks[i].first, req.answer = tasks[i].second;
      req.caption = captions, req.extra = n_extra;
      GeneratedExample g = make(req);
      const std::string stem = example_stem(splits[si], i);
      VqaExample& ex = examples[i];
      ex.id = stem;
      ex.image = "images/" + stem + ".png";
      write_image_file(plan.fn, (fs::path(out_dir) / ex.image).string(), encode_png(g.image), tmp_suffix);
      ex.question = std::move(g.question);
      ex.answer = std::move(g.answer);
      ex.family = std::move(g.family);
      ex.sources = std::move(g.sources);
      if (captions) described[i] = std::move(g.caption);
      if (n_extra > 0) extra[i] = std::move(g.extra);
    });
    append_train_extras(examples, std::move(extra), std::move(described), plan.describe_question);
    write_jsonl((fs::path(out_dir) / (std::string(splits[si]) + ".jsonl")).string(), examples);
  }
}

}  // namespace ressa::data
