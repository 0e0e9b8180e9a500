// BLAS library detection (dladdr on sgemm_) and counting the CPUs this process may use.
#include "ressa/core/runtime.h"

#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sched.h>

#include <climits>
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "ressa/core/cpu_info.h"

namespace ressa {

std::string blas_library_path() {
  void* sym = dlsym(RTLD_DEFAULT, "sgemm_");
  if (!sym) return "";
  Dl_info info{};
  if (!dladdr(sym, &info) || !info.dli_fname) return "";
  char buf[PATH_MAX];
  if (realpath(info.dli_fname, buf)) return buf;
  return info.dli_fname;
}

bool blas_is_reference() {
  const std::string p = blas_library_path();
  if (p.empty()) return false;
  return p.find("openblas") == std::string::npos && p.find("mkl") == std::string::npos &&
         p.find("blis") == std::string::npos && p.find("atlas") == std::string::npos;
}

int cpu_quota_threads(const std::string& cpu_max) {
  // cgroup v2 cpu.max: "<quota> <period>" in microseconds, or "max <period>" for no limit.
  std::istringstream in(cpu_max);
  std::string quota;
  long long period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return 0;
  char* end = nullptr;
  const long long q = std::strtoll(quota.c_str(), &end, 10);
  if (end == quota.c_str() || *end || q <= 0) return 0;
  return static_cast<int>(std::max(1LL, (q + period - 1) / period));  // a partial core counts as one
}

int hardware_threads() {
  // The CPUs this process may run on (affinity: taskset, cpusets, Slurm), not all the machine's.
  int n = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  // A container's CPU quota (cgroup v2), when it allows fewer.
  std::ifstream f("/sys/fs/cgroup/cpu.max");
  std::string line;
  if (f && std::getline(f, line))
    if (const int q = cpu_quota_threads(line); q > 0 && (n <= 0 || q < n)) n = q;
  return n <= 0 ? 1 : n;
}

}  // namespace ressa

namespace ressa {

std::string openblas_coretype_for(const CpuFeatures& cpu) {
  if (cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512dq && cpu.avx512cd) return "SkylakeX";
  if (cpu.avx2 && cpu.fma) return "Haswell";
  return "";
}

std::string openblas_coretype_for_cpu() {
  if (std::getenv("OPENBLAS_CORETYPE")) return "";
  return openblas_coretype_for(cpu_features());
}

std::vector<std::pair<std::string, std::string>> runtime_environment() {
  std::vector<std::pair<std::string, std::string>> env;
  if (std::string core = openblas_coretype_for_cpu(); !core.empty()) env.emplace_back("OPENBLAS_CORETYPE", core);
  if (!std::getenv("OPENBLAS_THREAD_TIMEOUT")) env.emplace_back("OPENBLAS_THREAD_TIMEOUT", "4");
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) env.emplace_back("GOMP_SPINCOUNT", "1000");
  return env;
}

}  // namespace ressa

namespace ressa {
void return_free_heap() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
}
}  // namespace ressa
