#!/usr/bin/env python3
"""Runs the sparse-kernel acceptance matrix with `ressa bench gemv` and prints it as a table.

usage: bench/gemv_bars.py [--ressa build/ressa] [--passes 2] [--threads 1,2] [--min-time 2]
                          [--burst K] [--no-cold] [--quick | --shapes RxC,...] [--out DIR]

The matrix (fp32 weights, dense = libtorch with OpenBLAS at the same thread count, same run):
batch 1 at 70% unstructured (bar 2.0x) and at 2:4 (bar 1.5x), batch 16 at 70% (bar 1.2x), each for
4096x4096 and 11008x4096, at every thread count given, with one weight repeated ("warm") and with
copies of it rotated so that every call streams its weight from memory ("cold", `--cold`). Every
configuration runs once per pass, passes one after another, so that a change of the machine's load
shows as a difference between passes rather than inside one row. Each run's JSON is kept in --out,
with summary.json (per configuration: bar, the speedup and JSON file of each pass, passes met).
--burst K times K calls of each side back to back per sample (`bench gemv --burst`), as a decode
step runs one layer's products after another; the default 1 times every call alone, each waking the
threads that slept through the other side's call.

A row is "met" when the speedup of every pass reaches its bar; the table also gives the spread of
the per-round ratio inside each run (p10-p90), because on a shared host the dense side's median
moves from run to run. --quick runs 1024x1024 and 2752x1024 and --shapes the given ones (the same
bars: a smoke test of the script or a look at other layer shapes, not the issue's measurement).
The last line counts the configurations that met their bar in every pass.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

BARS = [  # (batch, what, bar)
    (1, "0.7", 2.0),
    (1, "2:4", 1.5),
    (16, "0.7", 1.2),
]


def weights(cold):
    return "cold" if cold else "warm"


def run_one(args, rows, cols, batch, what, threads, cold, path):
    cmd = [args.ressa, "bench", "gemv", "--rows", str(rows), "--cols", str(cols), "--batch", str(batch),
           "--threads", str(threads), "--min-time", str(args.min_time), "--burst", str(args.burst), "--json", path]
    cmd += ["--pattern", what] if ":" in what else ["--sparsity", what]
    if cold:
        cmd.append("--cold")
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        sys.exit(f"gemv_bars: {' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}")
    with open(path) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ressa", default="build/ressa")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--burst", type=int, default=1, help="calls per timed sample, back to back (bench gemv --burst)")
    ap.add_argument("--no-cold", action="store_true", help="only the repeated weight")
    ap.add_argument("--quick", action="store_true", help="small shapes (script smoke test)")
    ap.add_argument("--shapes", help="comma-separated RxC weight shapes instead of the issue's")
    ap.add_argument("--out", help="directory for the runs' JSON (default: a new temporary one)")
    args = ap.parse_args()
    if args.passes < 1:
        sys.exit("gemv_bars: --passes must be >= 1")
    if args.burst < 1:
        sys.exit("gemv_bars: --burst must be >= 1")
    threads = [int(t) for t in args.threads.split(",")]
    shapes = [(1024, 1024), (2752, 1024)] if args.quick else [(4096, 4096), (11008, 4096)]
    if args.shapes:
        try:
            shapes = [tuple(int(d) for d in s.lower().split("x")) for s in args.shapes.split(",")]
        except ValueError:
            sys.exit(f"gemv_bars: --shapes wants RxC,RxC,..., got {args.shapes!r}")
        if any(len(sh) != 2 or min(sh) < 1 for sh in shapes):
            sys.exit(f"gemv_bars: --shapes wants positive RxC pairs, got {args.shapes!r}")
    colds = [False] if args.no_cold else [False, True]
    out = args.out or tempfile.mkdtemp(prefix="gemv_bars.")
    os.makedirs(out, exist_ok=True)

    configs = [(r, c, b, w, bar, t, cold) for cold in colds for (r, c) in shapes for (b, w, bar) in BARS
               for t in threads]
    results = {cfg: [] for cfg in configs}
    total = len(configs) * args.passes
    n = 0
    for p in range(args.passes):
        for cfg in configs:
            r, c, b, w, bar, t, cold = cfg
            n += 1
            name = f"p{p + 1}_{r}x{c}_b{b}_{w.replace(':', 'of')}_t{t}_{weights(cold)}.json"
            print(f"[{n}/{total}] pass {p + 1}: {r}x{c} batch {b} {w} threads {t} {weights(cold)}",
                  file=sys.stderr, flush=True)
            results[cfg].append((name, run_one(args, r, c, b, w, t, cold, os.path.join(out, name))))

    first = results[configs[0]][0][1]
    print(f"runs: {out}; isa {first['isa']}, last-level cache {first['last_level_cache_bytes'] / 2**20:.0f} MiB, "
          f"{args.burst} call(s) per timed sample\n")
    print("| shape | batch | sparsity | threads | weights | bar | dense / sparse ms, speedup (round p10-p90) per pass | met |")
    print("|---|---|---|---|---|---|---|---|")
    met_rows = 0
    summary = []
    for cfg in configs:
        r, c, b, w, bar, t, cold = cfg
        nm = ":" in w
        runs = [j for _, j in results[cfg]]
        cells = "; ".join(f"{j['dense_ms']:.4g} / {j['sparse_ms']:.4g}, **{j['speedup']:.2f}x** "
                          f"({j['speedup_p10']:.2f}-{j['speedup_p90']:.2f})" for j in runs)
        met = sum(j["speedup"] >= bar for j in runs)
        met_rows += met == len(runs)
        summary.append({"rows": r, "cols": c, "batch": b, "pattern" if nm else "sparsity": w if nm else float(w),
                        "threads": t, "cold": cold, "bar": bar, "speedups": [j["speedup"] for j in runs],
                        "runs": [name for name, _ in results[cfg]], "passes_met": met, "met": met == len(runs)})
        print(f"| {r}x{c} | {b} | {'2:4' if nm else '70%'} | {t} | {weights(cold)} | {bar}x | "
              f"{cells} | {met}/{len(runs)} |")
    print(f"\n{met_rows} of {len(configs)} configurations met their bar in every pass.")
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"passes": args.passes, "burst": args.burst, "configurations": summary, "met": met_rows}, f, indent=1)


if __name__ == "__main__":
    main()
