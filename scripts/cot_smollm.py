"""Concept neurons and chain-of-thought variants on SmolLM2-135M (the numbers in docs/pretrained.md).

Usage: python scripts/cot_smollm.py [--model smollm2-135m] [--out DIR] [--n-problems 64] [--fast]

1. concept neurons by the lexicon rule over every neuron of layers 6-29 (`find_concept_neurons`);
2. accuracy per variant, with the top-20 sub-updates of every generated token recorded (one pass per variant);
3. Algorithm one: the neurons among those top-20 while generating the (up to 20) problems solved with full CoT; the
   lexicon rule restricted to them gives the paper-style ("dominant") concept neurons; activation of both neuron
   sets per variant, and their correlation with accuracy across variants;
4. corruption (noise once, and zero) of the dominant concept neurons vs random neurons from the same layers.
Writes concepts_all.json, concepts_dominant.json, cot.json, corruption_<mode>.json and summary.json to --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="cot-smollm")
    ap.add_argument("--n-problems", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=80)
    ap.add_argument("--n-random", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fast", action="store_true", help="tiny settings to check the pipeline")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from interp.models import load_model
    from interp.vocab import scan_values
    from interp.vocab.concepts import find_concept_neurons
    from interp.vocab.cot import (
        CotResult,
        DominantCollector,
        correlation,
        corruption_experiment,
        evaluate_variant,
        load_problems,
        load_variants,
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n, max_new = (3, 24) if args.fast else (args.n_problems, args.max_new_tokens)
    variants = ["full_cot", "no_cot"] if args.fast else None
    t0 = time.time()
    model = load_model(args.model)
    summary: dict = {"model": args.model, "n_problems": n, "max_new_tokens": max_new}

    proj = scan_values(model, k=20, bottom=False)
    found = find_concept_neurons(model, projection=proj)
    found.save(out / "concepts_all.json")
    summary["concepts_all"] = found.counts()
    summary["scan_seconds"] = proj.seconds
    print("concept neurons (lexicon rule, all neurons):", found.counts(), flush=True)

    problems = load_problems(n=n)
    chosen = load_variants(names=variants)
    results, collectors = {}, {}
    for name, var in chosen.items():  # one generation pass per variant; every neuron's top-K count is recorded
        col = DominantCollector(model, top_k=20, by_row=True)
        results[name] = evaluate_variant(model, var, problems, concept_neurons=found, max_new_tokens=max_new,
                                         observer=col)
        collectors[name] = col
        print(f"{name}: accuracy {results[name].accuracy:.3f} ({time.time() - t0:.0f} s)", flush=True)
    # Algorithm one: neurons among the top-20 sub-updates while generating the problems solved with full CoT
    full = results["full_cot"]
    solved = [i for i, o in enumerate(full.outcomes) if o.correct][:20] or list(range(min(5, n)))
    dominant = collectors["full_cot"].neurons(rows=solved)
    summary["algorithm_one"] = {"problems": len(solved),
                                "distinct_dominant_neurons": sum(map(len, dominant.values()))}
    dom = find_concept_neurons(model, projection=proj, candidates=dominant)
    dom.save(out / "concepts_dominant.json")
    summary["concepts_dominant"] = dom.counts()
    print("dominant concept neurons:", dom.counts(), flush=True)
    dom_all = dom.all_neurons()
    for name, col in collectors.items():  # activation of the dominant set, from the recorded counts
        results[name].activation["all@dominant"] = col.activation(dom_all)
        for c in dom.concepts:
            results[name].activation[f"{c}@dominant"] = col.activation(dom.neurons(c))
    acc = [r.accuracy for r in results.values()]
    corr = {key: correlation(acc, [r.activation[key]["hits_per_token"] for r in results.values()])
            for key in results["full_cot"].activation}
    res = CotResult(results, corr, args.model, {"n_problems": n, "max_new_tokens": max_new, "top_k": 20})
    res.save(out / "cot.json")
    summary["variants"] = {
        name: {"accuracy": v.accuracy, "tokens_per_problem": v.n_tokens / v.n_problems,
               "hits_per_token_all": v.activation["all"]["hits_per_token"],
               "hits_per_token_dominant": v.activation["all@dominant"]["hits_per_token"],
               "per_concept": {c: v.activation[c]["hits_per_token"] for c in found.concepts}}
        for name, v in res.variants.items()}
    summary["correlation"] = res.correlation
    print(json.dumps(summary["variants"], indent=1), flush=True)
    print("correlation:", res.correlation.get("all"), res.correlation.get("all@dominant"),
          f"({time.time() - t0:.0f} s)", flush=True)

    targets = dom if dom.n_neurons() else found
    summary["corruption"] = {}
    for mode in ("noise", "zero"):
        cr = corruption_experiment(model, targets, variant="full_cot", problems=problems, mode=mode,
                                   n_random=1 if args.fast else args.n_random, baseline=full.accuracy,
                                   max_new_tokens=max_new)
        cr.save(out / f"corruption_{mode}.json")
        summary["corruption"][mode] = {"n_neurons": cr.n_neurons, "baseline": cr.baseline, "concept": cr.concept,
                                       "random": list(cr.random), "random_mean": cr.random_mean}
        print(mode, summary["corruption"][mode], f"({time.time() - t0:.0f} s)", flush=True)
    summary["seconds"] = time.time() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"done in {summary['seconds']:.0f} s")


if __name__ == "__main__":
    main()
