"""Path patching through receiver heads on SmolLM2 IOI: the cone engine of a given checkout, best of 3, optionally
against the hooked implementation in the same process. Used to compare two versions of `interp.patching.path_cone`
side by side (run it alternately on two `git archive` directories).

    python scripts/bench_receivers.py DIR [--hooked]     # DIR: a checkout whose `interp` is measured
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="the checkout to measure (its interp/ and scripts/)")
    ap.add_argument("--hooked", action="store_true", help="also time engine='full' and print the ratio")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--receivers", nargs="+", default=["L20H3,L22H1,L24H6", "L24H4,L24H7,L29H0"])
    args = ap.parse_args()
    sys.path[:0] = [args.root, args.root + "/scripts"]
    import numpy as np
    import torch
    from bench_patching import ioi_pairs

    from interp.models import load_model
    from interp.patching.path import path_patch

    torch.set_num_threads(1)
    model = load_model("smollm2-135m")
    pairs = ioi_pairs(model, args.pairs)
    kw = dict(metric="logit_diff", progress=False, max_memory="2GB")
    for recv in args.receivers:
        path_patch(model, pairs, receivers=recv, layers=[0], engine="cone", **kw)  # warm-up (engine verification)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            cone = path_patch(model, pairs, receivers=recv, layers=[0, 8, 16], engine="cone", **kw)
            times.append(time.perf_counter() - t)
        line = f"{args.root} {recv}: cone best of 3 {min(times):.3f} s"
        if args.hooked:
            t = time.perf_counter()
            full = path_patch(model, pairs, receivers=recv, layers=[0, 8, 16], engine="full", **kw)
            t_full = time.perf_counter() - t
            diff = float(np.abs(cone.effects - full.effects).max())
            line += f", hooked {t_full:.2f} s, {t_full / min(times):.1f}x, max diff {diff:.1e}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
