// Device and thread-pool setup (see device.h).
#include "ressa/model/device.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>

#include "ressa/core/error.h"
#include "ressa/core/runtime.h"
#include "ressa/model/intraop.h"

namespace ressa::model {

Runtime setup_runtime(const RuntimeOptions& opts) {
  Runtime rt;
  RESSA_CHECK_ARG(opts.threads >= 0, "[setup_runtime] --threads must be >= 0, got ", opts.threads);
  if (opts.device == "cpu") {
    rt.device = torch::Device(torch::kCPU);
  } else if (opts.device.rfind("cuda", 0) == 0) {
    RESSA_CHECK_ARG(torch::cuda::is_available(), "[setup_runtime] --device ", opts.device,
                    ": this ressa is built against a libtorch without CUDA (or no GPU is visible)");
    rt.device = torch::Device(opts.device);
    // One GPU per process: a bare "cuda" in a multi-process job means cuda:<local rank>.
    if (opts.dist.world_size > 1 && opts.device == "cuda")
      rt.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(opts.dist.local_rank));
  } else {
    fail_arg("[setup_runtime] --device must be cpu or cuda[:N], got '", opts.device, "'");
  }
  // Processes sharing a node share its cores, so the default does not oversubscribe them.
  rt.threads = opts.threads > 0 ? opts.threads : std::max(1, hardware_threads() / std::max(1, opts.dist.local_world_size));
  torch::set_num_threads(rt.threads);
  // The sparse kernels take their threads from the same pool as torch's ops (intraop.h): with a
  // pool of their own, `ressa eval` of a 70% compressed model took 22.2 s instead of 12.4 s at 2
  // threads (docs/benchmarks.md "Kernel threads").
  run_sparse_kernels_on_intraop_pool();
  // OpenBLAS reads OPENBLAS_NUM_THREADS only when it loads, so set its pool through its API
  // (the policy is explained at RuntimeOptions::blas_threads).
  int blas_threads = opts.blas_threads < 0 ? rt.threads : opts.blas_threads > 0 ? opts.blas_threads : 1;
  if (const char* env = std::getenv("RESSA_BLAS_THREADS")) blas_threads = std::max(1, std::atoi(env));
  if (auto set = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set(blas_threads);
  rt.blas_threads = blas_threads;
  rt.blas = blas_library_path();
  if (blas_is_reference())
    rt.warning = "BLAS is the slow reference implementation (" + rt.blas +
                 "); install libopenblas0 for ~40x faster matrix products";
  if (opts.dist.world_size > 1) rt.group = std::make_shared<dist::Group>(opts.dist, rt.device);
  return rt;
}

}  // namespace ressa::model
