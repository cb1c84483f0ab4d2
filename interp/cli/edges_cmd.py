"""``interp edges``: score every edge (EAP, EAP-IG, exact), pick a circuit, measure MIB CPR/CMD, write JSON.

Also holds `run_circuit_level_edges`, the ``interp circuit --level edges`` path.
"""

from __future__ import annotations

import argparse
from typing import Any

from interp.cli.common import add_model_arg, load
from interp.cli.types import nonneg_float, positive_int


def _add_edge_args(p: argparse.ArgumentParser, *, with_method: bool = True) -> None:
    from interp.cli.choices import EDGE_ABLATIONS, EDGE_METRICS, MIB_SIGNS
    from interp.cli.choices import EDGE_METHODS as METHODS

    if with_method:
        p.add_argument("--method", default="eap-ig-inputs", choices=METHODS,
                       help="edge scoring (default eap-ig-inputs)")
    p.add_argument("--ig-steps", type=positive_int, default=5, help="integrated-gradient steps of eap-ig-* (default 5)")
    p.add_argument("--ig-rule", default="right", choices=("right", "left"),
                   help="interpolation points of eap-ig-*: right = k/m, k=1..m (the paper, default); left = "
                        "k=0..m-1 (the EAP-IG/MIB code)")
    p.add_argument("--ablation", default="counterfactual", choices=EDGE_ABLATIONS,
                   help="what an ablated edge carries: corrupt output (default, MIB), mean, zero")
    p.add_argument("--edge-metric", default="logit_diff", choices=EDGE_METRICS,
                   help="metric of edge scores and faithfulness (default logit_diff, as MIB)")
    p.add_argument("--n", type=positive_int, default=None, help="prompt pairs per group (default: the task's default)")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--mib", default=None, help="also write the scores (and circuit) in MIB's submission format")
    p.add_argument("--mib-sign", default="mib", choices=MIB_SIGNS,
                   help="sign of the scores in the --mib file: mib (default) = positive when the edge helps, as "
                        "MIB's pipeline writes them; metric = the change of the metric, our sign")


def register(sub: Any, name: str) -> None:
    p = sub.add_parser(name, help="edge-level circuits: EAP / EAP-IG / exact edge scores, MIB CPR/CMD")
    add_model_arg(p)
    p.add_argument("--task", "-t", default="arith:+", help="task spec (arith:+, ioi:32, induction)")
    p.add_argument("--out", "-o", required=True, help="output JSON path (edge scores)")
    p.add_argument("--plot", default=None, help="also write figures as a self-contained HTML file")
    _add_edge_args(p)
    p.add_argument("--top-n", type=positive_int, default=None, help="also select the top-n edges as a circuit")
    p.add_argument("--threshold", type=nonneg_float, default=None, help="also select edges with |score| >= threshold")
    p.add_argument("--curve", action="store_true", help="evaluate MIB's CPR/CMD on held-out pairs")
    p.set_defaults(func=run)


def _evaluation_pairs(model: Any, task: Any, n: int | None) -> Any:
    from interp.circuits.edges.prep import resolve_pairs

    try:
        return resolve_pairs(model, task, n=n, split="evaluation")
    except TypeError:
        return resolve_pairs(model, task, n=n)


