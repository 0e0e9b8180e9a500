// Process-wide compute setup facts that do not need torch: which BLAS library serves sgemm_,
// and the default thread count (all cores, no oversubscription).
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace ressa {

// Path of the shared object that provides the BLAS symbol sgemm_ in this process ("" if none).
std::string blas_library_path();
// True when that library is the slow Netlib reference BLAS (Debian's libblas3 without OpenBLAS).
bool blas_is_reference();
// Number of CPUs this process may use (>= 1): its affinity mask (taskset, cpusets), capped by
// a cgroup v2 CPU quota (/sys/fs/cgroup/cpu.max) when that allows fewer. The default --threads.
int hardware_threads();
// The whole CPUs a cgroup v2 cpu.max line allows ("150000 100000" -> 2, rounding up); 0 for "max"
// (no limit) or an unreadable line.
int cpu_quota_threads(const std::string& cpu_max);

}  // namespace ressa

namespace ressa {
struct CpuFeatures;

// OpenBLAS picks its kernels from the CPU id and falls back to slow SSE3 ("Prescott") kernels
// on CPUs it does not know (seen here: a virtualised Xeon with AVX-512 ran sgemm at 7 GFLOP/s
// instead of 78). The core type matching a CPU's features: "SkylakeX" with AVX-512 F/BW/VL/DQ/CD,
// "Haswell" with AVX2+FMA, "" otherwise (OpenBLAS's own choice is kept). The root CMakeLists.txt
// mirrors this for the tests' environment.
std::string openblas_coretype_for(const CpuFeatures& cpu);
// OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so the CLI calls this first thing: when the
// variable is unset it returns openblas_coretype_for(cpu_features()); the caller sets it and
// re-executes itself. A user's own OPENBLAS_CORETYPE is always respected ("" when it is set).
std::string openblas_coretype_for_cpu();

// The thread and BLAS variables the CLI sets before re-executing itself, only those the user has
// not set (the one place ressa's thread policy lives; docs/benchmarks.md "Sharing the machine"):
// - OPENBLAS_CORETYPE from openblas_coretype_for_cpu;
// - OPENBLAS_THREAD_TIMEOUT=4, so that OpenBLAS's idle workers sleep after a call instead of
//   spinning (2^28 cycles by default) on the cores ressa's sparse-kernel threads need next (with
//   the default, 2-thread 2:4 kernels ran 2x slower on a Zen 5 VM);
// - GOMP_SPINCOUNT=1000 (unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set): torch's OpenMP
//   workers spin ~1000 iterations at a barrier, then sleep. libgomp's default (300,000 spins)
//   made two repairs sharing 2 cores take 3.4-7.9x longer each than one alone; with 1000 it is
//   1.3-1.4x, and one alone is as fast as with the default (within the run-to-run noise).
std::vector<std::pair<std::string, std::string>> runtime_environment();

// Returns the free memory inside the heap to the system (glibc malloc_trim: every whole free
// page, not only the top). Tensors below glibc's mmap threshold (which grows to 32 MB) come from
// the heap, and a long run of differently sized temporaries fragments it: pruning a 1.1B LLaVA
// grew it by ~150 MB per decoder block. Long stage-by-stage jobs call it between stages, which
// costs a walk over the heap and keeps allocation itself fast (a fixed 4 MB threshold held the
// same pruning to 2.6 GB instead of 3.9 GB but made it 15% slower). A no-op without glibc.
void return_free_heap();
}  // namespace ressa
