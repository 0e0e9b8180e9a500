// `ressa export`: writes a compressed copy of a (pruned) model directory: pruned Linear weights in
// the compressed-tensors sparse_bitmask / sparse_24_bitmask layouts, everything else dense
// (model::export_compressed; formats in docs/kernels.md). `ressa eval` runs such a directory
// through the sparse kernels.
#include <cstdio>
#include <iostream>

#include "common.h"
#include "ressa/core/atomic_file.h"
#include "ressa/model/checkpoint.h"

#include <filesystem>

namespace ressa::cli {

void register_export(CLI::App& app) {
  struct Flags {
    std::string model, format, out, pattern, json_path, dtype = "f32";
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("export", "write a compressed sparse checkpoint (bitmask or N:M) of a pruned model");
  cmd->add_option("--model", f->model, "pruned model directory")->required();
  cmd->add_option("--format", f->format, "bitmask (any sparsity) or nm (N:M; every pruned layer must be N:M)")
      ->required()
      ->check(CLI::IsMember({"bitmask", "nm"}));
  cmd->add_option("--pattern", f->pattern,
                  "N:M for --format nm (N zeros in every M weights; default: the model's prune.json pattern, else 2:4)");
  cmd->add_option("--dtype", f->dtype,
                  "value storage: float32 (exact, default), bfloat16 or float16 (kept weights rounded to "
                  "bfloat16 or IEEE half: half their bytes, faster kernels; the model changes slightly, except that "
                  "float16 is exact for a model whose weights came from an fp16 checkpoint; f32, bf16, f16 also "
                  "accepted)")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16", "f32", "bf16", "f16"}));
  cmd->add_option("--out", f->out, "compressed model directory to write")->required();
  cmd->add_option("--json", f->json_path, "write the results as one JSON object to this path");
  cmd->callback([f] {
    model::ExportOptions o;
    o.format = model::parse_sparse_format(f->format);
    o.values = sparse::parse_value_type(f->dtype);
    std::string pattern = f->pattern;
    if (!pattern.empty() && o.format != model::SparseFormat::NM)
      throw std::invalid_argument("[export] --pattern applies to --format nm only (got --format " + f->format + ")");
    if (o.format == model::SparseFormat::NM) {
      if (pattern.empty()) {
        // The pattern the model was pruned with, when prune.json names one N:M pattern.
        const auto rec_path = std::filesystem::path(f->model) / "prune.json";
        if (std::filesystem::exists(rec_path)) {
          try {
            auto rec = nlohmann::json::parse(read_file(rec_path.string()));
            if (rec.contains("pattern") && rec["pattern"].is_string() &&
                rec["pattern"].get<std::string>().find(':') != std::string::npos)
              pattern = rec["pattern"];
          } catch (const nlohmann::json::exception& e) {
            throw std::runtime_error("[export] " + rec_path.string() + ": not valid JSON: " + e.what());
          }
        }
        if (pattern.empty()) pattern = "2:4";
      }
      const auto [n, m] = parse_nm_flag("export", pattern);
      o.n = n;
      o.m = m;
    }
    auto rep = model::export_compressed(f->model, f->out, o);
    const double ratio = rep.dense_tensor_bytes ? double(rep.file_bytes) / double(rep.dense_tensor_bytes) : 0.0;
    const double layer_ratio =
        rep.compressed_dense_bytes ? double(rep.compressed_bytes) / double(rep.compressed_dense_bytes) : 0.0;
    char line[512];
    std::snprintf(line, sizeof line,
                  "exported %s (%s%s%s): %zu Linear layers compressed, %zu dense; model.safetensors %.2f MB = %.1f%% of "
                  "dense F32 (%.2f MB); compressed layers %.1f%% of their dense size",
                  f->out.c_str(), f->format.c_str(),
                  o.format == model::SparseFormat::NM ? (" " + std::to_string(o.n) + ":" + std::to_string(o.m)).c_str() : "",
                  o.values == sparse::ValueType::f32 ? "" : (std::string(", ") + sparse::to_string(o.values) + " values").c_str(),
                  rep.compressed.size(), rep.dense.size(), rep.file_bytes / 1e6, 100 * ratio, rep.dense_tensor_bytes / 1e6,
                  100 * layer_ratio);
    std::cout << line << "\n";
    nlohmann::json j = {{"out", f->out},
                        {"format", f->format},
                        {"dtype", sparse::to_string(sparse::parse_value_type(f->dtype))},
                        {"compressed_layers", rep.compressed},
                        {"dense_layers", rep.dense},
                        {"file_bytes", rep.file_bytes},
                        {"dense_tensor_bytes", rep.dense_tensor_bytes},
                        {"size_ratio", ratio},
                        {"compressed_bytes", rep.compressed_bytes},
                        {"compressed_dense_bytes", rep.compressed_dense_bytes},
                        {"compressed_layer_ratio", layer_ratio},
                        {"global_sparsity", rep.global_sparsity}};
    if (o.format == model::SparseFormat::NM) j["pattern"] = std::to_string(o.n) + ":" + std::to_string(o.m);
    write_json(f->json_path, j);
  });
}

}  // namespace ressa::cli
