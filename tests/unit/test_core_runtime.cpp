// runtime_environment: the thread and BLAS variables the CLI sets before re-executing itself. It
// must never override a variable the user set, and must ask for the short OpenBLAS worker
// timeout and the short OpenMP spin otherwise; the OpenBLAS core type for made-up CPU features.
#include <sched.h>

#include <cstdlib>
#include <iterator>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "ressa/core/cpu_info.h"
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
  // "" on CPUs without AVX2, where nothing is set.
  const std::string core = ressa::openblas_coretype_for(ressa::cpu_features());
  EXPECT_EQ(ressa::openblas_coretype_for_cpu(), core);
  EXPECT_EQ(find(ressa::runtime_environment(), "OPENBLAS_CORETYPE"), core.empty() ? "<absent>" : core);
}

// The core type from made-up feature sets: SkylakeX needs all five AVX-512 subsets, Haswell
// AVX2 and FMA; anything less keeps OpenBLAS's own choice ("").
TEST(OpenblasEnvironment, CoretypeFromFeatures) {
  ressa::CpuFeatures none;
  ressa::CpuFeatures haswell;
  haswell.avx2 = haswell.fma = haswell.f16c = haswell.popcnt = haswell.bmi = haswell.bmi2 = true;
  ressa::CpuFeatures skylakex = haswell;
  skylakex.avx512f = skylakex.avx512bw = skylakex.avx512vl = skylakex.avx512dq = skylakex.avx512cd = true;
  ressa::CpuFeatures avx2_only = haswell, fma_only = haswell, no_cd = skylakex, f_only = haswell;
  avx2_only.fma = false;
  fma_only.avx2 = false;
  no_cd.avx512cd = false;  // Xeon Phi-like subsets are not SkylakeX
  f_only.avx512f = true;
  const std::pair<ressa::CpuFeatures, std::string> cases[] = {
      {none, ""},          {haswell, "Haswell"}, {skylakex, "SkylakeX"}, {avx2_only, ""},
      {fma_only, ""},      {no_cd, "Haswell"},   {f_only, "Haswell"},
  };
  for (size_t i = 0; i < std::size(cases); ++i)
    EXPECT_EQ(ressa::openblas_coretype_for(cases[i].first), cases[i].second) << "case " << i;
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
