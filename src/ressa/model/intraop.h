// torch's intra-op thread pool for ressa's own parallel loops.
//
// ATen's at::parallel_for is a header template that runs in parallel only in a translation unit
// compiled with OpenMP (ATen/ParallelOpenMP.h tests _OPENMP, which -fopenmp defines); ressa's
// torch sources share a precompiled header built without it, so at::parallel_for there quietly
// runs on one thread. intraop.cpp is the one translation unit compiled with -fopenmp; parallel
// loops outside torch ops go through it. Torch-free header.
#pragma once
#include <cstdint>
#include <functional>

namespace ressa::model {

// f(b, e) over [begin, end) cut into at most torch::get_num_threads() contiguous chunks of at
// least grain items (as at::parallel_for); serial inside another parallel region. f may throw
// (the first exception is rethrown after the loop).
void intraop_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& f);

// Runs the sparse kernels' threads on torch's intra-op pool instead of their own pool
// (sparse::set_parallel_runner): a model's sparse layers and its torch ops then share the same
// threads instead of two pools spinning on the same cores.
void run_sparse_kernels_on_intraop_pool();

}  // namespace ressa::model
