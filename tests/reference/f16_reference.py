#!/usr/bin/env python3
"""fp32 -> IEEE half (fp16) rounding reference for ressa::sparse::to_f16 (f16 sparse values).

Writes tests/fixtures/f16_rounding.txt: one line per value, "<fp32 bits hex> <f16 bits hex>",
the f16 bits being what torch's Tensor.half() gives (round to nearest, ties to even; overflow to
infinity; subnormals below 2^-14). Read by tests/unit/test_sparse_formats.cpp. Run with Debian's
python3-torch:
    /usr/bin/python3 tests/reference/f16_reference.py
"""
import random

from rounding_fixture import write_fixture

bits = [
    0x00000000, 0x80000000, 0x3F800000, 0xBF800000,  # zeros, +-1
    0x3F801000, 0x3F803000, 0x3F801001, 0x3F800FFF,  # ties to even (down, up), just above/below
    0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001,  # 65504, just below the overflow tie, the tie, above
    0x47800000, 0x7F7FFFFF,                          # 65536, largest fp32: infinity
    0x38800000, 0x387FFFFF, 0x387FF000, 0x387FE000,  # 2^-14 (smallest normal half) and just below
    0x33800000, 0x33000000, 0x33000001, 0x32FFFFFF,  # 2^-24 (smallest subnormal), 2^-25 (tie), around
    0x33C00000, 0x34200000, 0x35000000, 0x36000001,  # subnormal ties and roundings
    0x00000001, 0x007FFFFF,                          # fp32 subnormals: zero
    0x7F800000, 0xFF800000,                          # infinities
    0x3DCCCCCD, 0xC0490FDB, 0x3A83126F,              # 0.1, -pi, 0.001
]
rng = random.Random(11)
bits += [rng.getrandbits(32) & 0xFFFFFFFF for _ in range(100)]
# Weight-like magnitudes (2^-30 .. 2^17), where the interesting roundings are.
bits += [(rng.getrandbits(1) << 31) | (rng.randint(97, 144) << 23) | rng.getrandbits(23) for _ in range(300)]
write_fixture("f16_rounding.txt", bits, lambda t: t.half())
