"""``interp concepts``: concept neurons by vocabulary projection (Rai & Yao's lexicon rule), written as JSON."""

from __future__ import annotations

import argparse
from typing import Any

from interp.cli.common import add_model_arg, load, progress_enabled
from interp.cli.types import positive_int


def register(sub: Any, name: str) -> None:
    p = sub.add_parser(name, help="find concept neurons (value vectors promoting + - * / = 'so' 'then'...); JSON")
    add_model_arg(p)
    p.add_argument("--out", "-o", required=True, help="output JSON path (per concept: neurons with layer, index, "
                                                      "top tokens)")
    p.add_argument("--concepts", default=None, help="comma-separated concepts (default: all seven)")
    p.add_argument("--lexicon", default=None, help="JSON lexicon file replacing the built-in one")
    p.add_argument("--top-k", type=positive_int, default=20, help="projected tokens per neuron (default 20)")
    p.add_argument("--min-matches", type=positive_int, default=2, help="lexicon tokens needed among them (default 2)")
    p.add_argument("--skip-layers", default=None,
                   help="comma-separated layers to skip, or 'none' (default: the first 6/32 of the layers)")
    p.add_argument("--norm", choices=("raw", "final_norm"), default="raw",
                   help="project W_out rows raw (paper) or through the final norm")
    p.add_argument("--judge", default=None,
                   help="confirm candidates with a judge: 'module:function' where function(tokens, question) "
                        "answers yes/no, or 'module:function:llm' where function(prompt) -> text is an LLM "
                        "(wrapped with the paper's prompt). Default: the lexicon rule alone, no network")
    p.set_defaults(func=run)


def _skip(value: str | None) -> list[int] | None:
    from interp.errors import ShapeError

    if value is None:
        return None
    if value.strip().lower() in ("none", ""):
        return []
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise ShapeError(f"--skip-layers must be comma-separated layer numbers or 'none'; got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    from interp.vocab.concepts import find_concept_neurons, load_lexicon
    from interp.vocab.concepts.judge import import_judge

    judge = None if args.judge is None else import_judge(args.judge)
    lexicon = load_lexicon(args.lexicon)
    concepts = [c.strip() for c in args.concepts.split(",")] if args.concepts else None
    model = load(args)
    res = find_concept_neurons(model, lexicon=lexicon, concepts=concepts, top_k=args.top_k,
                               min_matches=args.min_matches, skip_layers=_skip(args.skip_layers), norm=args.norm,
                               judge=judge, progress=progress_enabled())
    res.save(args.out)
    print(f"wrote {args.out}: {res.n_scanned} neurons of layers {res.layers[0]}-{res.layers[-1]} scanned in "
          f"{res.seconds:.1f} s (>= {res.min_matches} of the top {res.top_k} tokens in a lexicon"
          + (f", confirmed by {res.judge}" if res.judge else "") + ")")
    for c, v in res.concepts.items():
        examples = ", ".join(f"{n.label} [{'|'.join(t.strip() for t in n.matches)}]" for n in v[:3])
        print(f"  {c:<12} {len(v):5d}  {examples}")
    return 0
