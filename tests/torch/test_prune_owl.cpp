// OWL's allocation (src/ressa/prune/owl.*) against the independent float64 implementation of the
// paper's formula in tests/reference/owl_reference.py (fixture tests/fixtures/owl/): each block's
// outlier ratio from its layers' weights and calibration inputs, then each block's sparsity.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "ressa/io/safetensors.h"
#include "ressa/model/checkpoint.h"
#include "ressa/prune/layer_stats.h"
#include "ressa/prune/owl.h"

using namespace ressa;

namespace {

const std::string kDir = std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/owl/";

nlohmann::json expected() {
  nlohmann::json j;
  std::ifstream(kDir + "owl_expected.json") >> j;
  return j;
}

// The fixture's blocks as OwlLayers: the weight and ||X_j||² of its inputs through LayerStats,
// as the pruning driver collects them.
std::vector<std::vector<prune::OwlLayer>> fixture_blocks(const nlohmann::json& want) {
  auto f = io::SafetensorsFile::open(kDir + "owl_blocks.safetensors");
  auto tensor = [&](const std::string& name) { return model::to_torch(f.at(name), f.data(f.at(name))); };
  std::vector<std::vector<prune::OwlLayer>> blocks;
  for (const auto& b : want.at("blocks")) {
    std::vector<prune::OwlLayer> layers;
    for (const auto& l : b.at("layers")) {
      const std::string name = l;
      auto x = tensor(name + ".inputs");
      prune::LayerStats st(x.size(1), /*need_hessian=*/false);
      st.add_batch(x.slice(0, 0, 20));  // two batches, as calibration feeds them
      st.add_batch(x.slice(0, 20));
      layers.push_back({tensor(name + ".weight"), st.col_norm_sq()});
    }
    blocks.push_back(layers);
  }
  return blocks;
}

}  // namespace

TEST(Owl, OutlierRatiosMatchTheFloat64Reference) {
  const auto want = expected();
  const auto blocks = fixture_blocks(want);
  for (double m : {5.0, 3.0}) {
    const auto& ref = want.at("outlier_ratio").at(m == 5.0 ? "M=5" : "M=3");
    ASSERT_EQ(ref.size(), blocks.size());
    for (size_t b = 0; b < blocks.size(); ++b) {
      EXPECT_NEAR(prune::owl_outlier_ratio(blocks[b], m), ref[b].get<double>(), 1e-9) << "M=" << m << " block " << b;
    }
  }
}

TEST(Owl, BlockSparsitiesMatchTheFloat64ReferenceAndKeepTheMean) {
  const auto want = expected();
  const auto blocks = fixture_blocks(want);
  std::vector<double> size;
  for (const auto& b : want.at("blocks")) size.push_back(b.at("weights").get<double>());
  for (const auto& c : want.at("cases")) {
    const double target = c.at("target"), m = c.at("m"), lambda = c.at("lambda");
    std::vector<double> ratio;
    for (const auto& blk : blocks) ratio.push_back(prune::owl_outlier_ratio(blk, m));
    const auto s = prune::owl_block_sparsities(ratio, size, target, lambda);
    const auto& ref = c.at("block_sparsity");
    ASSERT_EQ(s.size(), ref.size());
    double weighted = 0, total = 0;
    for (size_t b = 0; b < s.size(); ++b) {
      EXPECT_NEAR(s[b], ref[b].get<double>(), 1e-6) << "target " << target << " M=" << m << " lambda " << lambda;
      weighted += size[b] * s[b];
      total += size[b];
    }
    EXPECT_NEAR(weighted / total, target, 1e-12);
  }
}

TEST(Owl, EqualRatiosGiveTheUniformAllocationAndBadSettingsAreRefused) {
  const auto s = prune::owl_block_sparsities({2.0, 2.0, 2.0}, {10, 20, 30}, 0.6, 0.08);
  for (double v : s) EXPECT_DOUBLE_EQ(v, 0.6);
  EXPECT_THROW(prune::owl_block_sparsities({0.0, 10.0}, {1, 1}, 0.95, 0.2), std::invalid_argument);  // 1.15 >= 1
  EXPECT_THROW(prune::owl_block_sparsities({1.0}, {1.0, 2.0}, 0.5, 0.1), std::invalid_argument);
  prune::OwlOptions bad;
  bad.threshold = 0;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
  bad = {};
  bad.lambda = -0.1;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
}
