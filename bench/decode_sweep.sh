#!/usr/bin/env bash
# Decoding at real sizes (docs/benchmarks.md "Decoding"): `ressa bench decode` on random weights of
# TinyLlama-1.1B + CLIP ViT-L/14-336 shapes (bench/configs/tinyllama-1.1b-clip-l336.json), dense
# fp32 against the sparse kernels, for each setting below: one JSON per setting in OUT_DIR, a
# table on stdout and OUT_DIR/decode.png (decode tokens/s against sparsity, dense vs sparse).
# Usage: bench/decode_sweep.sh BUILD_DIR OUT_DIR [THREADS] [PROMPT NEW]
# About 1-2 minutes per setting on a 2-core machine (the model is 5.6 GB in fp32: 8 GB free RAM).
set -euo pipefail
BUILD=${1:?build dir}; OUT=${2:?output dir}; T=${3:-2}; P=${4:-128}; N=${5:-64}
R="$BUILD/ressa"; CFG="$(cd "$(dirname "$0")" && pwd)/configs/tinyllama-1.1b-clip-l336.json"
mkdir -p "$OUT"
settings=("--sparsity 0.5" "--sparsity 0.7" "--sparsity 0.8" "--sparsity 0.9" "--pattern 2:4"
          "--sparsity 0.7 --dtype bfloat16" "--sparsity 0.7 --dtype float16")
for s in "${settings[@]}"; do
  tag=$(echo "$s" | tr -d ' -' | tr ':' 'x')
  "$R" bench decode --config "$CFG" $s --threads "$T" --prompt-tokens "$P" --new-tokens "$N" \
    --json "$OUT/$tag.json" 2>"$OUT/$tag.log" | tee -a "$OUT/summary.txt"
done
python3 - "$OUT" <<'PY'
import json, glob, os, sys
out = sys.argv[1]
rows = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(out, "*.json")))]
print("| setting | values | dense tok/s | sparse tok/s | decode speedup | prefill speedup | GB/token dense / sparse | achieved GB/s dense / sparse | read GB/s | same tokens |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| %s | %s | %.2f | %.2f | %.2fx | %.2fx | %.2f / %.2f | %.1f / %.1f | %.1f | %s |" % (
        r["pattern"], r["values"], r["dense_decode_tps"], r["sparse_decode_tps"], r["decode_speedup"],
        r["prefill_speedup"], r["dense_bytes_per_token"] / 1e9, r["bytes_per_token"] / 1e9,
        r["dense_achieved_gbps"], r["achieved_gbps"], r["read_gbps"], "yes" if r["same_tokens"] else "no"))
# decode.dat: unstructured fp32 settings by sparsity (the dense side at 0), then 2:4 as its own point.
with open(os.path.join(out, "decode.dat"), "w") as f:
    uns = sorted((r for r in rows if ":" not in r["pattern"] and r["values"] == "f32"), key=lambda r: float(r["pattern"]))
    dense = sum(r["dense_decode_tps"] for r in rows) / len(rows)
    f.write("# sparsity dense sparse\n0 %g %g\n" % (dense, dense))
    for r in uns:
        f.write("%g %g %g\n" % (100 * float(r["pattern"]), r["dense_decode_tps"], r["sparse_decode_tps"]))
    f.write("\n\n")
    for r in rows:
        if r["pattern"] == "2:4":
            f.write("50 %g %g\n" % (r["dense_decode_tps"], r["sparse_decode_tps"]))
PY
( cd "$OUT" && gnuplot -e "set terminal pngcairo size 800,480; set output 'decode.png';
  set xlabel 'sparsity of the block Linears (%)'; set ylabel 'decode tokens/s (batch 1)'; set grid;
  set key top left; set title 'Decoding TinyLlama-1.1B shapes: dense fp32 vs sparse kernels (fp32 values)';
  plot 'decode.dat' index 0 using 1:2 with linespoints lw 2 title 'dense', '' index 0 using 1:3 with linespoints lw 2 title 'sparse (bitmask)',
       '' index 1 using 1:3 with points pt 7 ps 2 title 'sparse 2:4'" ) || echo "gnuplot failed: no plot"
