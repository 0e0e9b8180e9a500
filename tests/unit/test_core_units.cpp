// parse_byte_size: the sizes memory flags accept, in powers of 1024, and the errors for the rest.
#include <stdexcept>

#include <gtest/gtest.h>

#include "ressa/core/units.h"

using ressa::parse_byte_size;

TEST(CoreUnits, SizesAreBinaryMultiples) {
  EXPECT_EQ(parse_byte_size("1073741824", "--max-memory"), 1073741824);
  EXPECT_EQ(parse_byte_size("6G", "--max-memory"), 6LL << 30);
  EXPECT_EQ(parse_byte_size("6g", "--max-memory"), 6LL << 30);
  EXPECT_EQ(parse_byte_size("6GiB", "--max-memory"), 6LL << 30);
  EXPECT_EQ(parse_byte_size("6GB", "--max-memory"), 6LL << 30);
  EXPECT_EQ(parse_byte_size("512M", "--max-memory"), 512LL << 20);
  EXPECT_EQ(parse_byte_size("1.5G", "--max-memory"), 3LL << 29);
  EXPECT_EQ(parse_byte_size("2K", "--max-memory"), 2048);
  EXPECT_EQ(parse_byte_size("1T", "--max-memory"), 1LL << 40);
  EXPECT_EQ(parse_byte_size("0", "--max-memory"), 0);
}

TEST(CoreUnits, BadSizesNameTheFlag) {
  for (const char* bad : {"", "G", "-1G", "6X", "6 G", "six", "6GiBs", "1e30", "nan", "inf"}) {
    try {
      parse_byte_size(bad, "--max-memory");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("--max-memory"), std::string::npos) << e.what();
    }
  }
}
