// The one place where device and thread pools are decided: parses --device, sets torch's
// intra-op threads, keeps OpenBLAS single-threaded under torch (so the pools do not fight),
// and reports a reference-BLAS warning. With several processes it also joins the data-parallel
// process group (dist/group.h) on the right device: cuda:<local rank> for NCCL, CPU for Gloo.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>

#include "ressa/dist/group.h"

namespace ressa::model {

struct RuntimeOptions {
  std::string device = "cpu";  // "cpu" | "cuda" | "cuda:N"
  int threads = 0;             // 0 = all cores (divided among the processes on this node)
  // OpenBLAS pool: 0 = 1 thread. torch's intra-op pool and OpenBLAS's both spin on the same
  // cores otherwise: `ressa train --preset small` ran at 55 samples/s with 2+2 threads, 155 with
  // torch 2 + BLAS 1, 145 with torch 1 + BLAS 2 (docs/benchmarks.md). A benchmark of one large
  // GEMM at a time (`ressa bench gemv`, `ressa prune`) passes -1 = as many as `threads`. RESSA_BLAS_THREADS
  // overrides every choice.
  int blas_threads = 0;
  dist::DistOptions dist;      // world_size > 1: join the process group (from env or flags)
};

struct Runtime {
  torch::Device device{torch::kCPU};
  int threads = 1;
  int blas_threads = 1;  // OpenBLAS pool size (when OpenBLAS serves BLAS)
  std::string blas;      // library serving sgemm_
  std::string warning;   // non-empty when something is slow or odd (the CLI prints it)
  std::shared_ptr<dist::Group> group;  // data-parallel group; null for a single process
  bool is_root() const { return !group || group->is_root(); }  // rank 0 writes outputs
};

// Applies the options process-wide (torch thread pool) and returns what was decided.
// Throws std::invalid_argument for a bad device or thread count.
Runtime setup_runtime(const RuntimeOptions& opts);

}  // namespace ressa::model
