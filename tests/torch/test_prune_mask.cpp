// Tests for src/ressa/prune/pattern.* and mask.*: parsing, exact sparsity invariants (N zeros in
// every M-group, exact per-row / per-matrix counts), deterministic tie-breaking, error paths.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ressa/prune/mask.h"
#include "ressa/prune/pattern.h"

using namespace ressa::prune;

TEST(PrunePattern, ParseAndPrint) {
  auto u = SparsityPattern::parse("0.5");
  EXPECT_EQ(u.kind, SparsityPattern::Kind::Unstructured);
  EXPECT_DOUBLE_EQ(u.ratio, 0.5);
  EXPECT_EQ(u.to_string(), "0.5");
  EXPECT_EQ(SparsityPattern::parse("0.7").to_string(), "0.7");
  EXPECT_TRUE(SparsityPattern::parse("0").is_dense());
  auto nm = SparsityPattern::parse("2:4");
  EXPECT_TRUE(nm.is_nm());
  EXPECT_EQ(nm.n, 2);
  EXPECT_EQ(nm.m, 4);
  EXPECT_DOUBLE_EQ(nm.ratio, 0.5);
  EXPECT_EQ(nm.to_string(), "2:4");
  EXPECT_EQ(SparsityPattern::parse("4:8").to_string(), "4:8");
  for (const char* bad : {"1", "1.5", "-0.1", "nan", "inf", "", "0.5x", " 0.5", "4:2", "0:4", "2:2", "2:", ":4", "a:b", "2:4:8"})
    EXPECT_THROW(SparsityPattern::parse(bad), std::invalid_argument) << bad;
  try {
    SparsityPattern::parse("4:2");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("0 < N < M"), std::string::npos) << e.what();
  }
}

TEST(PrunePattern, MethodAndGranularityNames) {
  for (auto m : {Method::Magnitude, Method::Wanda, Method::SparseGPT, Method::DSnoT})
    EXPECT_EQ(parse_method(to_string(m)), m);
  EXPECT_EQ(to_string(Method::DSnoT), "dsnot");
  EXPECT_THROW(parse_method("Wanda"), std::invalid_argument);
  EXPECT_EQ(parse_granularity("row"), Granularity::Row);
  EXPECT_EQ(parse_granularity("matrix"), Granularity::Matrix);
  EXPECT_THROW(parse_granularity("layer"), std::invalid_argument);
}

TEST(PruneMask, NMExactlyNZerosPerGroup) {
  torch::manual_seed(1);
  auto score = torch::rand({13, 64});
  for (auto [n, m] : {std::pair{2, 4}, {4, 8}, {1, 4}, {3, 4}, {5, 8}}) {
    auto mask = nm_mask(score, n, m);
    ASSERT_EQ(mask.scalar_type(), torch::kUInt8);
    auto zeros = (mask == 0).reshape({13, 64 / m, m}).sum(2);
    EXPECT_TRUE((zeros == n).all().item<bool>()) << n << ":" << m;
    // The pruned ones are the lowest of their group: max pruned score <= min kept score.
    auto g = score.reshape({13, 64 / m, m});
    auto gm = mask.reshape({13, 64 / m, m}).to(torch::kBool);
    auto max_pruned = g.masked_fill(gm, -1).amax(2), min_kept = g.masked_fill(~gm, 2).amin(2);
    EXPECT_TRUE((max_pruned <= min_kept).all().item<bool>());
    EXPECT_TRUE(is_nm_valid(score * mask, n, m));
  }
  EXPECT_THROW(nm_mask(torch::rand({4, 30}), 2, 4), std::invalid_argument);
  EXPECT_THROW(nm_mask(torch::rand({4, 32}), 4, 4), std::invalid_argument);
}