def run(args: argparse.Namespace) -> int:
    from interp._io import write_outputs
    from interp.circuits.edges import EdgeEvaluator, edge_scores, save_mib
    from interp.circuits.edges.graph import EdgeError
    from interp.circuits.edges.prep import resolve_pairs
    from interp.tasks import parse_task

    if args.ig_steps < 1:
        raise EdgeError(f"--ig-steps must be >= 1; got {args.ig_steps}")
    if args.top_n is not None and args.top_n < 1:
        raise EdgeError(f"--top-n must be >= 1 (edges kept in the circuit); got {args.top_n}")
    for name in ("n", "batch_size"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise EdgeError(f"--{name.replace('_', '-')} must be >= 1; got {v}")
    model = load(args)
    task = parse_task(args.task)
    pairs = resolve_pairs(model, task, n=args.n)
    sc = edge_scores(model, pairs, args.method, ig_steps=args.ig_steps, ig_rule=args.ig_rule, ablation=args.ablation,
                     metric=args.edge_metric, batch_size=args.batch_size, task_name=args.task)
    figs = [sc.plot()]
    circ = None
    if args.top_n is not None or args.threshold is not None:
        circ = sc.circuit(args.top_n, threshold=args.threshold)
        if not circ.edges:
            raise EdgeError("the selected circuit is empty after pruning; raise --top-n or lower --threshold")
    print(f"scored: {sc!r} in {sc.seconds:.1f} s")
    for name, v in sc.top(10):
        print(f"  {v:+.4f}  {name}")
    if args.curve or circ is not None:
        ev = EdgeEvaluator(model, _evaluation_pairs(model, task, args.n), ablation=args.ablation,
                           metric=args.edge_metric, batch_size=args.batch_size)
        if args.curve:
            m = ev.mib_scores(sc)
            sc.meta["mib"] = {"cpr": m["cpr"], "cmd": m["cmd"], "faithfulness_signed": m["signed"]["faithfulness"],
                              "faithfulness_absolute": m["absolute"]["faithfulness"],
                              "budgets": m["absolute"]["budgets"], "evaluation_pairs": ev.pairs.n}
            for label, c in (("signed", m["signed"]), ("|score|", m["absolute"])):
                fs = " ".join(f"{x:.2f}" for x in c["faithfulness"])
                print(f"  f by budget, {label} ranking: {fs}")
            print(f"  MIB CPR {m['cpr']:.3f} (signed ranking)  CMD {m['cmd']:.3f} (|score| ranking)")
            from interp.circuits.edges.plots import plot_mib_curve

            figs.append(plot_mib_curve({f"{sc.method}, signed (CPR)": m["signed"],
                                        f"{sc.method}, |score| (CMD)": m["absolute"]}))
        if circ is not None:
            f = ev.score(circ).faithfulness
            print(f"  circuit: {len(circ.edges)} edges, faithfulness {f:.3f}")
            figs.append(circ.plot())
    html = None
    if args.plot:
        from interp.report.base import Section, render_html

        html = render_html(f"interp edges: {args.model}", [Section("Edges", [], figs)])
    d_model = int(model.cfg.d_model)
    write_outputs({args.out: sc.save, args.plot: html,  # all or none
                   args.mib: (lambda p: save_mib(p, sc, circ, d_model=d_model, sign=args.mib_sign))
                   if args.mib else None})
    print("wrote " + ", ".join(p for p in (args.out, args.plot, args.mib) if p))
    return 0


# ------------------------------------------------------------------ `interp circuit --level edges`
def add_circuit_level_args(p: argparse.ArgumentParser) -> None:
    """Arguments `interp circuit` needs for ``--level edges`` (its own --ablation/--metric/--target are reused:
    ``resample`` maps to ``counterfactual``; the edge metric is ``--edge-metric``)."""
    from interp.cli.choices import EDGE_METHODS as METHODS
    from interp.cli.choices import EDGE_SELECTIONS as SELECTIONS
    from interp.cli.choices import MIB_SIGNS

    p.add_argument("--level", choices=("nodes", "edges"), default="nodes",
                   help="node circuit (heads/MLPs, default) or edge circuit (sender -> receiver edges)")
    p.add_argument("--edge-method", default="eap-ig-inputs", choices=METHODS, help="edge scoring for --level edges")
    p.add_argument("--select", default="topn", choices=SELECTIONS, help="edge selection for --level edges")
    p.add_argument("--ig-steps", type=positive_int, default=5, help="integrated-gradient steps (--level edges)")
    p.add_argument("--ig-rule", default="right", choices=("right", "left"),
                   help="--level edges: interpolation points, right (the paper, default) or left (the EAP-IG/MIB code)")
    p.add_argument("--edge-metric", default="logit_diff", help="metric for --level edges (default logit_diff)")
    p.add_argument("--mib", default=None, help="--level edges: also write the MIB-format file")
    p.add_argument("--mib-sign", default="mib", choices=MIB_SIGNS,
                   help="--level edges: sign of the --mib file's scores (mib = positive when the edge helps)")


def run_circuit_level_edges(args: argparse.Namespace) -> int:
    """``interp circuit --level edges``: score edges, grow the circuit to ``--target`` faithfulness, write JSON."""
    from interp._io import write_outputs
    from interp.circuits.edges import EdgeEvaluator, edge_scores, save_mib
    from interp.circuits.edges.search import find_edge_circuit
    from interp.tasks import parse_task

    ablation = {"resample": "counterfactual"}.get(args.ablation, args.ablation)
    model = load(args)
    task = parse_task(args.task)
    disc = _resolve_disc(model, task, args)
    sc = edge_scores(model, disc, args.edge_method, ig_steps=args.ig_steps, ig_rule=args.ig_rule, ablation=ablation,
                     metric=args.edge_metric, task_name=args.task)
    ev = EdgeEvaluator(model, _evaluation_pairs(model, task, args.n_eval), ablation=ablation, metric=args.edge_metric)
    circ = find_edge_circuit(ev, sc, target=args.target, selection=args.select)
    html = None
    if getattr(args, "plot", None):
        from interp.report.base import Section, render_html

        html = render_html(f"interp circuit --level edges: {args.model}",
                           [Section("Edge circuit", [], [circ.plot_curve(), circ.plot()])])
    d_model = int(model.cfg.d_model)
    write_outputs({args.out: circ.save, getattr(args, "plot", None): html,  # all or none
                   args.mib: (lambda p: save_mib(p, sc, circ, d_model=d_model, sign=args.mib_sign))
                   if args.mib else None})
    c = circ.curve
    print(f"wrote {args.out}: {len(circ.edges)} of {circ.graph.n_edges} edges, faithfulness {circ.faithfulness:.3f} "
          f"(target {args.target}{'' if c['reached'] else ', NOT reached: all edges kept'}); "
          f"curve of the {c['selection']} |score| ranking: area under f {c['cpr']:.3f}, MIB CMD {c['cmd']:.3f}")
    return 0


def _resolve_disc(model: Any, task: Any, args: argparse.Namespace) -> Any:
    from interp.circuits.edges.prep import resolve_pairs

    try:
        return resolve_pairs(model, task, n=args.n_per_op, seed=args.seed, split="discovery")
    except TypeError:
        return resolve_pairs(model, task, n=args.n_per_op, seed=args.seed)
