"""``interp explain saliency|icl|repe|uncertainty|cot``: explanations of prompts, written as JSON (with settings)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

from interp.cli.common import add_model_arg, load, progress_enabled
from interp.cli.types import positive_int


def _common(p: argparse.ArgumentParser) -> None:
    add_model_arg(p)
    p.add_argument("--out", "-o", required=True, help="output JSON path (results and the settings that produced them)")
    p.add_argument("--plot", default=None, help="also write the figure as a self-contained HTML file")


def _ints(s: str | None, what: str = "value") -> list[int] | None:
    from interp.explain import ExplainError

    try:
        return None if s is None else [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ExplainError(f"{what} must be comma-separated integers, e.g. 0,2,4; got {s!r}") from None


def _floats(s: str, what: str = "alphas") -> list[float]:
    from interp.explain import ExplainError

    try:
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise ExplainError(f"--{what} must be comma-separated numbers, e.g. --{what}=-2,0,2; got {s!r}") from None


def register(sub: Any, name: str) -> None:
    fast = os.environ.get("INTERP_FAST", "") not in ("", "0")
    p = sub.add_parser(name, help="explain prompts: saliency, ICL demonstrations, representation reading/steering, "
                                  "uncertainty; JSON")
    s = p.add_subparsers(dest="what", required=True, metavar="WHAT")

    q = s.add_parser("saliency", help="gradient / grad x input / integrated gradients / attention per token")
    _common(q)
    q.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for several)")
    q.add_argument("--target", action="append", required=True,
                   help="the single-token answer (one for all prompts, or one per --prompt), e.g. ' Mary'")
    q.add_argument("--contrast", default=None, help="a contrast token: the score becomes logit(target) - "
                                                     "logit(contrast)")
    q.add_argument("--method", default="integrated_gradients,grad_x_input,gradient,attention",
                   help="comma-separated methods (default: all four)")
    q.add_argument("--metric", default=None, help="logit (default), logprob, or an interp.metrics name")
    q.add_argument("--steps", type=positive_int, default=32, help="integrated-gradient steps (default 32)")
    q.add_argument("--baseline", default="mean", help="IG baseline: mean (default), zero, pad or a token id")
    q.add_argument("--integration", default="gausslegendre", help="gausslegendre (default), riemann_trapezoid, "
                                                                  "riemann_middle")
    q.set_defaults(func=run)

    q = s.add_parser("icl", help="contrastive demonstrations: gold / flipped / perturbed / explained labels")
    _common(q)
    q.add_argument("--data", default=None, help="JSONL of {text, label} (default: the built-in sentiment set)")
    q.add_argument("--shots", default="0,2,4,8", help="comma-separated even shot counts (default 0,2,4,8)")
    q.add_argument("--variants", default="gold,flipped,perturbed,explained", help="comma-separated variants")
    q.add_argument("--n-queries", type=positive_int, default=10 if fast else 50, help="test queries (default 50)")
    q.add_argument("--n-saliency", type=positive_int, default=2 if fast else 8,
                   help="queries whose demonstrations get IG saliency (default 8)")
    q.add_argument("--ig-steps", type=positive_int, default=16, help="IG steps for demonstration saliency (default 16)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=run)

    q = s.add_parser("repe", help="truth/sentiment probes per layer, reading vector, steering dose-response")
    _common(q)
    q.add_argument("--concept", choices=("truth", "sentiment"), default="truth")
    q.add_argument("--family", default="cities", help="statement family to train on (truth; default cities)")
    q.add_argument("--cross", default="animals", help="comma-separated families for the cross-dataset test")
    q.add_argument("--layers", default=None, help="comma-separated layers to probe (default all)")
    q.add_argument("--steer-layer", type=int, default=None, help="layer to steer at (default: the best probe layer)")
    q.add_argument("--method", choices=("pca", "mean_diff"), default="pca", help="reading vector (default pca)")
    q.add_argument("--alphas", default="-4,-2,0,2,4",
                   help="steering strengths in units of |mean difference|; write --alphas=-2,0,2 (with =)")
    q.add_argument("--n-random", type=positive_int, default=3, help="random vectors of equal norm (default 3)")
    q.set_defaults(func=run)

    q = s.add_parser("uncertainty", help="token/sequence/consistency confidence vs correctness: AUROC, ECE")
    _common(q)
    q.add_argument("--source", default="arith:+:0-9",
                   help="an arithmetic task spec (arith:+:0-9, arith:+:10-99...) or 'word-problems'")
    q.add_argument("--prefix", default=None, help="few-shot prefix for arithmetic (default: none for single-token-"
                                                  "number models, a 6-example prefix otherwise)")
    q.add_argument("--variant", default="full_cot", help="exemplar variant for word problems (default full_cot)")
    q.add_argument("--n", type=positive_int, default=8 if fast else 60, help="questions (default 60)")
    q.add_argument("--k", type=int, default=5, help="samples for consistency (>= 2; 0 = skip; default 5)")
    q.add_argument("--temperature", type=float, default=0.7)
    q.add_argument("--max-new-tokens", type=positive_int, default=None,
                   help="default 4 (arithmetic), 60 (word problems)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=run)

    q = s.add_parser("cot", help="stability of question-token saliency across generated CoT steps")
    _common(q)
    q.add_argument("--variants", default="no_cot,full_cot", help="comma-separated exemplar variants")
    q.add_argument("--n-problems", type=positive_int, default=2 if fast else 4)
    q.add_argument("--max-steps", type=positive_int, default=16,
                   help="generated tokens scored per problem (default 16)")
    q.add_argument("--max-new-tokens", type=positive_int, default=48)
    q.set_defaults(func=run)


def _check_out(path: str | None) -> None:
    from interp.explain import ExplainError

    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ExplainError(f"output path {path} is a directory; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise ExplainError(f"cannot write {path}: {probe} is not writable")


def _validate(args: argparse.Namespace) -> None:
    from interp.explain import ExplainError

    _check_out(args.out)
    _check_out(args.plot)
    if args.what == "icl":
        _ints(args.shots, "--shots")
    if args.what == "repe":
        _ints(args.layers, "--layers")
    if args.what == "saliency" and args.steps < 1:
        raise ExplainError(f"IG steps must be an integer >= 1; got {args.steps}")
    if args.what == "repe":
        for a in _floats(args.alphas):
            if not math.isfinite(a):
                raise ExplainError(f"alpha must be a finite number; got {a}")
    if args.what == "uncertainty" and args.k not in (0,) and args.k < 2:
        raise ExplainError(f"consistency needs k >= 2 samples (or --k 0 to skip it); got {args.k}")


def run(args: argparse.Namespace) -> int:
    _validate(args)  # before the model loads
    model = load(args)
    res, line = globals()[f"_run_{args.what}"](model, args)
    import json

    from interp._io import write_outputs

    d = res.to_dict()
    d["command"] = {k: v for k, v in vars(args).items() if k not in ("func", "output_dirs")}
    html = res.plot().to_html(include_plotlyjs=True, full_html=True) if args.plot else None
    write_outputs({args.out: json.dumps(d, indent=1) + "\n", args.plot: html})  # both or neither
    print(f"wrote {args.out}: {line}")
    return 0


def _run_saliency(model: Any, args: argparse.Namespace) -> tuple[Any, str]:
    from interp.explain import saliency

    targets = args.target if len(args.target) > 1 else args.target * len(args.prompt)
    if args.contrast is not None:
        targets = [(t, args.contrast) for t in targets]
    baseline: Any = int(args.baseline) if args.baseline.isdigit() else args.baseline
    res = saliency(model, list(args.prompt), target=targets, method=args.method.split(","), metric=args.metric,
                   steps=args.steps, baseline=baseline, integration=args.integration, progress=progress_enabled())
    for i, it in enumerate(res.items):
        m = next(iter(it.scores))
        top = sorted(it.by_word(m), key=lambda w: -abs(w[1]))[:5]
        print(f"  prompt {i}: top words by {m}: " + ", ".join(f"{w!r} {v:+.3g}" for w, v in top))
    return res, repr(res)


def _run_icl(model: Any, args: argparse.Namespace) -> tuple[Any, str]:
    from interp.explain.icl import icl_experiment

    res = icl_experiment(model, data=args.data, shots=_ints(args.shots), variants=args.variants.split(","),
                         n_queries=args.n_queries, n_saliency=args.n_saliency, ig_steps=args.ig_steps, seed=args.seed,
                         progress=progress_enabled())
    for r in sorted(res.rows, key=lambda r: (r["shots"], r["variant"])):
        ff = "" if r.get("follow_flipped") is None else f"  follow flipped {r['follow_flipped']:.2f}"
        print(f"  {r['shots']}-shot {r['variant']:<10} accuracy {r['accuracy']:.2f}  P(gold) {r['p_gold']:.3f}{ff}")
    return res, repr(res)


class _RepeResult:
    """The probes, the reading vector and the dose-response of one `interp explain repe` run."""

    def __init__(self, probes: Any, vector: Any, dose: Any, settings: dict[str, Any]) -> None:
        self.probes, self.vector, self.dose, self.settings = probes, vector, dose, settings

    def to_dict(self) -> dict[str, Any]:
        v = self.vector.to_dict()
        v.pop("direction")
        v.pop("mean_diff")
        return {"kind": "repe", "settings": self.settings, "probes": self.probes.to_dict(), "reading_vector": v
                | {"norm_mean_diff": float(self.vector.mean_diff.norm())}, "dose_response": self.dose.to_dict()}

    def plot(self) -> Any:
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=["probe accuracy per layer", "steering dose-response"])
        for tr in self.probes.plot().data:
            fig.add_trace(tr, row=1, col=1)
        for tr in self.dose.plot().data:
            fig.add_trace(tr, row=1, col=2)
        return fig


def _run_repe(model: Any, args: argparse.Namespace) -> tuple[Any, str]:
    from interp.explain import dose_response, load_sentiment, load_statements, probe_layers, reading_vector
    from interp.explain.data import split

    layers = _ints(args.layers)
    if args.concept == "truth":
        rows = load_statements(args.family)
        others = {f: load_statements(f) for f in args.cross.split(",") if f and f != args.family}

        def fmt(r: Any) -> str:
            return r.text

        def judge(r: Any) -> str:
            return f"{r.text} This statement is"

        labels = (" true", " false")
    else:
        rows, others = load_sentiment(), {}

        def fmt(r: Any) -> str:
            return f"Review: {r.text}\nSentiment:"

        judge = fmt
        labels = (" positive", " negative")
    train = [type(r)(fmt(r), r.label, r.cue, r.pair, r.split) for r in split(rows, "train")]
    test = [type(r)(fmt(r), r.label, r.cue, r.pair, r.split) for r in split(rows, "test")]
    probes = probe_layers(model, train, test, layers=layers, others={k: [type(r)(fmt(r), r.label) for r in v]
                                                                    for k, v in others.items()})
    layer = probes.best_layer if args.steer_layer is None else args.steer_layer
    pos_label = max({r.label for r in train}, key=lambda x: (x is True, x == "positive"))
    pos = [r.text for r in sorted(train, key=lambda r: r.pair) if r.label == pos_label]
    neg = [r.text for r in sorted(train, key=lambda r: r.pair) if r.label != pos_label]
    if args.method == "pca" and len(pos) != len(neg):
        n = min(len(pos), len(neg))
        pos, neg = pos[:n], neg[:n]
    rv = reading_vector(model, pos, neg, layer=layer, method=args.method)
    vec = rv.direction * rv.mean_diff.norm()
    dose = dose_response(model, [judge(r) for r in split(rows, "test")], vec, layers=layer,
                         alphas=_floats(args.alphas), labels=labels, n_random=args.n_random)
    settings = {"concept": args.concept, "family": args.family, "cross": list(others), "steer_layer": layer,
                "method": args.method, "labels": list(labels)}
    print(f"  probes: {probes!r}\n  steering at layer {layer}: {dose!r}")
    return _RepeResult(probes, rv, dose, settings), f"best probe layer {probes.best_layer}, steering ratio " \
                                                    f"{dose.ratio:.1f}x"


def _run_uncertainty(model: Any, args: argparse.Namespace) -> tuple[Any, str]:
    from interp.explain.uncertainty import arith_questions, uncertainty, word_problem_questions

    if args.source == "word-problems":
        prefix, qs = word_problem_questions(model, variant=args.variant, n=args.n)
        max_new = args.max_new_tokens or 60
    else:
        from interp.report import FEW_SHOT_PREFIX, single_token_numbers

        pre = args.prefix if args.prefix is not None else ("" if single_token_numbers(model) else FEW_SHOT_PREFIX)
        prefix, qs = [], arith_questions(model, args.source, n=args.n, prefix=pre.replace("\\n", "\n"),
                                         seed=args.seed)
        max_new = args.max_new_tokens or 4
    res = uncertainty(model, qs, prefix=prefix, max_new_tokens=max_new, k=args.k, temperature=args.temperature,
                      seed=args.seed, source=args.source, progress=progress_enabled())
    s = res.summary()
    for m, v in s["measures"].items():
        print(f"  {m:<12} AUROC {v['auroc']:.3f}  ECE {v['ece']:.3f}  mean {v['mean']:.3f}")
    lens = s["logit_lens"]
    print(f"  logit lens: answer top from layer {lens['correct']['mean_layer']:.1f} (correct) vs "
          f"{lens['wrong']['mean_layer']:.1f} (wrong) of {lens['n_layers']}")
    return res, repr(res)


def _run_cot(model: Any, args: argparse.Namespace) -> tuple[Any, str]:
    from interp.explain.cot_saliency import cot_saliency

    res = cot_saliency(model, variants=args.variants.split(","), n_problems=args.n_problems,
                       max_new_tokens=args.max_new_tokens, max_steps=args.max_steps, progress=progress_enabled())
    for k, v in res.variants.items():
        print(f"  {k:<16} variance {v['variance']:.3e}  question share {v['question_share']:.3f}  "
              f"accuracy {v['accuracy']:.2f}")
    return res, repr(res)
