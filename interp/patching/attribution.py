"""Attribution patching (AtP): a first-order estimate of every exact patching effect from 2 forwards + 1 backward.

For a base prompt with activation ``a`` and a source prompt with activation ``a'`` at some site, exact patching
measures ``metric(a -> a')``; attribution patching estimates it by the Taylor expansion around the base run::

    metric(a -> a') ≈ metric(a) + (a' - a) · d metric / d a

so one backward pass gives the estimate for every head, MLP, neuron and position at once (Nanda 2023; Syed et al.
2023). Nikankin et al. (ICLR 2025, methods.md §A.2) rank neurons this way, with the indirect-effect metric (Eq. 1)
taken at the clean point, where its value is 0 and only its gradient matters.

Conventions follow `interp.patching.patch` so results compare cell for cell: ``direction="noising"`` (the paper's)
takes the gradient on the clean run and patches in corrupt activations; ``"denoising"`` the reverse, which is the
convention of ``transformer_lens.tools.analysis.attribution_patching`` (whose batched gradient cache this module
uses). Heads are scored on ``attn.hook_z`` (summed over ``d_head``), MLPs on the whole ``mlp.hook_post`` vector
(summed over ``d_mlp``), neurons on single ``hook_post`` entries, and ``resid``/``attn_out``/``mlp_out`` on their
residual-stream hooks.

The estimate is exact for a metric linear in the logits and a site the logits depend on linearly (last-layer heads
and MLP outputs of a model without a final LayerNorm); elsewhere it is an approximation whose quality `agreement`
reports against exact patching (Spearman rank correlation, top-k overlap).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import ShapeError
from interp.metrics import MetricContext, make_metric, metric_unpatched_values
from interp.patching import PatchResult, resolve_positions
from interp.patching.result import rank_order
from interp.patching.variants import cli_site, prepare_sweep, sweep_axes
from interp.sites import hook_name, resolve_layers, site_units
from interp.tasks.base import PromptPairs

_UPSTREAM = "hook_embed"

__all__ = ["Agreement", "agreement", "attribution_patch", "attribution_scores", "spearman"]


def _scores_and_base(
    model: Any,
    pairs: PromptPairs,
    *,
    kind: str,
    metric: str,
    layer_list: list[int],
    pos_list: list[int],
    units: list[int] | None,
    batch_size: int,
) -> tuple[Tensor, Tensor, int]:
    """Per-prompt first-order effect estimates ``[batch layer pos (unit)]``, base metric ``[batch]``, #forwards."""
    from transformer_lens.tools.analysis.attribution_patching import cache_activation_and_gradient

    names = [hook_name(kind, lyr) for lyr in layer_list]
    pos_t = torch.tensor(pos_list)
    out, base_vals, n_fwd = [], [], 0
    was_training = model.training
    model.eval()
    try:
        for i in range(0, pairs.n, batch_size):
            sub = pairs.select(range(i, min(i + batch_size, pairs.n)))
            grabbed: dict[str, Tensor] = {}

            def grab(logits: Tensor, grabbed: dict[str, Tensor] = grabbed) -> Tensor:
                grabbed["source"] = logits[:, -1, :].detach().float()
                return logits.new_zeros(())

            with torch.no_grad():
                src = cache_activation_and_gradient(model, sub.corrupt_tokens, grab, names, compute_gradient=False)

            def value(logits: Tensor, grabbed: dict[str, Tensor] = grabbed, sub: PromptPairs = sub) -> Tensor:
                last = logits[:, -1, :].float()
                ctx = MetricContext(last.detach(), grabbed["source"], sub.clean_answers, sub.corrupt_answers)
                vals = make_metric(metric, ctx)(last)
                grabbed["base_vals"] = vals.detach()
                return vals.sum()  # rows are independent, so d(sum)/d(row i) = d(metric_i)/d(row i)

            with torch.enable_grad():
                # hook_embed is cached too: TL's gradient cache misses the gradient of the most upstream cached
                # point when the bridge reshapes it (attn.hook_z), so something upstream must be requested
                base = cache_activation_and_gradient(
                    model, sub.clean_tokens, value, [_UPSTREAM, *names], compute_gradient=True
                )
            n_fwd += 2
            per_layer = []
            for n in names:
                grad = base.gradients.get(n)
                if grad is None:
                    raise ShapeError(f"no gradient reached {n}; the metric does not depend on it")
                contrib = (src.activations[n] - base.activations[n]).double() * grad.double()
                if kind == "head":
                    s = contrib.sum(-1)[:, pos_t][:, :, units]  # [batch pos head]
                elif kind == "neuron":
                    s = contrib[:, pos_t][:, :, units]  # [batch pos neuron]
                else:
                    s = contrib.sum(-1)[:, pos_t]  # [batch pos]
                per_layer.append(s)
            out.append(torch.stack(per_layer, dim=1))
            base_vals.append(grabbed["base_vals"].double())
    finally:
        model.train(was_training)
    return torch.cat(out), torch.cat(base_vals), n_fwd


