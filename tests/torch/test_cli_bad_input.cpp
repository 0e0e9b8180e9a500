// Bad input through the built binary, one table: invalid flags (sparsity outside [0,1), N >= M,
// unknown method, missing directories, outputs that are or hold an input, a pruned model from
// another dense model, unwritable outputs) and corrupt files (safetensors, config.json,
// tokenizer.json, JSONL, PNG), plus a diverging (NaN) loss in train and repair. Every case must
// end with the expected exit code (1 = bad file / runtime failure, 2 = bad flag), an "error:"
// line, no crash, nothing at --out (no <out>, no <out>.partial), and the inputs left intact.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "cli_run.h"
#include "ressa/core/atomic_file.h"

namespace fs = std::filesystem;

namespace {

using ressa::test::has_error_line;
using Result = ressa::test::CliResult;

fs::path g_root;

Result run_ressa(const std::string& args) { return ressa::test::run_ressa(args, g_root); }

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

void copy_dir(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

// Placeholders {name} in a case's arguments are replaced by these paths.
std::map<std::string, std::string> g_paths;

std::string expand(std::string s) {
  for (const auto& [k, v] : g_paths) {
    const std::string key = "{" + k + "}";
    for (size_t pos; (pos = s.find(key)) != std::string::npos;) s.replace(pos, key.size(), v);
  }
  return s;
}

struct Case {
  const char* name;
  const char* args;      // with {placeholders}; {out} is a fresh path per case
  int code;              // expected exit code
  const char* expect;    // a substring the error must contain
};

// Inputs that every case must leave as they were (file -> size before the run), and the entries
// of the inputs' folder (a case must not create e.g. <input>.ckpt beside them).
std::map<std::string, uintmax_t> g_guarded;
std::vector<std::string> g_in_entries;

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

class CliBadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_root = fs::temp_directory_path() / ("ressa_test_cli_bad_input_" + std::to_string(getpid()));
    fs::remove_all(g_root);
    fs::create_directories(g_root / "in");
    const fs::path in = g_root / "in";
    auto& p = g_paths;
    p["root"] = g_root.string();
    p["in"] = in.string();
    p["data"] = (in / "data").string();
    p["dense"] = (in / "dense").string();
    p["other"] = (in / "other").string();
    p["pruned"] = (in / "pruned").string();
    p["missing"] = (g_root / "no_such_dir").string();
    p["file"] = (g_root / "regular_file").string();
    write(g_root / "regular_file", "not a directory\n");

    auto ok = [](const std::string& args) {
      auto r = run_ressa(expand(args));
      ASSERT_EQ(r.rc, 0) << args << "\n" << r.err;
    };
    ok("data --out {data} --train 48 --val 8 --test 8 --image-size 32 --threads 1");
    ok("train --data {data} --out {dense} --preset tiny --steps 2 --batch 4 --warmup 1 --threads 1 --seed 1");
    ok("train --data {data} --out {other} --preset tiny --steps 2 --batch 4 --warmup 1 --threads 1 --seed 2");
    ok("prune --model {dense} --data {data} --method magnitude --sparsity 0.5 --calib-samples 8 --threads 1 "
       "--out {pruned}");

    // Corrupt copies of the dense model, one defect each.
    auto bad_model = [&](const std::string& key, const char* file, const std::string& bytes) {
      p[key] = (in / key).string();
      copy_dir(p["dense"], p[key]);
      write(fs::path(p[key]) / file, bytes);
    };
    const std::string st = ressa::read_file(p["dense"] + "/model.safetensors");
    bad_model("m_truncated", "model.safetensors", st.substr(0, st.size() / 2));
    bad_model("m_header_len", "model.safetensors", std::string("\xff\xff\xff\xff\xff\xff\x00\x00", 8) + st.substr(8));
    bad_model("m_header_json", "model.safetensors", st.substr(0, 8) + std::string(st.size() - 8, '{'));
    bad_model("m_config_json", "config.json", "{\"model_type\": \"llava\", \"vision_config\": {");
    bad_model("m_config_value", "config.json",
              "{\"model_type\": \"llava\", \"vision_config\": {\"hidden_size\": 1e300}, \"text_config\": {}}");
    bad_model("m_tokenizer", "tokenizer.json", "{\"model\": {\"type\": \"BPE\"}}");
    bad_model("m_tokenizer_json", "tokenizer.json", "\x89PNG not json");
    p["cfg_bad"] = (in / "m_config_value" / "config.json").string();
    // A pruned model whose prune.json is cut short.
    p["p_record"] = (in / "p_record").string();
    copy_dir(p["pruned"], p["p_record"]);
    write(fs::path(p["p_record"]) / "prune.json", "{\"method\": \"magnitude\", \"dense_model\": {");

    // Corrupt copies of the dataset.
    auto bad_data = [&](const std::string& key) {
      p[key] = (in / key).string();
      copy_dir(p["data"], p[key]);
      return fs::path(p[key]);
    };
    fs::path d = bad_data("d_jsonl");
    const std::string train = ressa::read_file((d / "train.jsonl").string());
    write(d / "train.jsonl", "{\"id\": \"x\", \"image\": 7}\n" + train);
    write(d / "test.jsonl", "not json at all\n");
    d = bad_data("d_png");
    for (const auto& e : fs::directory_iterator(d / "images"))
      write(e.path(), std::string("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16) + std::string(40, '\x7f'));
    d = bad_data("d_vocab");
    std::string test = ressa::read_file((d / "test.jsonl").string());
    const auto q = test.find("\"question\":");  // the first example's question
    ASSERT_NE(q, std::string::npos);
    const auto open = test.find('"', q + 11);
    ASSERT_NE(open, std::string::npos);
    test.insert(open + 1, "zebraic ");
    write(d / "test.jsonl", test);

    for (const auto& e : fs::recursive_directory_iterator(in))
      if (e.is_regular_file()) g_guarded[e.path().string()] = e.file_size();
    g_in_entries = entries(in);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(g_root, ec);
  }
};

TEST_F(CliBadInput, EveryCaseExitsCleanlyAndWritesNothing) {
  const std::string prune = "prune --model {dense} --data {data} --calib-samples 8 --threads 1 ";
  const std::string repair = "repair --dense {dense} --pruned {pruned} --data {data} --batch 2 --val-limit 0 --threads 1 ";
  const std::vector<Case> cases = {
      // Flags: exit 2 before anything is created.
      {"sparsity 1", "--method magnitude --sparsity 1 --out {out}", 2, "[0, 1)"},
      {"sparsity -0.1", "--method magnitude --sparsity -0.1 --out {out}", 2, "[0, 1)"},
      {"sparsity nan", "--method magnitude --sparsity nan --out {out}", 2, "sparsity"},
      {"vision sparsity 1.5", "--method wanda --sparsity 0.5 --vision-sparsity 1.5 --out {out}", 2, "--vision-sparsity"},
      {"pattern 4:4", "--method wanda --pattern 4:4 --out {out}", 2, "N:M"},
      {"pattern 5:4", "--method wanda --pattern 5:4 --out {out}", 2, "N:M"},
      {"pattern 0:4", "--method wanda --pattern 0:4 --out {out}", 2, "N:M"},
      {"pattern 2:x", "--method wanda --pattern 2:x --out {out}", 2, "N:M"},
      {"language pattern 8:4", "--method sparsegpt --sparsity 0.5 --language-pattern 8:4 --out {out}", 2, "N:M"},
      {"unknown method", "--method pruneall --sparsity 0.5 --out {out}", 2, "pruneall"},
      {"prune: missing --model", "prune --model {missing} --data {data} --method wanda --sparsity 0.5 --out {out}", 2,
       "no_such_dir"},
      {"prune: missing --data", "prune --model {dense} --data {missing} --method wanda --sparsity 0.5 --out {out}", 2,
       "no_such_dir"},
      {"prune: --out is --data", "--method magnitude --sparsity 0.5 --out {data}", 2, "--data"},
      {"prune: --out is --model", "--method magnitude --sparsity 0.5 --out {dense}", 2, "--model"},
      {"prune: --out holds the inputs", "--method magnitude --sparsity 0.5 --out {in}", 2, "contains"},
      {"prune: --out inside --data", "--method magnitude --sparsity 0.5 --out {data}/images", 2, "inside"},
      {"prune: --out under a regular file", "--method magnitude --sparsity 0.5 --out {file}/pruned", 2,
       "not a directory"},
      {"prune: --json is --data", "--method magnitude --sparsity 0.5 --out {out} --json {data}", 2, "--json"},
      {"prune: --json inside --model", "--method magnitude --sparsity 0.5 --out {out} --json {dense}/config.json", 2,
       "--json"},
      {"eval: missing --model", "eval --model {missing} --data {data}", 2, "no_such_dir"},
      {"eval: missing --data", "eval --model {dense} --data {missing}", 2, "no_such_dir"},
      {"eval: --json under a regular file", "eval --model {dense} --data {data} --json {file}/r.json", 2,
       "not a directory"},
      {"inspect: bad --pattern", "inspect --model {dense} --pattern 2:x", 2, "--pattern"},
      {"inspect: --pattern 4:2", "inspect --model {dense} --pattern 4:2", 2, "--pattern"},
      {"train: missing --data", "train --data {missing} --out {out} --preset tiny", 2, "no_such_dir"},
      {"train: --out is --data", "train --data {data} --out {data} --preset tiny", 2, "--data"},
      {"train: --out under a regular file", "train --data {data} --out {file}/m --preset tiny", 2, "not a directory"},
      {"train: --lr -1", "train --data {data} --out {out} --preset tiny --lr -1", 2, "--lr"},
      {"data: --out under a regular file", "data --out {file}/d --train 4 --val 1 --test 1", 2, "not a directory"},
      {"repair: pruned from another dense model", "repair --dense {other} --pruned {pruned} --data {data} --out {out} "
       "--steps 2 --threads 1", 2, "fingerprint"},
      {"repair: missing --pruned", "repair --dense {dense} --pruned {missing} --data {data} --out {out}", 2,
       "no_such_dir"},
      {"repair: --out is --pruned", "--out {pruned}", 2, "--pruned"},
      {"repair: --out is --dense", "--out {dense}", 2, "--dense"},
      {"repair: --out is --data", "--out {data}", 2, "--data"},
      {"repair: --kd-weight 2", "--kd-weight 2 --out {out}", 2, "--kd-weight"},
      {"repair: unknown adapter", "--adapter dora --out {out}", 2, "dora"},
      {"prune-tensor: --out is --weight", "prune-tensor --weight {dense}/model.safetensors --inputs "
       "{dense}/model.safetensors --method magnitude --sparsity 0.5 --out {dense}/model.safetensors", 2, "--weight"},
      // Corrupt files: exit 1, naming the file.
      {"truncated safetensors", "prune --model {m_truncated} --data {data} --method magnitude --sparsity 0.5 --out {out}",
       1, "model.safetensors"},
      {"safetensors header length", "prune --model {m_header_len} --data {data} --method magnitude --sparsity 0.5 "
       "--out {out}", 1, "header length"},
      {"safetensors header JSON", "prune --model {m_header_json} --data {data} --method magnitude --sparsity 0.5 "
       "--out {out}", 1, "invalid JSON"},
      {"config.json not JSON", "prune --model {m_config_json} --data {data} --method magnitude --sparsity 0.5 "
       "--out {out}", 1, "config.json"},
      {"config.json bad value", "prune --model {m_config_value} --data {data} --method magnitude --sparsity 0.5 "
       "--out {out}", 1, "hidden_size"},
      {"train --config bad value", "train --data {data} --out {out} --config {cfg_bad} --steps 2", 1, "hidden_size"},
      {"tokenizer.json model type", "prune --model {m_tokenizer} --data {data} --method magnitude --sparsity 0.5 "
       "--out {out}", 1, "tokenizer.json"},
      {"tokenizer.json not JSON", "eval --model {m_tokenizer_json} --data {data}", 1, "tokenizer.json"},
      {"eval: corrupt safetensors", "eval --model {m_truncated} --data {data}", 1, "model.safetensors"},
      {"JSONL bad line (prune)", "prune --model {dense} --data {d_jsonl} --method magnitude --sparsity 0.5 --out {out}",
       1, "train.jsonl:1"},
      {"JSONL not JSON (eval)", "eval --model {dense} --data {d_jsonl}", 1, "test.jsonl:1"},
      {"corrupt PNG (prune)", "prune --model {dense} --data {d_png} --method magnitude --sparsity 0.5 --out {out}", 1,
       ".png"},
      {"corrupt PNG (repair)", "repair --dense {dense} --pruned {pruned} --data {d_png} --out {out} --steps 2 "
       "--threads 1", 1, ".png"},
      {"dataset vocabulary the model lacks", "eval --model {dense} --data {d_vocab}", 1, "zebraic"},
      {"repair: corrupt prune.json", "repair --dense {dense} --pruned {p_record} --data {data} --out {out} --steps 2 "
       "--threads 1", 1, "prune.json"},
      // Diverging loss: exit 1 naming the step; no model written.
      {"train: NaN/Inf loss", "train --data {data} --out {out} --preset tiny --steps 6 --batch 4 --warmup 1 --lr 1e30 "
       "--threads 1", 1, "at step"},
      {"repair: NaN/Inf loss", "--lr 1e30 --steps 6 --warmup 1 --out {out}", 1, "at step"},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string out = (g_root / ("out_" + std::to_string(i++))).string();
    g_paths["out"] = out;
    std::string args = c.args;
    // Short forms: a case that starts with a flag extends `repair` (its name says so) or `prune`.
    if (args.rfind("--", 0) == 0) args = (std::string(c.name).rfind("repair", 0) == 0 ? repair : prune) + args;
    const Result r = run_ressa(expand(args));
    EXPECT_FALSE(r.signaled) << "killed by a signal: " << r.err;
    EXPECT_EQ(r.rc, c.code) << expand(args) << "\n" << r.err;
    EXPECT_TRUE(has_error_line(r.err)) << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << "error should mention '" << c.expect << "': " << r.err;
    EXPECT_EQ(r.err.find("terminate called"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out)) << "left " << out;
    EXPECT_FALSE(fs::exists(out + ".partial")) << "left " << out << ".partial";
    ASSERT_EQ(entries(g_root / "in"), g_in_entries) << "a case created or removed something beside the inputs";
    for (const auto& [file, size] : g_guarded) {
      std::error_code ec;
      ASSERT_EQ(fs::file_size(file, ec), size) << "input " << file << " changed or vanished";
    }
  }
}
