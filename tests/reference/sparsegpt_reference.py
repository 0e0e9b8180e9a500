#!/usr/bin/env python3
"""Independent float64 reference of the SparseGPT OBS sweep (Frantar & Alistarh 2023, Alg. 1).

Writes tests/fixtures/prune_sparsegpt.safetensors, read by tests/torch/test_prune_methods.cpp:
  W [16, 256] F64, X [64, 256] F64 (fixed: torch.manual_seed(0)),
  <case>.weight F64 [16, 256] (pruned and OBS-updated), <case>.mask U8 (1 = kept) for the cases
  s50_matrix (50%, quota over each 128-column block = sparsegpt.py), s50_row (50%, quota per row
  of each block) and nm24 (2:4, chosen at the start of each 4-group during the sweep).

Written from the paper, not from ressa's C++: the OBS update is applied eagerly to every later
column (no lazy block batching), H⁻¹ comes from torch.linalg.inv, and ranking uses Python's
stable sorted() on (value, index). Shared conventions (documented in src/ressa/prune/):
  H = 2/n XᵀX; dead columns (H_jj = 0) get H_jj = 1 and W_:,j = 0; H += 0.01·mean(diag H)·I;
  U = upper Cholesky factor of H⁻¹; per block of 128 columns the saliency is w²/U_jj² with the
  weights as updated so far; a block prunes exactly floor(s·c2) - floor(s·c1) entries (c = the
  cumulative entry count), lowest saliency first, ties to the lower (row-major) index.
Run: /usr/bin/python3 tests/reference/sparsegpt_reference.py   (python3-torch, no other deps)
"""
import json
import math
import os
import struct

import torch

BLOCK = 128
DAMP = 0.01


def prune_count(ratio, count):
    return int(math.floor(ratio * count + 1e-9))


def lowest(values, k):
    """Indices of the k smallest values; ties go to the lower index."""
    return [i for _, i in sorted((v, i) for i, v in enumerate(values))[:k]]


def sparsegpt(W, X, ratio=0.0, nm=None, per_row=False):
    W = W.clone()
    d_out, d_in = W.shape
    H = 2.0 / X.shape[0] * (X.T @ X)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += DAMP * torch.mean(torch.diag(H)) * torch.eye(d_in, dtype=torch.float64)
    U = torch.linalg.cholesky(torch.linalg.inv(H), upper=True)
    prune = torch.zeros(d_out, d_in, dtype=torch.bool)
    for i1 in range(0, d_in, BLOCK):
        i2 = min(i1 + BLOCK, d_in)
        if nm is None:
            sal = (W[:, i1:i2] ** 2 / torch.diag(U)[i1:i2] ** 2).tolist()
            if per_row:
                k = prune_count(ratio, i2) - prune_count(ratio, i1)
                for r in range(d_out):
                    for j in lowest(sal[r], k):
                        prune[r, i1 + j] = True
            else:
                k = prune_count(ratio, d_out * i2) - prune_count(ratio, d_out * i1)
                flat = [v for row in sal for v in row]
                for f in lowest(flat, k):
                    prune[f // (i2 - i1), i1 + f % (i2 - i1)] = True
        for j in range(i1, i2):
            if nm is not None and j % nm[1] == 0:
                n, m = nm
                sal = (W[:, j:j + m] ** 2 / torch.diag(U)[j:j + m] ** 2).tolist()
                for r in range(d_out):
                    for c in lowest(sal[r], n):
                        prune[r, j + c] = True
            q = torch.where(prune[:, j], torch.zeros_like(W[:, j]), W[:, j])
            err = (W[:, j] - q) / U[j, j]
            W[:, j:] -= torch.outer(err, U[j, j:])  # eager OBS update of all later columns
            W[:, j] = q
    return W, (~prune).to(torch.uint8)


def write_safetensors(path, tensors):
    """Minimal safetensors writer: u64 header length, JSON header padded to 8, raw LE bytes."""
    names = {torch.float64: "F64", torch.uint8: "U8"}
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    torch.manual_seed(0)
    d_out, d_in, n = 16, 256, 64
    W = torch.randn(d_out, d_in, dtype=torch.float64)
    # Correlated inputs: a shared low-rank part plus noise, a few large-scale columns.
    X = torch.randn(n, 8, dtype=torch.float64) @ torch.randn(8, d_in, dtype=torch.float64)
    X += 0.5 * torch.randn(n, d_in, dtype=torch.float64)
    X[:, [3, 77, 200]] *= 10.0
    out = {"W": W, "X": X}
    for name, kw in [("s50_matrix", dict(ratio=0.5)), ("s50_row", dict(ratio=0.5, per_row=True)),
                     ("nm24", dict(nm=(2, 4)))]:
        w, mask = sparsegpt(W, X, **kw)
        assert torch.all(w[mask == 0] == 0)
        out[name + ".weight"], out[name + ".mask"] = w, mask
        err = ((X @ (W - w).T) ** 2).sum() / ((X @ W.T) ** 2).sum()
        print(f"{name}: sparsity {1 - mask.double().mean():.4f}, recon error {err:.4f}")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(root, "tests", "fixtures", "prune_sparsegpt.safetensors")
    write_safetensors(path, out)
    print("wrote", path)


if __name__ == "__main__":
    main()
