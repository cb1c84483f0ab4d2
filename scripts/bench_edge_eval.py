"""Cost of evaluating one edge circuit (`EdgeEvaluator.values`: every edge outside the circuit ablated), per budget.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/bench_edge_eval.py --model smollm2-135m --task ioi:16

Times one evaluation of a random circuit at each budget (percent of all edges kept) and of the top-n circuit of
EAP scores at the same budgets (MIB's curve evaluates those), best of ``--repeat``. Run it from two checkouts
(``PYTHONPATH=OTHER_CHECKOUT``) to compare implementations on the same prompts; prints a markdown table and, with
``--json``, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--task", default="ioi:16")
    ap.add_argument("--n", type=int, default=16, help="evaluation pairs per group")
    ap.add_argument("--budgets", default="0.1,2,20,50")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    import interp
    from interp.circuits.edges import EdgeEvaluator, edge_scores
    from interp.circuits.edges.prep import resolve_pairs
    from interp.circuits.edges.select import top_n_edges

    model = interp.load_model(args.model)
    task = interp.parse_task(args.task)
    evp = resolve_pairs(model, task, n=args.n, split="evaluation")
    ev = EdgeEvaluator(model, evp, batch_size=args.batch_size)
    g = ev.graph
    eap = edge_scores(model, resolve_pairs(model, task, n=args.n, split="discovery"), "eap",
                      batch_size=args.batch_size)
    rng = np.random.default_rng(0)
    rows = []
    for pct in [float(b) for b in args.budgets.split(",")]:
        k = max(1, int(pct / 100 * g.n_edges))
        rand = np.zeros(g.n_edges, dtype=bool)
        rand[rng.choice(g.n_edges, k, replace=False)] = True
        top = np.zeros(g.n_edges, dtype=bool)
        top[top_n_edges(eap.scores, k)] = True
        row = {"budget_pct": pct, "edges": k}
        for name, keep in (("random", rand), ("top_eap", top)):
            best, f = float("inf"), None
            for _ in range(args.repeat):
                t = time.perf_counter()
                f = ev.values(keep).mean()
                best = min(best, time.perf_counter() - t)
            row[f"{name}_seconds"] = round(best, 3)
            row[f"{name}_metric"] = float(f)
        rows.append(row)
        print(row, flush=True)
    print(f"\n{args.model} {args.task}, {evp.n} evaluation prompts, {g.n_edges} edges; seconds per evaluation "
          f"(best of {args.repeat}); metric = mean logit difference of the circuit\n")
    print("| budget % | edges | random s | top-EAP s | random metric | top-EAP metric |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['budget_pct']} | {r['edges']} | {r['random_seconds']} | {r['top_eap_seconds']} | "
              f"{r['random_metric']:.4f} | {r['top_eap_metric']:.4f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"command": "python " + " ".join(sys.argv), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