TEST(PruneMask, UnstructuredExactRatio) {
  torch::manual_seed(2);
  auto score = torch::randn({7, 100});
  for (double r : {0.0, 0.1, 0.3, 0.5, 0.57, 0.7, 0.99}) {
    auto row = unstructured_mask(score, r, Granularity::Row);
    auto per_row = (row == 0).sum(1);
    EXPECT_TRUE((per_row == prune_count(r, 100)).all().item<bool>()) << r;
    auto mat = unstructured_mask(score, r, Granularity::Matrix);
    EXPECT_EQ((mat == 0).sum().item<int64_t>(), prune_count(r, 700)) << r;
  }
  EXPECT_EQ(prune_count(0.57, 100), 57);  // not 56 from 0.57*100 = 56.99999999999999
  EXPECT_EQ(prune_count(0.5, 7), 3);
  // Matrix granularity uses one threshold: every pruned score <= every kept score.
  auto mat = unstructured_mask(score, 0.5, Granularity::Matrix).to(torch::kBool);
  EXPECT_LE(score.masked_select(~mat).max().item<float>(), score.masked_select(mat).min().item<float>());
  EXPECT_THROW(unstructured_mask(score, 1.0, Granularity::Row), std::invalid_argument);
  EXPECT_THROW(unstructured_mask(torch::rand({3}), 0.5, Granularity::Row), std::invalid_argument);
  auto nan = score.clone();
  nan[0][0] = NAN;
  EXPECT_THROW(unstructured_mask(nan, 0.5, Granularity::Row), std::invalid_argument);
  EXPECT_THROW(prune_lowest(score, 101, Granularity::Row), std::invalid_argument);
}

TEST(PruneMask, TiesPruneLowerIndexFirst) {
  auto c = torch::ones({3, 8});
  auto expect_row = torch::tensor({0, 0, 0, 1, 1, 1, 1, 1}, torch::kUInt8);
  auto row = unstructured_mask(c, 0.375, Granularity::Row);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(row[i].equal(expect_row));
  auto mat = unstructured_mask(c, 0.5, Granularity::Matrix).reshape(-1);  // 12 of 24, row-major
  EXPECT_TRUE(mat.equal(torch::cat({torch::zeros({12}, torch::kUInt8), torch::ones({12}, torch::kUInt8)})));
  auto nm = nm_mask(c, 2, 4);
  auto expect_nm = torch::tensor({0, 0, 1, 1, 0, 0, 1, 1}, torch::kUInt8);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(nm[i].equal(expect_nm));
  // Same result on every call (deterministic), and ties only among equals.
  auto s = torch::tensor({{3.f, 1.f, 2.f, 1.f, 1.f, 5.f}});
  EXPECT_TRUE(unstructured_mask(s, 0.5, Granularity::Row).equal(torch::tensor({{1, 0, 1, 0, 0, 1}}, torch::kUInt8)));
  EXPECT_TRUE(unstructured_mask(s, 0.34, Granularity::Row).equal(torch::tensor({{1, 0, 1, 0, 1, 1}}, torch::kUInt8)));
}

TEST(PruneMask, MaskForDispatch) {
  torch::manual_seed(3);
  auto score = torch::rand({4, 16});
  EXPECT_TRUE(mask_for(score, SparsityPattern::nm(2, 4), Granularity::Matrix).equal(nm_mask(score, 2, 4)));
  EXPECT_TRUE(mask_for(score, SparsityPattern::unstructured(0.25), Granularity::Matrix)
                  .equal(unstructured_mask(score, 0.25, Granularity::Matrix)));
}

TEST(PruneMask, NMValidityAndSparsity) {
  auto w = torch::tensor({{0.f, 1.f, 0.f, 2.f, 0.f, 0.f, 0.f, 3.f}});
  EXPECT_TRUE(is_nm_valid(w, 2, 4));   // groups have 2 and 3 zeros
  EXPECT_FALSE(is_nm_valid(w, 3, 4));
  EXPECT_FALSE(is_nm_valid(torch::zeros({2, 6}), 2, 4));  // 6 columns cannot be 2:4
  EXPECT_TRUE(is_nm_valid(torch::zeros({0, 8}), 2, 4));
  EXPECT_DOUBLE_EQ(sparsity(w), 5.0 / 8);
  EXPECT_DOUBLE_EQ(sparsity(torch::zeros({0})), 0.0);
}
