// runtime_environment: the thread and BLAS variables the CLI sets before re-executing itself. It
// must never override a variable the user set, and must ask for the short OpenBLAS worker
// timeout and the short OpenMP spin otherwise.
#include <sched.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "ressa/core/runtime.h"

namespace {

// Sets (or, with nullptr, unsets) an environment variable for one scope, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() { had_ ? setenv(name_.c_str(), old_.c_str(), 1) : unsetenv(name_.c_str()); }

 private:
  std::string name_, old_;
  bool had_ = false;
};

std::string find(const std::vector<std::pair<std::string, std::string>>& env, const std::string& name) {
  for (const auto& [k, v] : env)
    if (k == name) return v;
  return "<absent>";
}

TEST(OpenblasEnvironment, AsksForTheShortTimeoutWhenUnset) {
  ScopedEnv t("OPENBLAS_THREAD_TIMEOUT", nullptr);
  EXPECT_EQ(find(ressa::runtime_environment(), "OPENBLAS_THREAD_TIMEOUT"), "4");
}

TEST(OpenmpEnvironment, ShortSpinUnlessTheUserChoseAWaitPolicy) {
  ScopedEnv s("GOMP_SPINCOUNT", nullptr);
  {
    ScopedEnv w("OMP_WAIT_POLICY", nullptr);
    EXPECT_EQ(find(ressa::runtime_environment(), "GOMP_SPINCOUNT"), "1000");
  }
  ScopedEnv w("OMP_WAIT_POLICY", "PASSIVE");
  EXPECT_EQ(find(ressa::runtime_environment(), "GOMP_SPINCOUNT"), "<absent>");
}

TEST(OpenblasEnvironment, NeverOverridesTheUsersSettings) {
  ScopedEnv t("OPENBLAS_THREAD_TIMEOUT", "20");
  ScopedEnv c("OPENBLAS_CORETYPE", "Haswell");
  ScopedEnv s("GOMP_SPINCOUNT", "5000");
  const auto env = ressa::runtime_environment();
  EXPECT_EQ(find(env, "OPENBLAS_THREAD_TIMEOUT"), "<absent>");
  EXPECT_EQ(find(env, "OPENBLAS_CORETYPE"), "<absent>");
  EXPECT_TRUE(env.empty());
}

TEST(OpenblasEnvironment, CoretypeFollowsTheCpuWhenUnset) {
  ScopedEnv c("OPENBLAS_CORETYPE", nullptr);
  // The same answer openblas_coretype_for_cpu gives from the CPU's features ("" on CPUs
  // without AVX2, where nothing is set).
  const std::string core = ressa::openblas_coretype_for_cpu();
  EXPECT_EQ(find(ressa::runtime_environment(), "OPENBLAS_CORETYPE"), core.empty() ? "<absent>" : core);
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd")) {
    EXPECT_EQ(core, "SkylakeX");
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    EXPECT_EQ(core, "Haswell");
  }
#endif
}

}  // namespace

namespace {

TEST(CpuCount, CgroupQuotaRoundsUpToWholeCpus) {
  EXPECT_EQ(ressa::cpu_quota_threads("max 100000"), 0);
  EXPECT_EQ(ressa::cpu_quota_threads("200000 100000"), 2);
  EXPECT_EQ(ressa::cpu_quota_threads("150000 100000"), 2);
  EXPECT_EQ(ressa::cpu_quota_threads("50000 100000"), 1);
  EXPECT_EQ(ressa::cpu_quota_threads(""), 0);
  EXPECT_EQ(ressa::cpu_quota_threads("abc 100000"), 0);
  EXPECT_EQ(ressa::cpu_quota_threads("100000 0"), 0);
}

TEST(CpuCount, FollowsTheAffinityMask) {
  cpu_set_t all;
  ASSERT_EQ(sched_getaffinity(0, sizeof(all), &all), 0);
  const int n = ressa::hardware_threads();
  EXPECT_GE(n, 1);
  EXPECT_LE(n, CPU_COUNT(&all));
  // Pinned to one CPU, the process may use one.
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &all)) {
      CPU_SET(c, &one);
      break;
    }
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  EXPECT_EQ(ressa::hardware_threads(), 1);
  ASSERT_EQ(sched_setaffinity(0, sizeof(all), &all), 0);
}

}  // namespace
