"""IOI, induction and head classes on SmolLM2-135M (the numbers in docs/pretrained.md).

Usage: python scripts/ioi_smollm.py [--model smollm2-135m] [--out DIR] [--n-prompts 32]
Writes ioi_heads.json (exact head patching, S2 and final positions), head_scores.json and summary.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def circuit_curve(model, pairs, heads_result, sizes=(0, 3, 5, 10, 20, 40, 80, 270)) -> list[dict]:
    """Faithfulness (Eq. 2, normalized logit of IO) of the top-n heads by |patching effect| with every MLP kept
    and every other head resample-ablated from the ABC prompts."""
    import numpy as np

    from interp.circuits.faithfulness import FaithfulnessEvaluator

    eff = np.abs(heads_result.effects).max(axis=1)  # [layer head], max over the patched positions
    layers = heads_result.index["layer"]
    order = [(layers[int(f) // eff.shape[1]], int(f) % eff.shape[1]) for f in np.argsort(-eff.reshape(-1))]
    ev = FaithfulnessEvaluator(model, pairs.clean_tokens, pairs.clean_answers, ablation="resample",
                               resample_tokens=pairs.corrupt_tokens)
    mlps = list(range(int(model.cfg.n_layers)))
    out = []
    for n in sizes:
        r = ev.score(keep_heads=order[:n], keep_mlps=mlps)
        out.append({"n_heads": n, "faithfulness": r.faithfulness, "heads": [f"L{a}H{b}" for a, b in order[:n][:10]]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", default="ioi-smollm")
    ap.add_argument("--n-prompts", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--circuit-only", action="store_true",
                    help="reuse OUT/ioi_heads.json and only measure the faithfulness curve")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from interp.circuits.heads import agreement, head_scores
    from interp.models import load_model
    from interp.patching import patch
    from interp.report.pretrained import AGREEMENT_TEXTS
    from interp.tasks.induction import InductionTask
    from interp.tasks.ioi import IOITask

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model = load_model(args.model)
    if args.circuit_only:
        from interp.patching import PatchResult

        task = IOITask(n_prompts=args.n_prompts)
        curve = circuit_curve(model, task.pairs(model), PatchResult.load(out / "ioi_heads.json"))
        (out / "circuit.json").write_text(json.dumps(curve, indent=1))
        print(json.dumps(curve, indent=1))
        return
    summary: dict = {"model": args.model}
    for corruption in ("abc", "swap"):
        summary[f"ioi_{corruption}"] = IOITask(n_prompts=args.n_prompts, corruption=corruption).logit_diff(model)
    print("IOI:", summary["ioi_abc"], summary["ioi_swap"]["corrupt"], flush=True)
    task = IOITask(n_prompts=args.n_prompts)
    pairs = task.pairs(model)
    s2 = pairs.position_labels.index("S2")
    res = patch(model, pairs, site="heads", positions=[s2, pairs.seq_len - 1], metric="logit_diff_change",
                progress=False, model_name=args.model)
    res.save(out / "ioi_heads.json")
    summary["ioi_top_heads"] = res.top(12)
    summary["ioi_patch_seconds"] = res.seconds
    print("top heads:", res.top(12), f"({time.time() - t0:.0f} s)", flush=True)
    mlps = patch(model, pairs, site="mlps", positions=[s2, pairs.seq_len - 1], metric="logit_diff_change",
                 progress=False, model_name=args.model)
    summary["ioi_top_mlps"] = mlps.top(6)
    ind = InductionTask(seq_len=20, n_prompts=16)
    summary["induction_loss"] = ind.loss(model)
    hs = head_scores(model, ind.tokens(model))
    hs.save(out / "head_scores.json")
    summary["head_classes"] = {k: [f"L{a}H{b}" for a, b in v] for k, v in hs.classify().items()}
    summary["head_top"] = {k: hs.top(k, 5) for k in hs.kinds}
    ipairs = ind.pairs(model)
    ires = patch(model, ipairs, site="heads", positions="last", metric="logit_diff_change", progress=False)
    summary["induction_top_heads"] = ires.top(6)
    ag = agreement(model, AGREEMENT_TEXTS, k=5)
    summary["head_detector_agreement"] = ag.to_dict()
    summary["circuit"] = circuit_curve(model, pairs, res)
    summary["seconds"] = time.time() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "ioi_top_heads"}, indent=1))


if __name__ == "__main__":
    main()