def attribution_scores(
    model: Any,
    pairs: PromptPairs,
    *,
    site: str,
    metric: str = "ie",
    positions: str | int | Sequence[int] = "last",
    direction: str = "noising",
    layers: Sequence[int] | None = None,
    neurons: Sequence[int] | None = None,
    batch_size: int = 256,
) -> Tensor:
    """Per-prompt AtP scores ``(a_source - a_base) · d metric/d a`` as ``[batch, *SWEEP_AXES[site]]`` (float64).

    E.g. ``site="neurons"`` gives ``[batch layer pos neuron]``. This is the estimated *change* of the metric; for
    the paper's ``ie`` metric, which is 0 at the base point, it is also the estimated effect. Rank neurons by
    ``scores.mean(0) + scores.std(0)`` at the last position (the paper's "mean+std", methods.md §A.2).
    """
    kind, pairs = prepare_sweep(model, pairs, site, metric, direction)
    scores, _, _ = _scores_and_base(
        model, pairs, kind=kind, metric=metric, layer_list=resolve_layers(model, layers),
        pos_list=resolve_positions(positions, pairs.seq_len), units=site_units(model, kind, neurons),
        batch_size=batch_size,
    )
    return scores


def attribution_patch(
    model: Any,
    pairs: PromptPairs,
    *,
    site: str = "heads",
    positions: str | int | Sequence[int] = "last",
    metric: str = "ie",
    direction: str = "noising",
    layers: Sequence[int] | None = None,
    neurons: Sequence[int] | None = None,
    batch_size: int = 256,
    model_name: str = "",
) -> PatchResult:
    """Attribution-patching estimate of `interp.patching.patch` with the same arguments and the same result axes.

    ``effects`` are the estimated mean patched metric, ``metric(base) + (a_source - a_base) · grad``, so they are
    directly comparable with exact patching cell for cell (use `agreement`). Costs 2 forwards + 1 backward per
    ``batch_size`` prompts whatever the number of sites.
    """
    from interp.backends import is_nnsight_model

    if is_nnsight_model(model):  # the same estimate from nnsight traces (interp.backends.nnsight_attribution)
        from interp.backends.nnsight_attribution import nnsight_attribution_patch

        return nnsight_attribution_patch(model, pairs, site=site, positions=positions, metric=metric,
                                         direction=direction, layers=layers, neurons=neurons, batch_size=batch_size,
                                         model_name=model_name)
    t0 = time.time()
    kind, pairs = prepare_sweep(model, pairs, site, metric, direction)
    layer_list = resolve_layers(model, layers)
    pos_list = resolve_positions(positions, pairs.seq_len)
    units = site_units(model, kind, neurons)
    scores, base_vals, n_fwd = _scores_and_base(
        model, pairs, kind=kind, metric=metric, layer_list=layer_list, pos_list=pos_list, units=units,
        batch_size=batch_size,
    )
    est = scores + base_vals.reshape(-1, *([1] * (scores.ndim - 1)))
    n = est.shape[0]
    mean = est.mean(0).numpy()
    stderr = (est.std(0, unbiased=True) / np.sqrt(n)).numpy() if n > 1 else np.full_like(mean, np.nan)  # 1: none
    with torch.inference_mode():
        base_logits = model(pairs.clean_tokens)[:, -1, :].float()
        source_logits = model(pairs.corrupt_tokens)[:, -1, :].float()
    baseline = metric_unpatched_values(
        metric, MetricContext(base_logits, source_logits, pairs.clean_answers, pairs.corrupt_answers)
    )
    axes, index, labels = sweep_axes(kind, pairs, layer_list, pos_list, units)
    return PatchResult(
        effects=mean,
        axes=axes,
        index=index,
        labels=labels,
        site=cli_site(kind),
        metric=metric,
        model=model_name or str(getattr(model.cfg, "model_name", "")),
        task=pairs.task,
        direction=direction,
        n_prompts=n,
        n_forward_passes=n_fwd,
        seconds=time.time() - t0,
        stderr=stderr,
        baseline=baseline,
        meta={"method": "attribution", "backward_passes": n_fwd // 2},
    )


# ------------------------------------------------------------------------------------------------- agreement


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equal-size arrays (flattened); NaN when either is constant."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ShapeError(f"spearman needs equal sizes; got {a.size} and {b.size}")
    ra, rb = _rankdata(a), _rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclass(frozen=True)
class Agreement:
    """How well an estimate (attribution) ranks sites like a reference (exact patching).

    ``top_k_overlap`` = |top-k(estimate) ∩ top-k(reference)| / k, top-k by absolute effect.
    """

    spearman: float
    pearson: float
    top_k_overlap: float
    k: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"spearman": self.spearman, "pearson": self.pearson, "top_k_overlap": self.top_k_overlap,
                "k": self.k, "n": self.n}


def agreement(estimate: PatchResult, reference: PatchResult, *, k: int = 10) -> Agreement:
    """Spearman, Pearson and top-k overlap between two `PatchResult` of the same site, positions and layers."""
    if estimate.axes != reference.axes or estimate.index != reference.index:
        raise ShapeError(
            f"results cover different sites: {estimate.axes} {estimate.effects.shape} vs "
            f"{reference.axes} {reference.effects.shape}; run both with the same site, positions and layers"
        )
    a, b = estimate.effects.ravel(), reference.effects.ravel()
    k = max(1, min(int(k), a.size))
    top_a = set(rank_order(np.abs(a), what="estimated effects")[:k].tolist())  # NaN never in a top-k
    top_b = set(rank_order(np.abs(b), what="reference effects")[:k].tolist())
    pearson = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    return Agreement(spearman(a, b), pearson, len(top_a & top_b) / k, k, int(a.size))
