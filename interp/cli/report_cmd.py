"""``interp report``: the main job - one self-contained HTML report on a model's arithmetic."""

from __future__ import annotations

import argparse
from typing import Any

from interp.cli.common import add_model_arg, add_scale_args, load, progress_enabled
from interp.cli.types import positive_int
from interp.errors import UnknownNameError


def register(sub: Any, name: str) -> None:
    p = sub.add_parser(name, help="write a self-contained HTML report (accuracy, patching maps, summary)")
    add_model_arg(p, default="toy-arith")
    add_scale_args(p)
    p.add_argument("--task", "-t", default=None,
                   help="arithmetic task ('arith', 'arith:+-:0-99') or your own task file ('file:PATH.jsonl'); "
                        "default: arith for single-token-number models, else a few-shot 0-9 task")
    p.add_argument("--prefix", default=None, help="few-shot prefix before every prompt (\\n for newlines)")
    p.add_argument("--n-per-op", type=positive_int, default=50, help="clean prompts per operator (default 50)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random draws: corrupt prompts, knockout and IOI samples (default 0)")
    p.add_argument("--with", dest="extra", default="",
                   help="comma-separated opt-in sections to append: edges, explain (default: none)")
    p.add_argument("--quick", action="store_true",
                   help="smaller samples, same methods: circuits from 1 seed and 20 prompts per operator, neuron "
                        "knockouts on 20 prompts with 1 random draw, accuracy on 300 prompts per operator where the "
                        "grid is not evaluated anyway (pretrained models); docs/report.md")
    p.add_argument("--out", "-o", default="report.html", help="output HTML path (default report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.report import OPTIONAL_SECTIONS, build_report
    from interp.report.build import check_report_task

    check_report_task(args.task)  # before the model loads
    extra = [e.strip() for e in args.extra.split(",") if e.strip()]
    unknown = [e for e in extra if e not in OPTIONAL_SECTIONS]
    if unknown:
        raise UnknownNameError(f"--with: unknown section(s) {unknown}; valid: {', '.join(sorted(OPTIONAL_SECTIONS))}")
    model = load(args)
    overrides = {} if args.prefix is None else {"prefix": args.prefix.replace("\\n", "\n")}
    path = build_report(model, args.out, model_name=args.model, task_spec=args.task, task_overrides=overrides,
                        n_per_op=args.n_per_op,
                        seed=args.seed, progress=progress_enabled(), quick=args.quick, extra=extra)
    print(f"wrote {path}")
    return 0
