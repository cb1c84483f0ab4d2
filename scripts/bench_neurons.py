"""Benchmark: heuristic classification of every layer's top neurons over the full legal grid of all four operators.

    python scripts/bench_neurons.py                       # toy-arith, top 50 per layer, paper and code variants
    python scripts/bench_neurons.py --top-k 512 --threads 2 --json bench.json

Times (wall clock, ``torch.set_num_threads(--threads)``) the importance ranking (AtP, 50 prompts per operator),
the K/KV maps + Algorithm 1 for the top-k neurons of every layer, and the prompt-guided vs random knockout curve.
The target is classification in <= 2 minutes on 2 CPU cores. Numbers go in docs/benchmarks-neurons.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="toy-arith")
    p.add_argument("--task", default="arith")
    p.add_argument("--top-k", type=int, nargs="+", default=[50, 512], help="neurons per layer (several allowed)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=["paper", "code"], choices=["paper", "code"])
    p.add_argument("--budget-mb", type=float, default=256.0)
    p.add_argument("--json", default=None, help="also write the numbers as JSON")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from interp.models import load_model
    from interp.neurons import ClassifierConfig
    from interp.neurons.importance import importance_by_operator
    from interp.neurons.knockout import prompt_knockout
    from interp.neurons.pipeline import classify_neurons
    from interp.tasks import parse_task

    model, task = load_model(args.model), parse_task(args.task)
    t0 = time.time()
    importance = importance_by_operator(model, task, n_per_op=50, method="atp")
    t_imp = time.time() - t0
    rows = []
    print(f"{args.model} on {task.name}: {platform.processor() or platform.machine()}, {args.threads} threads; "
          f"AtP importance (4 x 50 prompts): {t_imp:.1f} s")
    print("| neurons/layer | variant | neurons classified | seconds | classified (+ - * /) | overall |")
    print("|---|---|---|---|---|---|")
    knock = None
    for k in args.top_k:
        top = {op: imp.top(k=min(k, int(model.cfg.d_mlp))) for op, imp in importance.items()}
        for variant in args.variants:
            cfg = ClassifierConfig() if variant == "paper" else ClassifierConfig.code()
            t1 = time.time()
            cls = classify_neurons(model, task, top, config=cfg, importance=importance, budget_mb=args.budget_mb)
            sec = time.time() - t1
            n = sum(len(oc.neurons) for oc in cls.ops.values())
            fr = cls.fractions()
            rows.append({"top_k": k, "variant": variant, "neurons": n, "seconds": round(sec, 1),
                         "classified": {op: round(f, 3) for op, f in fr.items()},
                         "overall": round(cls.classified_fraction, 3),
                         "per_operator_seconds": {op: round(oc.seconds, 1) for op, oc in cls.ops.items()}})
            print(f"| {k} | {variant} | {n} | {sec:.1f} | {' / '.join(f'{100 * f:.0f}%' for f in fr.values())} | "
                  f"{100 * cls.classified_fraction:.0f}% |")
            if k == args.top_k[0] and variant == args.variants[0]:
                t2 = time.time()
                knock = {op: prompt_knockout(model, task, cls, op=op, per_layer=[0, 5, 10, 15, 20, 25], n_random=3)
                         for op in task.operators}
                t_knock = time.time() - t2
    if knock:
        print(f"\nPrompt-guided vs random knockout (top {args.top_k[0]}, {args.variants[0]} variant; "
              f"{t_knock:.1f} s); accuracy on 50 held-out correct prompts per operator:")
        per_layer = next(iter(knock.values())).per_layer
        print("| operator | " + " | ".join(f"L={x}" for x in per_layer) + " |")
        print("|---|" + "---|" * len(per_layer))
        for op, r in knock.items():
            print(f"| {op} heuristic | " + " | ".join(f"{v:.2f}" for v in r.heuristic_accuracy) + " |")
            print(f"| {op} random | " + " | ".join(f"{v:.2f}" for v in r.random_accuracy) + " |")
    if args.json:
        out = {"model": args.model, "task": task.name, "threads": args.threads, "importance_seconds": round(t_imp, 1),
               "classification": rows,
               "knockout": {op: {"per_layer": r.per_layer, "heuristic": r.heuristic_accuracy,
                                 "random": r.random_accuracy} for op, r in (knock or {}).items()}}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
