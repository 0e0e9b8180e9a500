// `ressa eval` (VQA exact-match accuracy, --blind) and `ressa inspect` (sparsity report).
#include <iostream>
#include <variant>

#include "common.h"
#include "ressa/eval/sparsity.h"
#include "ressa/eval/vqa_eval.h"
#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"
#include "ressa/io/config_summary.h"
#include "ressa/model/checkpoint.h"
#include "ressa/sparse/kernels.h"

#include <filesystem>

namespace ressa::cli {


nlohmann::json sparsity_json(const eval::SparsityReport& r) {
  return {{"vision", r.vision}, {"language", r.language}, {"overall", r.overall}, {"model", r.model}};
}

void register_eval(CLI::App& app) {
  struct Flags {
    ComputeFlags c;
    std::string model, data, image_folder, split = "test", predictions;
    bool blind = false, dense_kernels = false;
    int64_t limit = 0, batch = 64, max_new_tokens = 0;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("eval", "VQA exact-match accuracy of a model on a dataset split");
  cmd->add_option("--model", f->model, "model directory")->required();
  cmd->add_option("--data", f->data, "dataset directory, or a LLaVA conversation file (FILE.json)")->required();
  cmd->add_option("--image-folder", f->image_folder,
                  "LLaVA conversation file: its image paths are relative to this directory (default: the file's)");
  auto* split = cmd->add_option("--split", f->split, "dataset directory: train, val or test")
                    ->check(CLI::IsMember({"train", "val", "test"}));
  cmd->add_option("--max-new-tokens", f->max_new_tokens,
                  "answer length limit in tokens (default: the longest reference answer + 1)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--blind", f->blind, "blank every image (measures what the question alone gives)");
  cmd->add_option("--limit", f->limit, "evaluate only the first N examples")->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", f->batch, "questions per forward pass")->check(CLI::PositiveNumber);
  cmd->add_flag("--dense-kernels", f->dense_kernels,
                "compressed model (ressa export): run its sparse layers through dense matmul instead of the sparse kernels");
  cmd->add_option("--predictions", f->predictions,
                  "write each example's answer as JSON lines {id, prediction, answer, correct} to this path");
  add_compute_flags(cmd, f->c, true);
  cmd->callback([f, split] {
    require_dir("--model", f->model, "model directory");
    const data::DataSource source(f->data, f->image_folder);
    source.validate();
    RESSA_CHECK_ARG(!source.is_conversation_file() || split->count() == 0, "[eval] --split applies to a dataset "
                    "directory; the conversation file ", f->data, " is evaluated whole (first question of each item)");
    check_json_flag(f->c, {{"--model", f->model}, {"--data", f->data}});
    auto rt = setup(f->c);
    // Inference only: compressed layers keep just their compressed copy, unless --dense-kernels
    // needs the dense weights.
    model::LoadOptions lo;
    lo.release_dense = !f->dense_kernels;
    lo.map_weights = true;  // dense Linear weights read in place from the file, in its dtype
    auto lm = model::load_model(f->model, rt.device, lo);
    int64_t sparse_layers = 0;
    std::string values;  // storage of the compressed layers' values: f32, bf16 or f16
    for (auto& [name, lin] : lm.model->linears()) {
      if (lin->compressed() && values.empty())
        values = sparse::to_string(lin->compressed()->value_type());
      if (f->dense_kernels) lin->drop_compressed();
      sparse_layers += lin->compressed() != nullptr;
    }
    if (!lm.compression.empty())
      info("compressed model (" + lm.compression + (values.empty() || values == "f32" ? std::string() : ", " + values + " values") + "): " +
           std::to_string(sparse_layers) + " of " +
           std::to_string(lm.compressed_layers.size()) + " compressed Linear layers run through the sparse kernels (" +
           sparse::to_string(sparse::active_isa()) + ")");
    // The model's processor (chat template, tokenizer, image processor): the prompt each question
    // gets is the one `ressa generate` would build.
    const auto proc = data::Processor::load_dir(f->model, lm.model->config);
    const io::Tokenizer& tok = proc.tokenizer();
    auto set = train::load_vqa_set(source, f->split, proc, lm.model->config, f->limit);
    eval::EvalOptions eo;
    eo.blind = f->blind;
    eo.batch = f->batch;
    eo.max_new_tokens = f->max_new_tokens;
    eo.eos_ids = proc.eos_ids();
    auto res = eval::evaluate(lm.model, set, tok, eo, rt.device, progress_printer());
    auto sp = eval::sparsity_report(lm.model);
    std::cout << "accuracy " << res.accuracy << " (n=" << res.n << (f->blind ? ", blind" : "") << ")\n";
    for (auto& [fam, acc] : res.families) std::cout << "  " << fam << " " << acc << " (n=" << res.family_n[fam] << ")\n";
    std::cout << "sparsity vision " << sp.vision << " language " << sp.language << " overall " << sp.overall << "\n";
    if (!f->predictions.empty()) {
      std::string lines;
      for (int64_t i = 0; i < res.n; ++i) {
        const auto& ex = set.examples[i];
        lines += nlohmann::json({{"id", ex.id},
                                 {"prediction", res.predictions[i]},
                                 {"answer", ex.answer},
                                 {"correct", eval::normalize_answer(res.predictions[i]) == eval::normalize_answer(ex.answer)}})
                     .dump() +
                 "\n";
      }
      write_file_atomic(f->predictions, lines);
    }
    nlohmann::json fams = nlohmann::json::object();
    for (auto& [fam, acc] : res.families) fams[fam] = acc;
    write_json(f->c.json_path, {{"accuracy", res.accuracy},
                                {"n", res.n},
                                {"families", fams},
                                {"blind", f->blind},
                                {"split", source.is_conversation_file() ? std::string() : f->split},
                                {"seconds", res.seconds},
                                {"compression", lm.compression},
                                {"compressed_values", values},
                                {"sparse_kernel_layers", sparse_layers},
                                {"threads", rt.threads},
                                {"sparsity", sparsity_json(sp)}});
  });
}

namespace {
// `ressa inspect --config-only`: config.json resolved as transformers builds it, no weights read.
void inspect_config(const std::string& model_dir, const std::string& json_path) {
  const auto cfg = io::resolve_config((std::filesystem::path(model_dir) / "config.json").string());
  const auto n = io::parameter_counts(cfg);
  nlohmann::json resolved = io::resolved_config_json(cfg);
  const auto& v = cfg.vision;
  const auto& t = cfg.text;
  std::cout << "model_type " << cfg.model_type << " (" << v.model_type << " + " << t.model_type << "), dtype "
            << cfg.torch_dtype << "\n"
            << "vision: hidden " << v.hidden_size << ", intermediate " << v.intermediate_size << ", layers "
            << v.num_hidden_layers << " (" << cfg.vision_layers_used() << " used), heads " << v.num_attention_heads
            << ", image " << v.image_size << ", patch " << v.patch_size << ", " << v.hidden_act << "\n"
            << "text: hidden " << t.hidden_size << ", intermediate " << t.intermediate_size << ", layers "
            << t.num_hidden_layers << ", heads " << t.num_attention_heads << ", kv heads " << t.num_key_value_heads
            << ", head_dim " << t.head_dim() << ", vocab " << t.vocab_size << ", max positions "
            << t.max_position_embeddings << (t.tie_word_embeddings ? ", tied embeddings" : "") << "\n"
            << "image tokens " << cfg.image_tokens() << " (" << cfg.vision_feature_select_strategy << ", layer "
            << cfg.vision_feature_layer << ")\n"
            << "parameters: vision " << n.vision << ", projector " << n.projector << ", language " << n.language
            << ", total " << n.total() << "\n";
  try {
    cfg.check_runnable(model_dir);
  } catch (const std::runtime_error& e) {
    std::cout << "not runnable: " << e.what() << "\n";
    resolved["runnable"] = false;
  }
  write_json(json_path, {{"config", resolved},
                         {"parameters",
                          {{"vision", n.vision}, {"projector", n.projector}, {"language", n.language}, {"total", n.total()}}}});
}
}  // namespace

void register_inspect(CLI::App& app) {
  struct Flags {
    ComputeFlags c;
    std::string model, pattern;
    bool config_only = false;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("inspect", "per-layer sparsity and N:M validity of a model");
  cmd->add_option("--model", f->model, "model directory")->required();
  cmd->add_option("--pattern", f->pattern, "N:M pattern to check (default: the one recorded by prune, if any)");
  cmd->add_flag("--config-only", f->config_only,
                "print the resolved configuration (sizes, head_dim, kv heads, vocab, image tokens, dtype, parameters per "
                "tower) without reading weights");
  add_compute_flags(cmd, f->c, true);
  cmd->callback([f] {
    require_dir("--model", f->model, "model directory");
    check_json_flag(f->c, {{"--model", f->model}});
    if (f->config_only) {
      inspect_config(f->model, f->c.json_path);
      return;
    }
    int n = 0, m = 0;
    if (!f->pattern.empty()) {  // a bad --pattern is a usage error, found before the model loads
      const auto [pn, pm] = parse_nm_flag("inspect", f->pattern);
      n = pn, m = pm;
    }
    auto rt = setup(f->c);
    auto lm = model::load_model(f->model, torch::kCPU);
    std::string pattern = f->pattern;
    const std::string record = f->model + "/prune.json";
    nlohmann::json rec;
    if (std::filesystem::exists(record)) {
      try {
        rec = nlohmann::json::parse(read_file(record));
      } catch (const std::exception& e) {
        throw std::runtime_error("[inspect] " + record + ": not valid JSON: " + e.what());
      }
      if (pattern.empty() && rec.contains("pattern") && rec["pattern"].is_string()) pattern = rec["pattern"];
    }
    if (f->pattern.empty() && pattern.find(':') != std::string::npos) {
      try {
        const auto [pn, pm] = parse_nm_flag("inspect", pattern);
        n = pn, m = pm;
      } catch (const std::invalid_argument& e) {  // the record is a file: exit 1
        throw std::runtime_error("[inspect] " + record + ": bad \"pattern\": " + e.what());
      }
    }
    auto sp = eval::sparsity_report(lm.model, n, m);
    nlohmann::json layers = nlohmann::json::array();
    for (auto& l : sp.layers) {
      nlohmann::json e = {{"name", l.name}, {"sparsity", l.sparsity}, {"numel", l.numel}};
      if (sp.nm_checked) e["nm_valid"] = l.nm_valid;
      layers.push_back(e);
      std::cout << l.name << " " << l.sparsity << (sp.nm_checked ? (l.nm_valid ? " nm-ok" : " NM-INVALID") : "") << "\n";
    }
    std::cout << "sparsity vision " << sp.vision << " language " << sp.language << " overall " << sp.overall
              << " model " << sp.model << "\n";
    if (sp.nm_checked) std::cout << "N:M " << pattern << (sp.nm_valid ? " valid" : " INVALID") << "\n";
    if (!rec.is_null()) std::cout << "pruned: " << rec.dump() << "\n";
    nlohmann::json out = {{"sparsity", sparsity_json(sp)},
                          {"nm_valid", sp.nm_checked ? nlohmann::json(sp.nm_valid) : nlohmann::json(nullptr)},
                          {"layers", layers},
                          {"has_masks", lm.has_masks}};
    if (!rec.is_null()) out["prune"] = rec;
    write_json(f->c.json_path, out);
  });
}

}  // namespace ressa::cli
