"""``interp circuit``: find the smallest faithful head circuit (all MLPs kept) and write it as JSON."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from interp.cli.common import add_model_arg, add_scale_args, add_task_args, load, progress_enabled, task_from_args
from interp.cli.types import nonneg_int, positive_int


def _seeds(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, e.g. 42,412; got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("give at least one seed")
    return out


def register(sub: Any, name: str) -> None:
    from interp.cli.choices import ABLATIONS, METRICS, RANKS

    p = sub.add_parser(name, help="circuit discovery: rank heads, sweep until faithful, write JSON")
    add_model_arg(p)
    add_scale_args(p)
    add_task_args(p)
    p.add_argument("--out", "-o", required=True, help="output JSON path")
    p.add_argument("--ablation", default="mean", choices=ABLATIONS,
                   help="how components outside the circuit are removed (default mean, as the paper)")
    p.add_argument("--target", type=float, default=0.9, help="target faithfulness in (0, 1] (default 0.9)")
    p.add_argument("--rank", default="exact", choices=RANKS,
                   help="rank heads by exact patching (default) or attribution patching (verified against exact)")
    p.add_argument("--metric", default="ie", choices=METRICS,
                   help="patching metric used for the ranking (default ie, Eq. 1 of the paper)")
    p.add_argument("--rank-mlps", action="store_true", help="rank MLPs together with heads instead of keeping all")
    p.add_argument("--seeds", type=_seeds, default=(42, 412, 32879),
                   help="corrupt-sampling seeds averaged for the ranking (default 42,412,32879)")
    p.add_argument("--n-eval", type=positive_int, default=50,
                   help="held-out evaluation prompts per operator (default 50)")
    p.add_argument("--max-heads", type=positive_int, default=None, help="sweep at most this many heads")
    p.add_argument("--operand-max", type=nonneg_int, default=None,
                   help="largest operand of the mean-ablation grid (default: the task's; shrink for big models)")
    p.add_argument("--no-per-operator", action="store_true",
                   help="only the pooled circuit, not one per operator as well")
    p.add_argument("--plot", default=None, help="also write the curve and diagram as a self-contained HTML file")
    p.add_argument("--max-memory", default="auto",
                   help="working-memory budget of each patching sweep and batch of candidate circuits: bytes or a "
                        "size such as 2GB (default auto: 40%% of the free memory of the model's device)")
    from interp.cli.edges_cmd import add_circuit_level_args  # `--level edges` (edge-level circuits)

    add_circuit_level_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from interp._io import write_outputs
    from interp.circuits.ablation import ABLATIONS, grid_pass, mean_cache
    from interp.circuits.search import find_circuit, shared_operator_effects
    from interp.circuits.settings import SearchSettings

    if getattr(args, "level", "nodes") == "edges":
        from interp.cli.edges_cmd import run_circuit_level_edges

        return run_circuit_level_edges(args)
    t0 = time.time()
    settings = SearchSettings(ablation=args.ablation, target=args.target, rank=args.rank, rank_mlps=args.rank_mlps,
                              metric=args.metric, seeds=tuple(args.seeds), n_per_op=args.n_per_op,
                              n_eval=args.n_eval, eval_seed=args.seed, corrupt_from=args.corrupt_from,
                              max_heads=args.max_heads, max_memory=args.max_memory)  # checked before loading
    model = load(args)
    task = task_from_args(args)
    kw = dict(settings=settings, progress=progress_enabled(), model_name=args.model)
    # arithmetic on its whole grid: one pass gives the mean cache and every prompt's correctness (no second pass
    # over the grid to find correct prompts); other tasks, or a shrunken grid, build the mean cache on its own
    mean = grid_pass(model, task) if args.operand_max is None else None
    seq_len = task.pairs(model, n_per_op=args.n_per_op, seed=args.seed, corrupt_from=args.corrupt_from).seq_len
    if mean is None or next(iter(mean.values())).shape[0] != seq_len:
        with torch.inference_mode():
            mean = mean_cache(model, task, operand_max=args.operand_max, seq_len=seq_len)
    per_operator = len(getattr(task, "operators", ())) > 1 and not args.no_per_operator
    # each operator's discovery prompts are rows of the pooled ones: one sweep gives every circuit's effects
    effects = shared_operator_effects(model, task, settings, progress=progress_enabled(),
                                      model_name=args.model) if per_operator else {}
    pooled = find_circuit(model, task, mean=mean, effects=effects.get(None), **kw)
    out = pooled.to_dict()
    per_op = {}
    if per_operator:
        per_op = {op: find_circuit(model, task, operator=op, mean=mean, effects=effects.get(op), **kw)
                  for op in task.operators}
        out["per_operator"] = {op: c.to_dict() for op, c in per_op.items()}
    out["seconds"] = time.time() - t0
    html = None
    if args.plot:
        from interp.circuits.plots import plot_curves
        from interp.report.base import Section, render_html

        figs = [plot_curves({"all": pooled, **per_op})] + [c.diagram() for c in [pooled, *per_op.values()]]
        html = render_html(f"interp circuit: {args.model}", [Section("Circuits", [], figs)])
    write_outputs({args.out: json.dumps(out, indent=1) + "\n", args.plot: html})  # both or neither
    sens = ", ".join(f"{a} {pooled.sensitivity.get(a, float('nan')):.3f}" for a in ABLATIONS)
    print(f"wrote {args.out} in {out['seconds']:.1f} s")
    for name, c in [("all", pooled), *per_op.items()]:
        heads = " ".join(f"L{l}H{h}" for l, h in c.heads) or "-"
        print(f"  {name:<4} {len(c.heads):>3} heads, {len(c.mlps)} MLPs, F({c.ablation}) = {c.faithfulness:.3f}  "
              f"[{heads}]")
    print(f"  sensitivity of the pooled circuit: {sens}")
    mem = pooled.meta.get("memory", {})
    if mem.get("effects_peak_bytes_estimate") or mem.get("sweep_peak_bytes_estimate"):
        from interp.patching.engine.budget import format_bytes

        def fmt(x: Any) -> str:
            return format_bytes(x) if x else "-"

        budget = "auto (40% of the free memory)" if str(args.max_memory).lower() == "auto" else args.max_memory
        print(f"  memory (estimated peak): patching {fmt(mem.get('effects_peak_bytes_estimate'))}, sweep "
              f"{fmt(mem.get('sweep_peak_bytes_estimate'))} ({mem.get('sweep_engine')}); --max-memory {budget}")
    return 0
