"""``interp cot``: accuracy and concept-neuron activation per chain-of-thought variant, written as JSON."""

from __future__ import annotations

import argparse
import os
from typing import Any

from interp.cli.common import add_model_arg, load, progress_enabled
from interp.cli.types import positive_int


def register(sub: Any, name: str) -> None:
    from interp.cli.choices import COT_VARIANTS as VARIANTS

    p = sub.add_parser(name, help="chain-of-thought variants: accuracy and concept-neuron activation; JSON")
    add_model_arg(p)
    p.add_argument("--out", "-o", required=True, help="output JSON path (per variant: accuracy, concept activation, "
                                                      "n_problems)")
    p.add_argument("--variants", default=None, help=f"comma-separated variants (default all: {', '.join(VARIANTS)})")
    fast = os.environ.get("INTERP_FAST", "") not in ("", "0")
    p.add_argument("--n-problems", type=positive_int, default=4 if fast else 64,
                   help="word problems per variant (default 64, all; 4 with INTERP_FAST=1)")
    p.add_argument("--max-new-tokens", type=positive_int, default=16 if fast else 80,
                   help="generation length (default 80; 16 with INTERP_FAST=1)")
    p.add_argument("--batch-size", type=positive_int, default=1,
                   help="problems generated together (default 1: each row copies the exemplar KV cache)")
    p.add_argument("--top-k", type=positive_int, default=20,
                   help="dominant sub-updates per layer and token (default 20)")
    p.add_argument("--concepts", default=None,
                   help="concept-neuron JSON from `interp concepts` (default: found now with the default rule)")
    p.add_argument("--no-activation", action="store_true", help="accuracy only, no concept neurons")
    p.add_argument("--outcomes", action="store_true", help="also store every generation and extracted answer")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from interp.vocab.concepts import ConceptNeurons, find_concept_neurons
    from interp.vocab.cot import load_variants, run_cot

    variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
    load_variants(names=variants)  # unknown names fail before the model loads
    model = load(args)
    concepts = None
    if not args.no_activation:
        concepts = ConceptNeurons.load(args.concepts) if args.concepts else find_concept_neurons(model)
    res = run_cot(model, variants=variants, n_problems=args.n_problems, concept_neurons=concepts,
                  top_k=args.top_k, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                  progress=progress_enabled())
    res.save(args.out, outcomes=args.outcomes)
    print(f"wrote {args.out}: {len(res.variants)} variants x {res.settings['n_problems']} problems")
    for name, v in res.variants.items():
        act = v.activation.get("all", {})
        extra = f"  concept neurons/token {act['hits_per_token']:.2f}" if act else ""
        print(f"  {name:<20} accuracy {v.accuracy:6.1%}{extra}")
    corr = res.correlation.get("all")
    if corr:
        print(f"  accuracy vs activation across variants: Pearson {corr['pearson']:+.2f}, "
              f"Spearman {corr['spearman']:+.2f}")
    return 0
