"""The two exact-patching paths side by side on SmolLM2: the bridge's cone engine vs nnsight traces (local).

Every case runs both backends on the same model weights, the same IOI prompt pairs and the same sweep, in one
process, one after the other (one CPU thread), and reports the passes (bridge) / traces (nnsight), wall time, the
largest difference between the two effect tensors relative to the sweep's scale, and the nnsight plan's bytes.
It then runs attribution patching (AtP) on both. Writes docs/benchmarks-scale.md (or ``--out``).

    python scripts/bench_scale.py                       # needs nnsight: pip install 'interp[nnsight]'
    python scripts/bench_scale.py --quick --out /tmp/b.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _rel(ref, got) -> float:
    scale = max(float(np.abs(ref.effects - ref.baseline["base"]).max()),
                abs(ref.baseline["source"] - ref.baseline["base"]), 1e-12)
    return float(np.abs(ref.effects - got.effects).max()) / scale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=4, help="IOI prompt pairs (default 4)")
    ap.add_argument("--quick", action="store_true", help="two small cases (seconds)")
    ap.add_argument("--out", default="docs/benchmarks-scale.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from interp.models import load_model
    from interp.patching import patch
    from interp.patching.attribution import attribution_patch
    from interp.tasks import parse_task

    t = time.time()
    bridge = load_model("smollm2-135m")
    t_bridge = time.time() - t
    t = time.time()
    nn = load_model("smollm2-135m", backend="nnsight")
    t_nn = time.time() - t
    pairs = parse_task(f"ioi:{args.prompts}").pairs(bridge)
    every5 = list(range(0, 30, 5))
    cases = [
        ("resid, every 5th layer x all positions", dict(site="resid", positions="all", layers=every5)),
        ("heads, every 5th layer, last position", dict(site="heads", positions="last", layers=every5)),
        ("mlp_out, every 5th layer x all positions", dict(site="mlp_out", positions="all", layers=every5)),
        ("64 neurons of layers 14 and 29, last position",
         dict(site="neurons", positions="last", layers=[14, 29], neurons=list(range(0, 1536, 24)))),
    ]
    if args.quick:
        cases = [("resid, layers 0 and 29, last position", dict(site="resid", positions="last", layers=[0, 29])),
                 ("heads, layer 29, last position", dict(site="heads", positions="last", layers=[29]))]
    rows = []
    for name, kw in cases:
        t = time.time()
        ref = patch(bridge, pairs, metric="ie", progress=False, **kw)
        tb = time.time() - t
        t = time.time()
        got = patch(nn, pairs, metric="ie", progress=False, **kw)
        tn = time.time() - t
        plan = got.meta["plan"]
        rows.append((name, int(ref.effects.size), ref.meta.get("engine"), ref.n_forward_passes, tb,
                     got.n_forward_passes, plan["variants_per_trace"], tn, _rel(ref, got),
                     plan["bytes_per_trace"], plan["bytes_saved"]))
        print(name, rows[-1][1:], flush=True)
    atp = []
    for name, kw in [("heads, all layers x all positions", dict(site="heads", positions="all")),
                     ("neurons (64) of layers 14 and 29, all positions",
                      dict(site="neurons", positions="all", layers=[14, 29], neurons=list(range(0, 1536, 24))))]:
        if args.quick:
            kw["layers"] = [29]
            name = name.replace("all layers", "layer 29").replace("layers 14 and 29", "layer 29")
        t = time.time()
        ref = attribution_patch(bridge, pairs, metric="ie", **kw)
        tb = time.time() - t
        t = time.time()
        got = attribution_patch(nn, pairs, metric="ie", **kw)
        tn = time.time() - t
        atp.append((name, int(ref.effects.size), tb, tn, _rel(ref, got)))
        print(name, atp[-1][1:], flush=True)

    cmd = "python scripts/bench_scale.py" + (" " + " ".join(argv) if argv else " " + " ".join(sys.argv[1:])).rstrip()
    import nnsight
    import transformers

    lines = [
        "# Exact patching at scale: bridge cone engine vs nnsight (local)",
        "",
        f"Command: `{cmd.strip()}` (one CPU thread; {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, nnsight {nnsight.__version__}).",
        f"Model: SmolLM2-135M-Instruct (`smollm2-135m`), {pairs.n} IOI prompt pairs of {pairs.seq_len} tokens, "
        "metric `ie`, noising. Load: bridge "
        f"{t_bridge:.1f} s (compatibility mode, weight processing), nnsight {t_nn:.1f} s.",
        "",
        "Both paths compute the same effects (last column: largest difference relative to the sweep's scale). The "
        "bridge's cone engine recomputes only the layers and positions a patch can change and stacks many variants "
        "per pass; the nnsight backend runs full forwards of `[source; k variants x base]` rows per trace (its "
        "advantage is where it runs - a sharded local model or NDIF - not its FLOPs). Times on a shared machine are "
        "indicative; the ratio is measured side by side.",
        "",
        "| sweep | variants | bridge engine | bridge passes | bridge s | nnsight traces | variants/trace "
        "| nnsight s | nnsight / bridge | max rel. diff | nnsight bytes/trace (est.) | bytes saved |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    from interp.patching.engine import format_bytes

    for name, n, eng, bp, tb, nt, k, tn, rel, bpt, bs in rows:
        lines.append(f"| {name} | {n} | {eng} | {bp} | {tb:.1f} | {nt} | {k} | {tn:.1f} | {tn / tb:.1f}x | "
                     f"{rel:.1e} | {format_bytes(bpt)} | {format_bytes(bs)} |")
    lines += [
        "",
        "Attribution patching (2 forwards + 1 backward per batch on both):",
        "",
        "| sweep | cells | bridge s | nnsight s | max rel. diff |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, n, tb, tn, rel in atp:
        lines.append(f"| {name} | {n} | {tb:.1f} | {tn:.1f} | {rel:.1e} |")
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
