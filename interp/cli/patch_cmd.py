"""``interp patch``: one exact activation-patching sweep, written as JSON (and optionally an HTML heatmap)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from interp.cli.common import add_model_arg, add_scale_args, add_task_args, load, progress_enabled, task_from_args
from interp.cli.types import nonneg_int, positive_int


def register(sub: Any, name: str) -> None:
    from interp.cli.choices import METRICS
    from interp.sites import CLI_SITES

    p = sub.add_parser(name, help="exact activation patching of one site family; writes JSON")
    add_model_arg(p)
    add_scale_args(p, nnsight=True)
    add_task_args(p)
    p.add_argument("--site", default="heads", choices=list(CLI_SITES), help="what to patch (default heads)")
    p.add_argument("--positions", default="all",
                   help="all (default), last, comma-separated indices like 3,4, or together (every position at "
                        "once, TransformerLens's *_all_pos)")
    p.add_argument("--metric", default="ie", choices=METRICS, help="effect metric (default ie, Eq. 1 of the paper)")
    p.add_argument("--direction", default="noising", choices=("noising", "denoising"),
                   help="noising: run clean, patch in corrupt (paper, default); denoising: the reverse")
    p.add_argument("--max-rows", type=positive_int, default=4096, help="rows per forward pass")
    p.add_argument("--max-memory", default="auto",
                   help="memory budget of a sweep's caches plus one pass, e.g. 512MB, 2GB; "
                        "auto (default): 40%% of the memory free now, at least 1GB")
    p.add_argument("--engine", default="auto", choices=("auto", "cone", "full"),
                   help="cone: recompute only what a patch can change (default when supported); full: full passes")
    p.add_argument("--path-to", default=None,
                   help="path patching instead (heads only): each head's effect along the direct path to the "
                        "logits ('logits') or through receiver heads ('L9H6,L9H9'); other heads frozen")
    p.add_argument("--freeze-mlps", action="store_true",
                   help="with --path-to: freeze the MLPs too (only the sender's own write reaches the receivers)")
    p.add_argument("--out", "-o", default=None,
                   help="output JSON path (default: none, only the table of the top effects is printed)")
    p.add_argument("--top", type=nonneg_int, default=10, help="rows of the printed table of top effects (default 10)")
    p.add_argument("--plot", default=None, help="also write the heatmap as a self-contained HTML file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp._io import write_outputs
    from interp.errors import ShapeError
    from interp.patching import patch

    if args.path_to is not None and (args.site != "heads" or args.positions != "all"):
        raise ShapeError("--path-to patches whole heads (every position): use it with --site heads and "
                         f"--positions all, not --site {args.site} --positions {args.positions}")
    if args.freeze_mlps and args.path_to is None:
        raise ShapeError("--freeze-mlps only applies to path patching (--path-to)")
    if args.backend == "nnsight" and args.path_to is not None:
        raise ShapeError("--path-to (path patching) runs on the TransformerLens bridge only, not --backend nnsight; "
                         "drop --backend nnsight, or drop --path-to for an exact activation-patching sweep")
    if str(args.max_memory).strip().lower() != "auto":
        from interp.patching.engine.budget import parse_bytes

        parse_bytes(args.max_memory)  # a bad size fails before the model loads
    model = load(args)
    task = task_from_args(args)
    pairs = task.pairs(model, n_per_op=args.n_per_op, seed=args.seed, corrupt_from=args.corrupt_from)
    if args.path_to is not None:
        from interp.patching.path import path_patch

        res = path_patch(model, pairs, receivers=args.path_to, metric=args.metric, direction=args.direction,
                         freeze_mlps=args.freeze_mlps, progress=progress_enabled(), model_name=args.model,
                         engine=args.engine, max_memory=args.max_memory)
    else:
        if args.backend == "nnsight":  # the cost, before anything runs
            from interp.backends.nnsight_patching import plan_patch

            plan = plan_patch(model, pairs, site=args.site, positions=args.positions, metric=args.metric,
                              direction=args.direction, max_rows=args.max_rows, max_memory=args.max_memory)
            print(f"nnsight plan: {plan}", file=sys.stderr, flush=True)
        res = patch(model, pairs, site=args.site, positions=args.positions, metric=args.metric,
                    direction=args.direction, max_rows=args.max_rows, max_memory=args.max_memory,
                    engine=args.engine, progress=progress_enabled(), model_name=args.model)
    plot = res.plot().to_html(include_plotlyjs=True, full_html=True) if args.plot else None
    write_outputs({args.out: res.save if args.out else None, args.plot: plot})
    what = f"path patching to {args.path_to}" if args.path_to else f"{args.site} x {args.positions} positions"
    written = " and ".join(p for p in (args.out, args.plot) if p)
    print(f"{'wrote ' + written if written else 'patched'}: {what}, metric {args.metric}, "
          f"{res.n_prompts} prompts, {res.n_forward_passes} forward passes, {res.seconds:.1f} s")
    _print_top(res, args.top)
    return 0


# metrics whose value is the patched metric itself (not a change): rank by the shift from the unpatched run
_RAW_METRICS = ("logit_diff", "prob")


def _print_top(res: object, k: int = 5) -> None:
    """The ``k`` largest effects as a table: rank, site, value (and, for raw metrics, the shift from the unpatched
    value, by which they are ranked)."""
    from interp.patching import PatchResult

    assert isinstance(res, PatchResult)
    if k == 0:
        return
    base = res.baseline.get("base")
    if res.metric in _RAW_METRICS and base is not None:  # PatchResult.top ranks these by the shift already
        print(f"top {k} by the shift from the unpatched {res.metric} {base:+.4f}:")
        print(f"  {'rank':>4}  {'site':<24} {res.metric:>12} {'shift':>10}")
        for i, (label, v) in enumerate(res.top(k), 1):
            print(f"  {i:>4}  {label:<24} {v:>+12.4f} {v - base:>+10.4f}")
        return
    print(f"top {k} effects ({res.metric}, largest |value| first):")
    print(f"  {'rank':>4}  {'site':<24} {res.metric:>12}")
    for i, (label, v) in enumerate(res.top(k), 1):
        print(f"  {i:>4}  {label:<24} {v:>+12.4f}")
