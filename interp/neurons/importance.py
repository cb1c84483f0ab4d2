"""Which MLP neurons matter: per-neuron importance at the last position (Nikankin et al., ICLR 2025, §3.1, §A.2).

The paper's code scores every neuron of ``mlp.hook_post`` by attribution patching (AtP) with the indirect-effect
metric (Eq. 1) - clean prompt, corrupt activation patched in, first-order estimate - one score per prompt, and
ranks neurons by ``mean + std`` over prompts (``get_neuron_importance_scores``); the paper's text describes exact
activation patching instead. Both are here: ``method="atp"`` (default; `interp.patching.attribution.attribution_scores`,
one forward/backward per batch) and ``method="exact"`` (`interp.patching.patch`, one patched forward per neuron and
prompt batch; its per-prompt std comes from the standard error). `verify_top_neurons` re-measures the AtP top
neurons exactly. The paper keeps the top 200 of 14,336 neurons (≈1.4%) per layer; `faithfulness_curve` measures
how faithful the circuit is when only the top-k neurons per layer are kept (Fig. 4b).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from interp.errors import unknown
from interp.neurons._common import NeuronError, check_hook_post, check_neurons, check_operator
from interp.neurons.results import FaithfulnessCurve, ImportanceCheck, NeuronImportance
from interp.patching.result import rank_order
from interp.sites import resolve_layers
from interp.tasks.base import TASK_METHODS, require

__all__ = [
    "METHODS",
    "neuron_importance",
    "importance_by_operator",
    "top_neurons",
    "verify_top_neurons",
    "faithfulness_curve",
]

METHODS = ("atp", "exact")



def _ranking_std(mean: np.ndarray, stderr: np.ndarray, n: int) -> np.ndarray:
    """The per-prompt standard deviation behind the paper's mean + std ranking score, from a sweep's standard error.
    Where a neuron has a mean but no standard error (one defined prompt) it is 0, as the AtP path's one-prompt std:
    the ranking needs a number there, and with one prompt there is no spread to add."""
    std = stderr * math.sqrt(n)
    return np.where(np.isnan(std) & np.isfinite(mean), 0.0, std)

def neuron_importance(
    model: Any,
    pairs: Any,
    *,
    method: str = "atp",
    metric: str = "ie",
    layers: Sequence[int] | None = None,
    batch_size: int = 256,
    max_rows: int = 4096,
    group: str = "",
    model_name: str = "",
) -> NeuronImportance:
    """Importance of every neuron of ``layers`` at the last position over the clean/corrupt ``pairs``.

    Returns a `NeuronImportance` with ``mean``/``std`` ``[layer d_mlp]`` over prompts; rank with ``.score``
    (mean + std) or ``.top(k=...)``.
    """
    if method not in METHODS:
        raise unknown("importance method", method, METHODS)
    check_hook_post(model)
    layer_list = resolve_layers(model, layers)
    t0 = time.time()
    if method == "atp":
        from interp.patching.attribution import attribution_scores

        s = attribution_scores(model, pairs, site="neurons", metric=metric, positions="last", layers=layer_list,
                               batch_size=batch_size)  # [batch layer pos=1 neuron]
        s = s[:, :, 0, :].double().cpu().numpy()
        mean = s.mean(0)
        std = s.std(0, ddof=1) if s.shape[0] > 1 else np.zeros_like(mean)
    else:
        from interp.patching import patch

        res = patch(model, pairs, site="neurons", positions="last", metric=metric, layers=layer_list,
                    max_rows=max_rows, progress=False)
        mean = res.effects[:, 0, :]
        assert res.stderr is not None
        std = _ranking_std(mean, res.stderr[:, 0, :], res.n_prompts)
    return NeuronImportance(
        mean=np.asarray(mean, dtype=float), std=np.asarray(std, dtype=float), method=method, metric=metric,
        n_prompts=int(pairs.n), layers=layer_list, group=group, task=getattr(pairs, "task", ""),
        model=model_name or str(getattr(model.cfg, "model_name", "")), seconds=time.time() - t0,
    )


def importance_by_operator(
    model: Any,
    task: Any,
    *,
    ops: Sequence[str] | None = None,
    n_per_op: int = 50,
    seed: int = 0,
    method: str = "atp",
    metric: str = "ie",
    layers: Sequence[int] | None = None,
    model_name: str = "",
) -> dict[str, NeuronImportance]:
    """`neuron_importance` per operator on the paper's discovery pairs: ``n_per_op`` correct clean prompts of each
    operator, corrupt prompts drawn from all operators (``task.pairs(..., corrupt_from="all")``)."""
    require(task, "neuron importance", *TASK_METHODS["operators"], "pairs")
    ops = list(task.operators) if ops is None else [check_operator(task, op) for op in ops]
    pairs = task.pairs(model, n_per_op=n_per_op, seed=seed, corrupt_from="all")
    groups = pairs.by_group()
    if not ops:  # a task without operators (groups): one importance per group of its pairs
        ops = list(groups)
    return {op: neuron_importance(model, groups[op], method=method, metric=metric, layers=layers, group=op,
                                  model_name=model_name) for op in ops}


def top_neurons(importance: NeuronImportance, *, k: int | None = None, frac: float | None = None,
                layers: Sequence[int] | None = None) -> dict[int, list[int]]:
    """``{layer: the top k (or frac of d_mlp) neuron indices}``, best first (k must lie in 1..d_mlp)."""
    return importance.top(k=k, frac=frac, layers=None if layers is None else list(layers))


def verify_top_neurons(model: Any, pairs: Any, importance: NeuronImportance, top: Mapping[int, Sequence[int]], *,
                       max_rows: int = 4096) -> ImportanceCheck:
    """Exact activation patching (last position, the importance's metric) of the ``top`` neurons, against the
    importance estimate. With AtP scores this checks the first-order estimate where it matters."""
    from interp.patching import patch

    top = check_neurons(model, top)
    layers: list[int] = []
    neurons: list[int] = []
    est, exact, est_score, exact_score = [], [], [], []
    for layer, idx in top.items():
        if layer not in importance.layers:
            raise NeuronError(f"layer {layer} was not scored by this importance (layers {importance.layers})")
        res = patch(model, pairs, site="neurons", positions="last", metric=importance.metric, layers=[layer],
                    neurons=idx, max_rows=max_rows, progress=False)
        assert res.stderr is not None
        row = importance.layers.index(layer)
        layers += [layer] * len(idx)
        neurons += list(idx)
        est += importance.mean[row, idx].tolist()
        est_score += importance.score[row, idx].tolist()
        exact += res.effects[0, 0, :].tolist()
        exact_score += (res.effects[0, 0, :] + _ranking_std(res.effects[0, 0, :], res.stderr[0, 0, :],
                                                            res.n_prompts)).tolist()
    return ImportanceCheck(layers=layers, neurons=neurons, estimate=est, exact=exact, estimate_score=est_score,
                           exact_score=exact_score)


def faithfulness_curve(
    model: Any,
    task: Any,
    importance: Mapping[str, NeuronImportance],
    *,
    ks: Sequence[int],
    layers: Sequence[int] | None = None,
    keep_heads: Mapping[str, Sequence[tuple[int, int]]] | Sequence[tuple[int, int]] | None = None,
    n_per_op: int = 50,
    ablation: str = "mean",
    mean: Mapping[str, Any] | None = None,
) -> FaithfulnessCurve:
    """Fig. 4b: faithfulness (Eq. 2) of the circuit that keeps the operator's heads, whole MLPs
    outside ``layers`` and only the top-k neurons (by ``importance[op]``) in ``layers``; everything else ablated.

    ``layers`` are the paper's "heuristic layers" (default: every scored layer). ``keep_heads`` is one head list
    for all operators, one per operator, or None for every head. Evaluated on held-out correct prompts
    (``split="evaluation"``).
    """
    from interp.circuits.ablation import mean_cache
    from interp.circuits.faithfulness import FaithfulnessEvaluator

    check_hook_post(model)
    d_mlp, n_layers, n_heads = int(model.cfg.d_mlp), int(model.cfg.n_layers), int(model.cfg.n_heads)
    ks = [int(k) for k in ks]
    bad = [k for k in ks if not 0 <= k <= d_mlp]
    if bad or not ks:
        raise NeuronError(f"every k must lie in 0..d_mlp={d_mlp} (neurons kept per layer); got {bad or ks}")
    first = next(iter(importance.values()))
    layer_list = list(first.layers) if layers is None else resolve_layers(model, layers)
    if ablation == "mean" and mean is None:
        mean = mean_cache(model, task, kinds=("head", "mlp"))
    pairs = task.pairs(model, n_per_op=n_per_op, split="evaluation", corrupt_from="all").by_group()
    values: dict[str, list[float]] = {}
    for op, imp in importance.items():
        check_operator(task, op)
        if isinstance(keep_heads, Mapping):
            heads = list(keep_heads[op])
        elif keep_heads is None:
            heads = [(l, h) for l in range(n_layers) for h in range(n_heads)]
        else:
            heads = list(keep_heads)
        sub = pairs[op]
        ev = FaithfulnessEvaluator(model, sub.clean_tokens, sub.clean_answers, ablation=ablation, mean=mean)
        order = {l: rank_order(imp.score[imp.layers.index(l)], what=f"L{l} neuron scores") for l in layer_list}
        full = [l for l in range(n_layers) if l not in layer_list]
        values[op] = [
            ev.score(keep_heads=heads, keep_mlps=full,
                     keep_neurons={l: order[l][:k].tolist() for l in layer_list}).faithfulness
            for k in ks
        ]
    return FaithfulnessCurve(ks=ks, values=values, layers=layer_list, d_mlp=d_mlp, ablation=ablation)
