// BLAS library detection (dladdr on sgemm_) and core counting.
#include "ressa/core/runtime.h"

#include <dlfcn.h>

#include <climits>
#include <cstdlib>
#include <thread>

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

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

}  // namespace ressa

namespace ressa {

std::string openblas_coretype_for_cpu() {
  if (std::getenv("OPENBLAS_CORETYPE")) return "";
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return "";
}

std::vector<std::pair<std::string, std::string>> runtime_environment() {
  std::vector<std::pair<std::string, std::string>> env;
  if (std::string core = openblas_coretype_for_cpu(); !core.empty()) env.emplace_back("OPENBLAS_CORETYPE", core);
  if (!std::getenv("OPENBLAS_THREAD_TIMEOUT")) env.emplace_back("OPENBLAS_THREAD_TIMEOUT", "4");
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT")) env.emplace_back("GOMP_SPINCOUNT", "1000");
  return env;
}

}  // namespace ressa
