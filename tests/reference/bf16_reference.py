#!/usr/bin/env python3
"""fp32 -> bfloat16 rounding reference for ressa::sparse::to_bf16 (bf16 bitmask values).

Writes tests/fixtures/bf16_rounding.txt: one line per value, "<fp32 bits hex> <bf16 bits hex>",
the bf16 bits being what torch's Tensor.to(torch.bfloat16) gives (round to nearest, ties to
even). Read by tests/unit/test_sparse_formats.cpp. Run with Debian's python3-torch:
    /usr/bin/python3 tests/reference/bf16_reference.py
"""
import random

import torch

from rounding_fixture import write_fixture

bits = [
    0x00000000, 0x80000000, 0x3F800000, 0xBF800000,  # zeros, +-1
    0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF,  # ties to even (down, up), just above/below
    0x7F7FFFFF, 0x7F7F7FFF, 0x7F7F8000,              # largest finite: rounds to inf, stays, tie
    0x00000001, 0x00008000, 0x00018000, 0x007FFFFF,  # subnormals
    0x7F800000, 0xFF800000,                          # infinities
    0x3DCCCCCD, 0xC0490FDB,                          # 0.1, -pi
]
rng = random.Random(7)
bits += [rng.getrandbits(32) & 0xFFFFFFFF for _ in range(200)]
write_fixture("bf16_rounding.txt", bits, lambda t: t.to(torch.bfloat16))
