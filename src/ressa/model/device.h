// The one place where device and thread pools are decided: parses --device, sets torch's
// intra-op threads, keeps OpenBLAS single-threaded under torch (so the pools do not fight),
// and reports a reference-BLAS warning.
#pragma once
#include <torch/torch.h>

#include <string>

namespace ressa::model {

struct RuntimeOptions {
  std::string device = "cpu";  // "cpu" | "cuda" | "cuda:N"
  int threads = 0;             // 0 = all cores
};

struct Runtime {
  torch::Device device{torch::kCPU};
  int threads = 1;
  int blas_threads = 1;  // OpenBLAS pool size (when OpenBLAS serves BLAS)
  std::string blas;      // library serving sgemm_
  std::string warning;   // non-empty when something is slow or odd (the CLI prints it)
};

// Applies the options process-wide (torch thread pool) and returns what was decided.
// Throws std::invalid_argument for a bad device or thread count.
Runtime setup_runtime(const RuntimeOptions& opts);

}  // namespace ressa::model
