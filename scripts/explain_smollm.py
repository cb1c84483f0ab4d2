"""Measure the numbers of docs/explain.md on SmolLM2-135M and toy-arith (one section per argument).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/explain_smollm.py saliency|repe|uncertainty|icl|cot [--out DIR]

Each section writes DIR/<section>.json (default /tmp/explain_results) and prints a short summary.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import interp


def saliency_section(out: Path) -> None:
    from interp.explain import saliency
    from interp.tasks import parse_task

    res = {}
    toy = interp.load_model("toy-arith")
    ps = parse_task("arith:+").correct_prompts(toy, "+", seed=0, limit=20)
    for baseline, steps in (("zero", 32), ("mean", 8), ("mean", 32), ("mean", 128)):
        r = saliency(toy, [list(p.tokens) for p in ps], target=[p.answer_token for p in ps], steps=steps,
                     baseline=baseline)
        res[f"toy-arith/{baseline}/ig{steps}"] = r.completeness() | {"mean_abs_score_diff": sum(
            abs(it.score_x - it.score_baseline) for it in r.items) / len(r)}
    m = interp.load_model("smollm2-135m")
    prompts = ["When Mary and John went to the store, John gave a drink to",
               "The Eiffel Tower is located in the city of",
               "Review: The soup was cold and bland.\nSentiment:",
               "3+4=7\n8-5=3\n2+3="]
    targets = [(" Mary", " John"), " Paris", (" negative", " positive"), "5"]
    for baseline, steps in (("zero", 32), ("mean", 8), ("mean", 32), ("mean", 128)):
        r = saliency(m, prompts, target=targets, steps=steps, baseline=baseline)
        res[f"smollm2-135m/{baseline}/ig{steps}"] = r.completeness() | {"mean_abs_score_diff": sum(
            abs(it.score_x - it.score_baseline) for it in r.items) / len(r)}
    r = saliency(m, prompts[:1], target=targets[0], method=["integrated_gradients", "grad_x_input", "attention"])
    res["ioi_words"] = {k: r[0].by_word(k) for k in ("integrated_gradients", "grad_x_input", "attention")}
    (out / "saliency.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "ioi_words"}, indent=1))


def repe_section(out: Path) -> None:
    from interp.explain import dose_response, load_sentiment, load_statements, probe_layers, reading_vector
    from interp.explain.data import split

    m = interp.load_model("smollm2-135m")
    res = {}
    cities, animals = load_statements("cities"), load_statements("animals")
    for a, b, rows_a, rows_b in (("cities", "animals", cities, animals), ("animals", "cities", animals, cities)):
        p = probe_layers(m, split(rows_a, "train"), split(rows_a, "test"), others={b: rows_b})
        res[f"probe_{a}"] = p.to_dict()
        print(a, p)
    sent = load_sentiment()

    def fmt(r):
        return f"Review: {r.text}\nSentiment:"

    tr, te = split(sent, "train"), split(sent, "test")
    pos, neg = [fmt(r) for r in tr if r.label == "positive"], [fmt(r) for r in tr if r.label == "negative"]
    for layer in (12, 18):
        for method in ("mean_diff", "pca"):
            rv = reading_vector(m, pos, neg, layer=layer, method=method)
            vec = rv.direction * rv.mean_diff.norm()  # both methods at the norm of the class-mean difference
            dr = dose_response(m, [fmt(r) for r in te], vec, layers=layer, alphas=(-2, -1, 0, 1, 2), n_random=3)
            res[f"steer_sentiment_L{layer}_{method}"] = dr.to_dict()
            print("sentiment", layer, method, dr)
    # truth: steer the true/false judgement of held-out city statements
    ct = split(cities, "train")
    tp = [r.text for r in ct if r.label]
    tn = [r.text for r in ct if not r.label]
    test_prompts = [f"{r.text} This statement is" for r in split(cities, "test")]
    for layer in (12, 18):
        rv = reading_vector(m, tp, tn, layer=layer, method="pca")
        vec = rv.direction * rv.mean_diff.norm()
        dr = dose_response(m, test_prompts, vec, layers=layer, alphas=(-4, -2, 0, 2, 4), labels=(" true", " false"),
                           n_random=3)
        res[f"steer_truth_L{layer}"] = dr.to_dict()
        print("truth", layer, dr)
    (out / "repe.json").write_text(json.dumps(res, indent=1))


def uncertainty_section(out: Path) -> None:
    from interp.explain.uncertainty import arith_questions, toy_held_out_pairs, uncertainty, word_problem_questions
    from interp.report import FEW_SHOT_PREFIX

    res = {}
    toy = interp.load_model("toy-arith")
    for spec in ("arith:+", "arith:-", "arith:*", "arith:/"):
        qs = arith_questions(toy, spec, n=200, only_pairs=toy_held_out_pairs(spec[-1]))
        r = uncertainty(toy, qs, k=5, temperature=1.0, source=f"toy {spec} held-out pairs")
        res[f"toy-arith {spec}"] = r.summary()
        print(spec, r)
    m = interp.load_model("smollm2-135m")
    for spec in ("arith:+:0-9", "arith:+:10-99"):
        t = time.time()
        r = uncertainty(m, arith_questions(m, spec, n=60, prefix=FEW_SHOT_PREFIX), max_new_tokens=4, k=5,
                        temperature=0.7, source=f"smollm2 {spec}")
        res[f"smollm2-135m {spec}"] = r.summary()
        print(spec, r, f"{time.time() - t:.0f}s")
    t = time.time()
    prefix, qs = word_problem_questions(m, variant="full_cot", n=16)
    r = uncertainty(m, qs, prefix=prefix, max_new_tokens=60, k=4, temperature=0.7, source="word problems")
    res["smollm2-135m word problems"] = r.summary()
    print("word problems", r, f"{time.time() - t:.0f}s")
    (out / "uncertainty.json").write_text(json.dumps(res, indent=1))


def icl_section(out: Path) -> None:
    from interp.explain.icl import icl_experiment

    m = interp.load_model("smollm2-135m")
    r = icl_experiment(m, shots=(0, 2, 4, 8), n_queries=30, n_saliency=4, ig_steps=8, progress=True)
    r.save(out / "icl.json")
    print(r)
    for row in r.rows:
        print(row)
    print(json.dumps(r.saliency, indent=1))


def cot_section(out: Path) -> None:
    from interp.explain.cot_saliency import cot_saliency

    m = interp.load_model("smollm2-135m")
    r = cot_saliency(m, variants=("no_cot", "full_cot"), n_problems=3, max_new_tokens=40, max_steps=12,
                     progress=True)
    r.save(out / "cot.json")
    print(r)
    print(json.dumps(r.variants, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("section", choices=["saliency", "repe", "uncertainty", "icl", "cot"])
    ap.add_argument("--out", default="/tmp/explain_results")
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    globals()[f"{a.section}_section"](out)
    print(f"[{a.section}] {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
