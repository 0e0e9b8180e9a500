#!/usr/bin/python3
"""Largest |a - b| per tensor between two model directories' model.safetensors (F32 tensors),
without the safetensors package: header = 8-byte little-endian length + JSON, then raw data.
Usage: model_diff.py DIR_A DIR_B   -> prints the worst tensor and the overall max."""
import json
import struct
import sys

import numpy as np


def load(path):
    with open(path + "/model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"])
    return out


a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys(), "different tensor names"
diffs = {k: float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) if a[k].size else 0.0 for k in a}
worst = max(diffs, key=diffs.get)
print(f"tensors {len(diffs)}  max |diff| {diffs[worst]:.3e} ({worst})  tensors over 1e-4: "
      f"{sum(d > 1e-4 for d in diffs.values())}")
