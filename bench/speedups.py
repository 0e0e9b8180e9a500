#!/usr/bin/env python3
"""Turns ressa_bench JSON output into the speedup table of docs/kernels.md.

usage: ressa_bench --benchmark_format=json --benchmark_out=b.json ... ; bench/speedups.py b.json
Uses the median aggregate when repetitions were run, else the single run. Speedups are against
the fastest OpenBLAS call for that shape (sgemv at batch 1, sgemm otherwise) and against the
benchmark's own AVX2 dense kernel, all at the same thread count and from the same run. Times are
CPU time at 1 thread and wall time at 2 threads; GB/s = (weight + x + y bytes) / time.
"""
import json
import sys

ISA = {"1": "avx2", "2": "avx512"}


def main(path):
    data = json.load(open(path))
    times = {}  # (kind, rows, batch, threads, isa) -> (real ms, GB/s)
    for b in data["benchmarks"]:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        if b.get("error_occurred"):
            continue
        parts = b["run_name"].split("/")
        kind = parts[0].replace("BM_", "") + ("/" + parts[1] if not parts[1].isdigit() else "")
        nums = [p for p in parts if p.isdigit()]
        rows, batch, threads = nums[:3]
        isa = ISA.get(nums[3], "") if len(nums) > 3 else ""
        # One thread: CPU time of the calling thread; more threads: wall time (see bench_sparse.cpp).
        t = b["cpu_time"] if threads == "1" else b["real_time"]
        ms = t * {"ns": 1e-6, "us": 1e-3, "ms": 1.0}[b["time_unit"]]
        times[(kind, rows, batch, threads, isa)] = (ms, b.get("bytes", 0.0) / (ms * 1e6), b.get("bytes", 0.0))
    print(f"context: openblas_core={data['context'].get('openblas_core')} "
          f"sparse_isa={data['context'].get('sparse_isa')}\n")
    print("| shape | batch | threads | kernel | isa | ms | GB/s | MB moved | bytes bound | vs OpenBLAS | vs own AVX2 dense |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (kind, rows, batch, threads, isa), (ms, gbs, nbytes) in sorted(
            times.items(), key=lambda kv: (int(kv[0][1]), int(kv[0][2]), int(kv[0][3]), kv[0][0], kv[0][4])):
        blas = [times[k][0] for k in [("dense_openblas/sgemv", rows, batch, threads, ""),
                                      ("dense_openblas/sgemm", rows, batch, threads, "")] if k in times]
        own = times.get(("dense_avx2", rows, batch, threads, ""))
        vs_blas = f"{min(blas) / ms:.2f}x" if blas else "-"
        vs_own = f"{own[0] / ms:.2f}x" if own else "-"
        # Speedup a purely bandwidth-bound kernel would get over dense: dense bytes / these bytes.
        bound = f"{own[2] / nbytes:.2f}x" if own and nbytes else "-"
        print(f"| {rows}x4096 | {batch} | {threads} | {kind} | {isa} | {ms:.3f} | {gbs:.1f} | {nbytes / 1e6:.1f} | "
              f"{bound} | {vs_blas} | {vs_own} |")


if __name__ == "__main__":
    main(sys.argv[1])
