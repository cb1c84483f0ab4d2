"""Where attribution patching (AtP) misranks components: AtP against exact patching, head by head.

Two settings (docs/circuits.md, "When AtP is unreliable"):

* ``toy-arith``: every head's position-averaged effect (the circuit search's ranking score) on the discovery prompts
  of each operator, by AtP and by exact patching, with the IE metric (Eq. 1, a ratio of probabilities: far from
  linear) and with ``logit_diff_change`` (linear in the logits);
* a saturated softmax: a random tiny bridge whose unembedding is scaled up 400x, so every answer but the top one has
  a float32 probability near 0 and the softmax's gradient vanishes - AtP's first-order estimate of IE collapses.

Reported: Spearman rank correlation, top-5 overlap, heads whose AtP sign is wrong among those with an exact effect
above 1% of the largest, and cells whose exact effect is 0 (|effect| <= 1e-5, as the search's ``rejected``).

    PYTHONPATH=. OMP_NUM_THREADS=1 python scripts/measure_atp_reliability.py
"""

from __future__ import annotations

import time

import numpy as np
import torch


def compare(name: str, est: np.ndarray, ref: np.ndarray) -> str:
    from interp.patching.attribution import spearman

    a, b = est.ravel(), ref.ravel()
    big = np.abs(b) > 0.01 * np.abs(b).max()
    wrong = int(((np.sign(a) != np.sign(b)) & big).sum())
    top = len(set(np.argsort(-np.abs(a))[:5]) & set(np.argsort(-np.abs(b))[:5])) / 5
    zero = int((np.abs(b) <= 1e-5).sum())
    return (f"| {name} | {spearman(a, b):.2f} | {top:.1f} | {wrong} of {int(big.sum())} | {zero} | "
            f"{np.abs(a).max():.3g} | {np.abs(b).max():.3g} |")


def main() -> int:
    torch.set_num_threads(1)
    from interp.circuits.effects import component_effects
    from interp.models import load_model
    from interp.tasks import parse_task

    t0 = time.time()
    rows = ["| setting | Spearman | top-5 overlap | AtP sign wrong (heads with exact effect > 1% of max) | "
            "exact effect 0 (cells) | max abs AtP | max abs exact |", "|---|---|---|---|---|---|---|"]
    model = load_model("toy-arith")
    task = parse_task("arith:+-*/:0-99")
    for metric in ("ie", "logit_diff_change"):
        for op in task.operators:
            kw = dict(operator=op, seeds=(42,), n_per_op=50, metric=metric)
            atp = component_effects(model, task, method="attribution", **kw)
            ex = component_effects(model, task, method="exact", **kw)
            rows.append(compare(f"toy-arith {op} heads, {metric}", atp.head_scores(), ex.head_scores()))

    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    from interp.patching import patch
    from interp.patching.attribution import attribution_patch
    from interp.tasks.base import PromptPairs

    # tests/conftest.py's tiny_bridge(): a random 3-layer LayerNorm/GELU bridge
    m = TransformerBridge.boot_native(TransformerBridgeConfig(
        d_model=32, d_head=8, n_heads=4, n_layers=3, d_mlp=64, d_vocab=50, n_ctx=12, act_fn="gelu",
        normalization_type="LN", seed=0))
    m.enable_compatibility_mode()
    m.eval()
    with torch.no_grad():
        m.W_U.mul_(400.0)
    g = torch.Generator().manual_seed(0)
    clean, corrupt = torch.randint(0, 50, (16, 5), generator=g), torch.randint(0, 50, (16, 5), generator=g)
    with torch.no_grad():
        r, r2 = m(clean)[:, -1].argmax(-1), m(corrupt)[:, -1].argmax(-1)
    keep = r != r2
    pairs = PromptPairs(clean[keep], corrupt[keep], r[keep], r2[keep], tuple("abcde"), "saturated")
    for metric in ("ie", "logit_diff_change"):
        a = attribution_patch(m, pairs, site="heads", positions="all", metric=metric)
        e = patch(m, pairs, site="heads", positions="all", metric=metric, progress=False)
        rows.append(compare(f"saturated tiny bridge ({pairs.n} prompts) heads x positions, {metric}",
                            a.effects, e.effects))
    print("\n".join(rows))
    print(f"\n({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
