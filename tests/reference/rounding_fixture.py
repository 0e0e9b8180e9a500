"""Shared by bf16_reference.py and f16_reference.py: writes "<fp32 bits hex> <16-bit hex>" lines,
the 16-bit values being what torch's conversion gives for each fp32 bit pattern."""
import os
import struct

import torch

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def write_fixture(name, bits, convert):
    """bits: fp32 patterns (NaN payloads dropped: the tests check NaN separately); convert: a
    float32 tensor -> the 16-bit tensor (e.g. lambda t: t.half())."""
    bits = [b for b in bits if (b & 0x7FFFFFFF) <= 0x7F800000]
    vals = torch.tensor([struct.unpack("<f", struct.pack("<I", b))[0] for b in bits], dtype=torch.float32)
    out = convert(vals).view(torch.int16).tolist()
    path = os.path.join(FIXTURES, name)
    with open(path, "w") as f:
        for b, h in zip(bits, out):
            f.write(f"{b:08x} {h & 0xFFFF:04x}\n")
    print(f"wrote {len(bits)} values to {path}")
