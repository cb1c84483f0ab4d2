"""Benchmark `interp.vocab.scan_values`: top/bottom-20 projected tokens of every neuron of a model.

Usage: python scripts/bench_vocab.py [--model smollm2-135m] [--threads N] [--out docs/benchmarks-vocab.md]
Measures the ``exact`` (float32) and ``bf16`` (bfloat16 candidates re-scored in float32) modes, checks that both
return the same tokens, and appends a Markdown table to --out.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--out", default=None, help="write the Markdown report here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from interp import vocab
    from interp.models import load_model

    model = load_model(args.model)
    n = int(model.cfg.n_layers) * int(model.cfg.d_mlp)
    rows, results = [], {}
    auto_bf16 = vocab._bf16_is_faster(torch.device("cpu"))
    for precision in ("bf16", "exact"):
        for bottom in (False, True):
            t0 = time.perf_counter()
            res = vocab.scan_values(model, k=args.k, precision=precision, bottom=bottom)
            dt = time.perf_counter() - t0
            results[(precision, bottom)] = res
            rows.append((precision, "top+bottom" if bottom else "top", dt, n / dt))
            what = "top+bottom" if bottom else "top"
            print(f"{precision:6} {what:10} {dt:6.1f} s  {n / dt:8.0f} neurons/s", flush=True)
    a, b = results[("bf16", True)], results[("exact", True)]
    same_top = float((a.top_ids == b.top_ids).all(-1).mean())
    same_bot = float((a.bottom_ids == b.bottom_ids).all(-1).mean())
    pairs = zip(a.top_ids.reshape(-1, args.k), b.top_ids.reshape(-1, args.k))
    same_set = float(np.mean([set(x) == set(y) for x, y in pairs]))
    t0 = time.perf_counter()
    vocab.scan_values(model, k=args.k, norm="final_norm", bottom=False)
    dt_norm = time.perf_counter() - t0
    cpu = platform.processor() or platform.machine()
    lines = [
        f"## `scan_values` on {args.model} ({n:,} neurons, d_vocab {model.cfg.d_vocab:,}, k={args.k})",
        "",
        f"Machine: {cpu}, torch {torch.__version__}, {torch.get_num_threads()} thread(s); `precision='auto'` picks "
        f"{'bf16' if auto_bf16 else 'exact'} here. Wall-clock of one call, model already loaded.",
        "",
        "| precision | tokens | seconds | neurons/s |",
        "|---|---|---:|---:|",
        *[f"| {p} | {t} | {dt:.1f} | {r:,.0f} |" for p, t, dt, r in rows],
        f"| auto | top, `norm='final_norm'` | {dt_norm:.1f} | {n / dt_norm:,.0f} |",
        "",
        f"bf16 vs exact: identical ordered top-{args.k} for {100 * same_top:.2f}% of neurons "
        f"(identical sets {100 * same_set:.2f}%), bottom-{args.k} {100 * same_bot:.2f}%; logits are float32 in both.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
