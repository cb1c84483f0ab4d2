"""Edge-level circuits: cost, agreement with exact edge patching, and MIB CPR/CMD, side by side in one run.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/bench_edges.py --model toy-arith --task arith:+ --n 32
    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/bench_edges.py --model smollm2-135m --task ioi:8 --n 8

Appends a section to docs/benchmarks-edges.md (and prints it). Scores are computed on the discovery pairs, the
faithfulness curves on held-out evaluation pairs where the task has them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    ra = np.argsort(np.argsort(a[ok])).astype(float)  # ranks (float scores: ties are rare)
    rb = np.argsort(np.argsort(b[ok])).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="toy-arith")
    ap.add_argument("--task", default="arith:+")
    ap.add_argument("--n", type=int, default=32, help="pairs per group for scoring and for evaluation")
    ap.add_argument("--ig-steps", type=int, default=5)
    ap.add_argument("--ig-rule", default="right", choices=("right", "left"),
                    help="interpolation points of eap-ig-*: right (the paper) or left (the EAP-IG/MIB code)")
    ap.add_argument("--methods", default="eap,eap-ig-inputs,eap-ig-activations")
    ap.add_argument("--exact-top", type=int, default=0, help="exact-score only the top-K EAP-IG edges (0 = all)")
    ap.add_argument("--naive", action="store_true", help="also time the naive exact baseline (one bridge forward "
                    "with plain hooks per edge)")
    ap.add_argument("--naive-max", type=int, default=0, help="time the naive baseline on this many edges only")
    ap.add_argument("--budgets", default="0.1,0.2,0.5,1,2,5,10,20,50,100")
    ap.add_argument("--random-draws", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--node", action="store_true", help="also compare with the node circuit of find_circuit "
                    "(resample ablation, heads and MLPs ranked, target 0.9), expressed as edges")
    ap.add_argument("--no-curve", action="store_true", help="skip the CPR/CMD evaluation (cost and Spearman only)")
    ap.add_argument("--out", default="docs/benchmarks-edges.md")
    args = ap.parse_args()
    torch.set_num_threads(1)

    import interp
    from interp.circuits.edges import EdgeEvaluator, EdgeForward, edge_scores
    from interp.circuits.edges.exact import exact_edge_effects, naive_edge_effect, sender_delta_from_cache
    from interp.circuits.edges.prep import prepare_batches, resolve_pairs

    model = interp.load_model(args.model)
    task = interp.parse_task(args.task)
    disc = resolve_pairs(model, task, n=args.n, split="discovery")
    try:
        evp = resolve_pairs(model, task, n=args.n, split="evaluation")
    except Exception:  # noqa: BLE001 - tasks without an evaluation split
        evp = disc
    budgets = [float(x) for x in args.budgets.split(",")]
    lines = [f"\n## {args.model}, `{args.task}` ({disc.n} scoring pairs, {evp.n} evaluation pairs)\n",
             f"Command: `PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/bench_edges.py {' '.join(sys.argv[1:])}`\n"]
    ef = EdgeForward(model)
    g = ef.graph
    lines.append(f"Graph: {g.describe()}; counts {g.counts()}.\n")
    results = {}
    rows = ["| method | passes | seconds |", "|---|---:|---:|"]
    for m in args.methods.split(","):
        r = edge_scores(model, disc, m, ig_steps=args.ig_steps, ig_rule=args.ig_rule, batch_size=args.batch_size)
        results[m] = r
        rule = f", {args.ig_rule} sum" if m.startswith("eap-ig") else ""
        rows.append(f"| {m} (ig_steps={r.ig_steps}{rule}) | {r.meta['passes']} (+{r.meta['setup_passes']} setup) | "
                    f"{r.seconds:.2f} |")
    # exact edge patching: every edge, or the top-K of EAP-IG
    with torch.inference_mode():
        batches = prepare_batches(ef, disc, ablation="counterfactual", batch_size=args.batch_size)
    ref = results.get("eap-ig-inputs") or next(iter(results.values()))
    todo = None
    if args.exact_top:
        todo = np.sort(np.argsort(-np.abs(ref.scores))[: args.exact_top])
    t0 = time.perf_counter()
    ex_vals, cost = exact_edge_effects(ef, batches, "logit_diff", edges=todo)
    t_exact = time.perf_counter() - t0
    n_ex = cost["edges"]
    rows.append(f"| exact, engine ({n_ex} edges) | {cost['passes']} | {t_exact:.2f} |")
    if args.naive:
        idx = np.arange(g.n_edges) if todo is None else todo
        if g.n_kv_heads != g.n_heads:  # plain hooks cannot patch one query head's k/v under GQA; q/MLP/logits
            idx = np.array([i for i in idx if not g.names[i].endswith(("<k>", "<v>"))])  # edges cost the same
        if args.naive_max:
            idx = idx[: args.naive_max]
        with torch.inference_mode():
            cl, cc = model.run_with_cache(disc.clean_tokens)
            _, kc = model.run_with_cache(disc.corrupt_tokens)
            t0 = time.perf_counter()
            for i in idx:
                s, rr = g.names[i].split("->")
                naive_edge_effect(model, disc.clean_tokens, sender_delta_from_cache(model, cc, kc, s), rr)
            t_naive = time.perf_counter() - t0
        per = t_naive / len(idx)
        rows.append(f"| exact, naive (one bridge forward per edge, {len(idx)} edges timed) | {len(idx)} | "
                    f"{t_naive:.2f} |")
        lines.append(f"Exact edge patching, engine vs naive: {per * n_ex / t_exact:.1f}x faster per edge "
                     f"({t_exact / n_ex * 1e3:.2f} ms vs {per * 1e3:.2f} ms per edge over {disc.n} prompts).\n")
    lines += rows + [""]
    # agreement with exact
    idx = np.arange(g.n_edges) if todo is None else todo
    lines.append(f"Spearman correlation with exact edge patching over {len(idx)} edges "
                 f"({'all' if todo is None else f'top {len(idx)} by |EAP-IG|'}):\n")
    lines += ["| method | Spearman vs exact |", "|---|---:|"]
    for m, r in results.items():
        lines.append(f"| {m} | {spearman(r.scores[idx], ex_vals):.3f} |")
    lines.append("")
    # MIB CPR / CMD on the evaluation pairs
    if args.no_curve and not args.node:
        text = "\n".join(lines)
        print(text)
        with Path(args.out).open("a") as f:
            f.write(text)
        return 0
    t0 = time.perf_counter()
    ev = EdgeEvaluator(model, evp, batch_size=args.batch_size)
    if not args.no_curve:
        lines += [f"MIB faithfulness (counterfactual ablation, logit difference, top-n + pruning) at budgets "
                  f"{budgets}% of {g.n_edges} edges, as MIB reports it: **CPR** from the curve of the signed ranking "
                  "(the edges that help most first), **CMD** from the curve of the |score| ranking; the |score| "
                  "curve's own area under f is in the last column but one:\n",
                  "| scores | CPR, signed (higher better) | CMD, \\|score\\| (lower better) | f per budget, signed | "
                  "f per budget, \\|score\\| | area under f, \\|score\\| | evaluations |",
                  "|---|---:|---:|---|---|---:|---:|"]

        def fk(c: dict) -> str:
            return " ".join(f"{x:.2f}" for x in c["faithfulness"])

        rows = list(results.items()) + ([("exact", ex_vals)] if todo is None else [])
        for m, r in rows:
            mib = ev.mib_scores(r, budgets=budgets)
            lines.append(f"| {m} | {mib['cpr']:.3f} | {mib['cmd']:.3f} | {fk(mib['signed'])} | "
                         f"{fk(mib['absolute'])} | {mib['absolute']['cpr']:.3f} | {mib['n_evaluations']} |")
        if args.random_draws:
            from interp.circuits.edges import random_curve

            c = random_curve(ev, draws=args.random_draws, budgets=budgets)
            lines.append(f"| random (mean of {args.random_draws}; no sign) | {c['cpr']:.3f} ± {c['cpr_std']:.3f} | "
                         f"{c['cmd']:.3f} ± {c['cmd_std']:.3f} | {fk(c)} | {fk(c)} | {c['cpr']:.3f} | "
                         f"{args.random_draws * len(budgets)} |")
        lines.append(f"\n(evaluation took {time.perf_counter() - t0:.1f} s; m(N) = {ev.m_full.mean():.3f}, "
                     f"m(∅) = {ev.m_empty.mean():.3f})\n")
    if args.node:
        from interp.circuits import find_circuit
        from interp.circuits.edges import edges_of_nodes
        from interp.circuits.edges.search import find_edge_circuit
        from interp.circuits.edges.select import prune_edges, top_n_edges

        t0 = time.perf_counter()
        op = (getattr(task, "operators", None) or [None])[0]
        node = find_circuit(model, task, operator=op, ablation="resample", target=0.9, rank_mlps=True, seeds=(42,),
                            n_per_op=args.n, n_eval=args.n, sensitivity=("resample",), metric="logit_diff")
        e_node = edges_of_nodes(g, node.heads, node.mlps)
        f_node = ev.score(e_node).faithfulness
        ref_scores = results.get("eap-ig-inputs") or next(iter(results.values()))
        target = min(max(f_node, 1e-3), 1.0)  # a node circuit can overshoot (f > 1); edge circuits aim at <= 1
        edge_c = find_edge_circuit(ev, ref_scores, target=target)
        e_frac = 100 * len(e_node) / g.n_edges
        same_edges = prune_edges(g, top_n_edges(ref_scores.scores, len(e_node)))  # as many edges as the node circuit
        same_f = ev.score(same_edges, allow_empty=True).faithfulness
        lines += [f"Node circuit of `find_circuit` (operator {op}, resample ablation, heads and MLPs ranked by exact "
                  f"patching, target F = 0.9 under its own NL metric): {len(node.heads)} heads + {len(node.mlps)} "
                  f"MLPs = {len(e_node)} edges, edge-level faithfulness f = {f_node:.3f} (counterfactual, logit "
                  f"difference; |1 - f| = {abs(1 - f_node):.3f}). The {ref_scores.method} edge circuit reaching f >= "
                  f"{target:.3f}{' (capped at 1)' if f_node > 1 else ''}: {len(edge_c.edges)} edges "
                  f"(f = {edge_c.faithfulness:.3f}{'' if edge_c.curve['reached'] else ', target not reached'}); "
                  f"its top {e_frac:.2f}% of edges (as many as the node circuit's): {len(same_edges)} edges after "
                  f"pruning, f = {same_f:.3f}. ({time.perf_counter() - t0:.1f} s)\n"]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    if not out.exists():
        out.write_text("# Edge-level circuits: benchmarks\n\nAbsolute times on a shared 2-core CPU are indicative; "
                       "ratios are measured side by side in one run.\n")
    with out.open("a") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
