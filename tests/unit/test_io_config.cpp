// Tests for ressa::io's built-in presets: every listed preset is a valid config, and small-p8 is
// the small preset with 8x8 patches only (the FashionVQA teacher's shape).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "ressa/io/config.h"

using namespace ressa;

TEST(Presets, EveryListedPresetValidates) {
  for (const std::string& name : io::preset_names()) {
    io::LlavaConfig c = io::preset_config(name);
    EXPECT_NO_THROW(c.validate(name)) << name;
  }
  EXPECT_THROW(io::preset_config("medium"), std::invalid_argument);
}

TEST(Presets, SmallP8DiffersFromSmallOnlyInPatchSize) {
  const io::LlavaConfig s = io::preset_config("small"), p = io::preset_config("small-p8");
  EXPECT_EQ(s.vision.patch_size, 16);
  EXPECT_EQ(p.vision.patch_size, 8);
  EXPECT_EQ(s.image_tokens(), 16);
  EXPECT_EQ(p.image_tokens(), 64);
  io::LlavaConfig q = p;
  q.vision.patch_size = 16;
  EXPECT_EQ(io::config_to_json(q), io::config_to_json(s));
}
