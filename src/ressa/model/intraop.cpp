// See intraop.h. Compiled with -fopenmp and without the precompiled header (CMakeLists.txt).
#include "ressa/model/intraop.h"

#include <ATen/Parallel.h>

#include "ressa/sparse/kernels.h"

#ifndef _OPENMP
#error "intraop.cpp must be compiled with -fopenmp (CMakeLists.txt): at::parallel_for is serial without it"
#endif

namespace ressa::model {
namespace {

void sparse_runner(int threads, const std::function<void(int)>& body) {
  intraop_for(0, threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) body(int(i));
  });
}

}  // namespace

void intraop_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
  at::parallel_for(begin, end, grain, f);
}

void run_sparse_kernels_on_intraop_pool() { sparse::set_parallel_runner(sparse_runner); }

}  // namespace ressa::model
