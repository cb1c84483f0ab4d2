"""``interp dynamics``: the neuron pipeline at every training checkpoint of a toy model (Fig. 10), as JSON."""

from __future__ import annotations

import argparse
from typing import Any

from interp.cli.common import progress_enabled
from interp.cli.neurons_cmd import _ints, add_classifier_args, classifier_config
from interp.cli.types import positive_int


def register(sub: Any, name: str) -> None:
    p = sub.add_parser(name, help="heuristic neurons across training checkpoints (interp train-toy --checkpoint-every)")
    p.add_argument("--checkpoints", "-c", required=True,
                   help="a directory with step_N checkpoints (or a train-toy --out directory holding checkpoints/)")
    p.add_argument("--task", "-t", default="arith", help="task spec (default arith)")
    p.add_argument("--top-k", type=positive_int, default=50, help="neurons per layer (default 50)")
    p.add_argument("--intersection-top", type=positive_int, default=None,
                   help="final model's top neurons per layer used for the intersection ratio (default top-k/4)")
    p.add_argument("--n-per-op", type=positive_int, default=50, help="importance prompts per operator (default 50)")
    p.add_argument("--knockout-per-layer", type=_ints, default=[5, 10, 25],
                   help="neurons zeroed per layer in the knockouts (default 5,10,25)")
    p.add_argument("--steps", type=_ints, default=None, help="only these checkpoint steps")
    p.add_argument("--no-faithfulness", action="store_true",
                   help="skip the mutual-neuron faithfulness of Fig. 10b (saves a few passes per step)")
    p.add_argument("--faithfulness-layers", type=_ints, default=None,
                   help="layers whose MLPs are reduced to heuristic neurons for Fig. 10b (default: all)")
    add_classifier_args(p)
    p.add_argument("--out", "-o", required=True, help="output JSON path")
    p.add_argument("--plot", default=None, help="also write the dynamics curves as an HTML file")
    p.add_argument("--device", default=None,
                   help="where each checkpoint is loaded: cpu (default), cuda, cuda:N or mps (must exist here)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp._io import write_outputs
    from interp.neurons._common import check_arith_task
    from interp.neurons.dynamics import training_dynamics
    from interp.tasks import parse_task
    task = parse_task(args.task)
    check_arith_task(task, "interp dynamics")
    loader = {}
    if args.device is not None:
        from interp.models import load_model
        from interp.models.placement import normalize_device

        device = normalize_device(args.device, what="--device")  # an absent device fails before any checkpoint loads
        loader = {"loader": lambda path: load_model(str(path), device=device)}
    res = training_dynamics(
        args.checkpoints, task, top_k=args.top_k, intersection_top=args.intersection_top,
        config=classifier_config(args), method=args.method, n_per_op=args.n_per_op,
        knockout_per_layer=args.knockout_per_layer, steps=args.steps, faithfulness=not args.no_faithfulness,
        faithfulness_layers=args.faithfulness_layers, progress=progress_enabled(), **loader,
    )
    html = res.plot().to_html(include_plotlyjs=True, full_html=True) if args.plot else None
    write_outputs({args.out: res.save, args.plot: html})  # both or neither
    print(f"wrote {args.out}: {len(res.steps)} checkpoints, {res.n_final_triples} final heuristic matches, "
          f"{res.seconds:.1f} s")
    share = res.mutual_share() if res.faithfulness_heuristic else None
    for i, s in enumerate(res.steps):
        acc = ", ".join(f"{op} {a[i]:.2f}" for op, a in res.accuracy.items())
        line = (f"  step {s:>6}: accuracy {acc}; classified {res.classified_fraction[i]:.2f}; "
                f"intersection {res.intersection[i]:.2f}")
        if share is not None:
            line += f"; mutual/all faithfulness {share[i]:.2f}"
        print(line)
    return 0
