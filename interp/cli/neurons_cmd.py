"""``interp neurons``: importance -> top neurons per layer -> heuristic classification -> knockouts, as JSON."""

from __future__ import annotations

import argparse
from typing import Any

from interp.cli.common import add_model_arg, add_scale_args, add_task_args, load, progress_enabled, task_from_args
from interp.cli.types import fraction, positive_float, positive_int


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 0,5,10; got {text!r}") from None


def add_classifier_args(p: argparse.ArgumentParser) -> None:
    from interp.cli.choices import GRIDS, K_RULES, MAP_MODES

    p.add_argument("--threshold", type=fraction, default=0.6, help="matching threshold t in (0, 1] (default 0.6)")
    p.add_argument("--grid", choices=GRIDS, default="paper",
                   help="heuristic parameter grid: the paper's (default) or the released code's")
    p.add_argument("--k-rule", choices=K_RULES, default="paper",
                   help="top-k per heuristic: paper = |P_H| (Algorithm 1, default), code = the code's constants")
    p.add_argument("--maps", choices=MAP_MODES, default="hybrid",
                   help="hybrid: result heuristics on KV maps, operand ones on K maps (paper, default)")
    p.add_argument("--also-bottom", choices=("auto", "yes", "no"), default="auto",
                   help="also score the most negative activations (auto: on for gated / SiLU MLPs)")
    p.add_argument("--method", choices=("atp", "exact"), default="atp",
                   help="neuron importance: attribution patching (paper code, default) or exact patching")
    p.add_argument("--budget-mb", type=positive_float, default=256.0,
                   help="memory budget of one block of activation maps")


def classifier_config(args: argparse.Namespace) -> Any:
    from interp.neurons.heuristics import ClassifierConfig

    bottom = {"auto": None, "yes": True, "no": False}[args.also_bottom]
    return ClassifierConfig(threshold=args.threshold, grid=args.grid, k_rule=args.k_rule, maps=args.maps,
                            also_bottom=bottom)


def register(sub: Any, name: str) -> None:
    p = sub.add_parser(name, help="classify the important MLP neurons into arithmetic heuristics; knockouts; JSON")
    add_model_arg(p)
    add_scale_args(p)
    add_task_args(p)
    top = p.add_mutually_exclusive_group()
    top.add_argument("--top-k", type=positive_int, default=None,
                     help="neurons per layer to classify (default: 1.5%% of d_mlp, at least 50)")
    top.add_argument("--top-frac", type=fraction, default=None, help="fraction of d_mlp per layer, in (0, 1]")
    add_classifier_args(p)
    p.add_argument("--layers", type=_ints, default=None, help="layers to score (default all), e.g. 2,3")
    p.add_argument("--min-neurons", type=positive_int, default=10,
                   help="heuristic classes with at least this many neurons are knocked out (Fig. 7; default 10)")
    p.add_argument("--knockout-prompts", type=positive_int, default=50, help="prompts per operator for Figs. 8-9")
    p.add_argument("--per-layer", type=_ints, default=None,
                   help="prompt-knockout curve: neurons zeroed per layer (default 0,1,2,3,5,8,... up to k/2)")
    p.add_argument("--n-random", type=positive_int, default=3, help="random draws averaged for the random control")
    p.add_argument("--random-pool", default="top", choices=("top", "layer", "active"),
                   help="where the random control's neurons come from: the layer's classified top neurons (paper), "
                        "every neuron of the layer, or the layer's neurons active on the knockout prompts")
    p.add_argument("--out", "-o", required=True, help="output JSON path (neurons.json)")
    p.add_argument("--plot", default=None, help="also write the knockout curves and class bars as an HTML file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp._io import write_outputs
    from interp.neurons._common import check_arith_task
    from interp.neurons.pipeline import analyze_neurons
    from interp.neurons.results import PromptKnockout

    config = classifier_config(args)
    task = task_from_args(args)  # a bad or non-arithmetic task fails before the model loads
    check_arith_task(task, "interp neurons")
    model = load(args)
    res = analyze_neurons(
        model, task, top_k=args.top_k, top_frac=args.top_frac, config=config, method=args.method,
        n_per_op=args.n_per_op, seed=args.seed, layers=args.layers, per_layer=args.per_layer,
        min_neurons=args.min_neurons, knockout_prompts=args.knockout_prompts, n_random=args.n_random,
        random_pool=args.random_pool,
        budget_mb=args.budget_mb, model_name=args.model, progress=progress_enabled(),
    )
    html = None
    if args.plot:
        figs = [PromptKnockout.figure(res.prompt_knockout), res.class_knockout.plot(), res.classification.plot()]
        html = "".join(f.to_html(include_plotlyjs=(i == 0), full_html=False) for i, f in enumerate(figs))
        html = f"<html><body>{html}</body></html>"
    write_outputs({args.out: res.save, args.plot: html})  # both or neither
    d = res.to_dict()
    print(f"wrote {args.out}: {len(d['neurons'])} neurons (top {res.settings['top_k']} per layer), "
          f"classified {100 * d['classified_fraction']:.1f}% "
          f"({', '.join(f'{op} {100 * f:.0f}%' for op, f in d['classified_fraction_by_operator'].items())}), "
          f"{res.seconds:.1f} s")
    pk = d["prompt_knockout"]
    for x, h, r in zip(pk["per_layer"], pk["heuristic_accuracy"], pk["random_accuracy"]):
        print(f"  {x:>3} neurons/layer zeroed: heuristic {h:.2f}  random {r:.2f}")
    return 0
