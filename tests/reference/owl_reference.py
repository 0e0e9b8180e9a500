#!/usr/bin/python3
"""Independent float64 reference of OWL's layer-wise sparsity allocation.

Follows Yin et al., "Outlier Weighed Layerwise Sparsity (OWL): A Missing Secret Sauce for Pruning
LLMs to High Sparsity" (ICML 2024) and its code, github.com/luuyin/OWL (lib/prune_all.py:
prune_wanda_outlier, check_outlier_mean), written from those, not from ressa's C++:
  1. metric_l = |W_ij| * ||X_:,j||_2 per layer (W [out, in], X [n, in]; the plain column norm,
     OWL's sqrt(mean square) differs by 1/sqrt(n), which cancels in step 2);
  2. per block b: D_b = 100 * #(metric > M * mean(metric)) / numel over all its layers' metrics;
  3. r_b = (D_b - min D) / (max D - min D) * 2 * lambda (0 if max == min),
     s_b = s - r_b + sum_b n_b r_b / sum_b n_b (n_b = weights in block b; OWL uses the plain
     mean, which agrees when blocks have equal sizes; the size-weighted mean makes the realised
     sparsity over the tower exactly s). Every layer of block b gets s_b.
Everything is computed in float64 from the float32 values written to the fixture.

Writes tests/fixtures/owl/owl_blocks.safetensors (block{b}.layer{l}.weight F32 [out, in],
block{b}.layer{l}.inputs F32 [37, in]) and tests/fixtures/owl/owl_expected.json.
Run: /usr/bin/python3 tests/reference/owl_reference.py   (python3-torch, no other deps)
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "owl")
sys.path.insert(0, HERE)
from llava_reference import write_safetensors  # noqa: E402  (the safetensors writer only)

N_ROWS = 37
# Per block: layer shapes [out, in] and how outliers are planted.
#   x_cols: (columns, scale) input columns of X multiplied by scale (shared by the block's layers)
#   w_tail: student-t degrees of freedom for the weights (None: Gaussian)
#   w_big:  (probability, scale) of an individual weight being multiplied by scale
BLOCKS = [
    dict(shapes=[(24, 16), (24, 16), (16, 24)], x_cols=None, w_tail=None, w_big=None),
    dict(shapes=[(32, 16), (32, 16), (16, 32)], x_cols=([2, 11], 30.0), w_tail=None, w_big=None),
    dict(shapes=[(24, 16), (24, 16), (16, 24)], x_cols=None, w_tail=2.0, w_big=None),
    dict(shapes=[(12, 8), (12, 8), (8, 12)], x_cols=([5], 50.0), w_tail=None, w_big=(0.02, 8.0)),
    dict(shapes=[(24, 16), (24, 16), (16, 24)], x_cols=([0, 7, 13], 20.0), w_tail=3.0, w_big=(0.01, 6.0)),
]
RATIOS = [5.0, 3.0]
CASES = [(0.5, 5.0, 0.08), (0.7, 5.0, 0.08), (0.8, 5.0, 0.08), (0.7, 3.0, 0.2), (0.6, 5.0, 0.0)]


def make_blocks():
    torch.manual_seed(20240601)
    tensors = {}
    for b, spec in enumerate(BLOCKS):
        for l, (d_out, d_in) in enumerate(spec["shapes"]):
            if spec["w_tail"] is None:
                W = torch.randn(d_out, d_in)
            else:
                W = torch.distributions.StudentT(spec["w_tail"]).sample((d_out, d_in)) * 0.5
            if spec["w_big"] is not None:
                p, scale = spec["w_big"]
                W = torch.where(torch.rand(d_out, d_in) < p, W * scale, W)
            X = torch.randn(N_ROWS, d_in)
            if spec["x_cols"] is not None:
                cols, scale = spec["x_cols"]
                X[:, [c % d_in for c in cols]] *= scale
            tensors[f"block{b}.layer{l}.weight"] = W.float().contiguous()
            tensors[f"block{b}.layer{l}.inputs"] = X.float().contiguous()
    return tensors


def layer_metric(W, X):
    """|W_ij| * ||X_:,j||_2 in float64."""
    W = W.double()
    X = X.double()
    col_norm = torch.sqrt((X * X).sum(dim=0))  # [in]
    return W.abs() * col_norm.reshape(1, -1)


def outlier_ratio(metrics, M):
    """Percentage of the block's metric entries above M times their mean; also the smallest
    relative distance of any entry to the threshold (how robust the count is to rounding)."""
    flat = torch.cat([m.flatten() for m in metrics])
    thr = flat.mean() * M
    count = int((flat > thr).sum().item())
    margin = ((flat - thr).abs() / thr).min().item()
    return 100.0 * count / flat.numel(), margin


def allocate(D, sizes, s, lam):
    lo, hi = min(D), max(D)
    if hi == lo:
        r = [0.0] * len(D)
    else:
        r = [(d - lo) / (hi - lo) * 2.0 * lam for d in D]
    mean_w = sum(n * x for n, x in zip(sizes, r)) / sum(sizes)
    return [s - x + mean_w for x in r]


def main():
    tensors = make_blocks()
    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, "owl_blocks.safetensors"), tensors)

    blocks, metrics = [], []
    for b, spec in enumerate(BLOCKS):
        names = [f"block{b}.layer{l}" for l in range(len(spec["shapes"]))]
        ms = [layer_metric(tensors[n + ".weight"], tensors[n + ".inputs"]) for n in names]
        metrics.append(ms)
        blocks.append({"layers": names, "weights": sum(m.numel() for m in ms)})
    sizes = [blk["weights"] for blk in blocks]

    ratios, worst_margin = {}, 1.0
    for M in RATIOS:
        D = []
        for ms in metrics:
            d, margin = outlier_ratio(ms, M)
            D.append(d)
            worst_margin = min(worst_margin, margin)
        ratios[M] = D
        print(f"M={M:g}: D_b = {D}")
    print(f"smallest relative distance of a metric to its threshold: {worst_margin:.3e}")
    assert worst_margin > 1e-4, "an entry sits too close to M*mean; change the seed"
    for M, D in ratios.items():
        assert len(set(D)) == len(D), f"M={M:g}: D_b values should differ across blocks"

    cases = []
    for s, M, lam in CASES:
        sb = allocate(ratios[M], sizes, s, lam)
        wmean = sum(n * x for n, x in zip(sizes, sb)) / sum(sizes)
        assert abs(wmean - s) < 1e-12, (s, wmean)
        assert all(0.0 <= x <= 1.0 for x in sb), sb
        assert all(s - 2 * lam - 1e-12 <= x <= s + 2 * lam + 1e-12 for x in sb), sb
        print(f"s={s} M={M:g} lambda={lam}: s_b = {sb}  (weighted mean {wmean!r})")
        cases.append({"target": s, "m": M, "lambda": lam, "block_sparsity": sb,
                      "weighted_mean_sparsity": wmean})

    expected = {
        "source": "tests/reference/owl_reference.py: float64 reference of OWL layer-wise sparsity "
                  "(Yin et al., ICML 2024; github.com/luuyin/OWL lib/prune_all.py prune_wanda_outlier), "
                  "size-weighted mean of r_b",
        "blocks": blocks,
        "outlier_ratio": {f"M={M:g}": D for M, D in ratios.items()},
        "cases": cases,
    }
    with open(os.path.join(OUT, "owl_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("owl_blocks.safetensors (5 blocks x 3 layers: weights + calibration inputs) and "
                "owl_expected.json (OWL outlier ratios D_b and per-block sparsities, float64).\n"
                "Made by: /usr/bin/python3 tests/reference/owl_reference.py\n")
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
