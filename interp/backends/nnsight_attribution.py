"""Attribution patching (AtP) on an `NNsightModel`: the bridge's estimate, from nnsight traces with a backward pass.

`interp.patching.attribution.attribution_patch(model, pairs, ...)` lands here for an nnsight model. Per chunk of
``batch_size`` prompts: one trace of the source prompts saves the site activations and the reduced logits, one trace
of the base prompts saves the activations and, inside ``with metric.backward()``, their gradients. The metric is the
bridge's (`interp.metrics.make_metric` on the three pseudo-logits of `pseudo_logits`, whose values and gradients
equal those of the full logits), and the scores are ``(a_source - a_base) . d metric / d a`` per prompt, position
and unit, exactly as `interp.patching.attribution` computes them on the bridge. Local execution only: the backward
trace calls `interp` code that NDIF does not have.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.metrics import make_metric, metric_unpatched_values
from interp.patching.result import PatchResult
from interp.patching.variants import cli_site, prepare_sweep, resolve_positions, sweep_axes
from interp.sites import resolve_layers, site_units

__all__ = ["nnsight_attribution_patch"]


def _site(nn: Any, kind: str, layer: int) -> Any:
    """The nnsight value of site ``kind`` in ``layer`` (see `interp.backends.nnsight_patching`)."""
    blk = nn.model.layers[layer]
    if kind == "resid_pre":
        return blk.input
    if kind == "attn_out":
        return blk.self_attn.o_proj.output
    if kind == "head":
        return blk.self_attn.o_proj.input
    if kind == "mlp_out":
        return blk.mlp.output
    return blk.mlp.down_proj.input


def _reduce(logits: Tensor, cols: Tensor) -> Tensor:
    lg = logits.float()
    mean = lg.mean(-1, keepdim=True)
    return torch.cat([lg.gather(1, cols) - mean, lg.logsumexp(-1, keepdim=True) - mean], dim=1)


def nnsight_attribution_patch(model: Any, pairs: Any, *, site: str = "heads", positions: Any = "last",
                              metric: str = "ie", direction: str = "noising", layers: Sequence[int] | None = None,
                              neurons: Sequence[int] | None = None, batch_size: int = 256,
                              model_name: str = "") -> PatchResult:
    """`interp.patching.attribution.attribution_patch` on an `NNsightModel` (same arguments, same result)."""
    from interp.backends.nnsight_patching import _context, pseudo_logits
    from interp.errors import ShapeError

    if model.remote:
        raise ShapeError("attribution patching on the nnsight backend runs locally only (its backward trace calls "
                         "interp's metric code, which NDIF does not have); load the model without remote=True")
    t0 = time.time()
    kind, pairs = prepare_sweep(model, pairs, site, metric, direction)
    layer_list = resolve_layers(model, layers)
    pos_list = resolve_positions(positions, pairs.seq_len)
    units = site_units(model, kind, neurons)
    nn, dev = model.nn, model.device
    h, dh = int(model.cfg.n_heads), int(model.cfg.d_head)
    pos_t = torch.tensor(pos_list)
    est_all, n_fwd = [], 0
    base_red_all, src_red_all = [], []
    for i in range(0, pairs.n, batch_size):
        sub = pairs.select(range(i, min(i + batch_size, pairs.n)))
        r, r2 = sub.clean_answers.long(), sub.corrupt_answers.long()
        same = r == r2
        cols = torch.stack([r, r2], 1).to(dev)
        # saved values are collected in lists made outside the traces (nnsight returns the body's saved locals,
        # and list comprehensions inside a trace body do not come back)
        src_acts: list[Tensor] = []
        base_acts: list[Tensor] = []
        grads: list[Tensor] = []
        out: dict[str, Tensor] = {}
        with torch.no_grad(), nn.trace(sub.corrupt_tokens.to(dev), logits_to_keep=1):
            for lyr in layer_list:
                src_acts.append(_site(nn, kind, lyr).detach().clone().save())
            out["src"] = _reduce(nn.lm_head.output[:, -1], cols).detach().cpu().save()
        src_red = out["src"]
        src_px = pseudo_logits(src_red, same)
        with torch.enable_grad(), nn.trace(sub.clean_tokens.to(dev), logits_to_keep=1):
            acts = []
            for lyr in layer_list:
                a = _site(nn, kind, lyr)
                acts.append(a)
                base_acts.append(a.detach().clone().save())
            red = _reduce(nn.lm_head.output[:, -1], cols)
            px = pseudo_logits(red.cpu(), same)
            vals = make_metric(metric, _context(px.detach(), src_px, same))(px)
            out["vals"] = vals.detach().save()
            out["base"] = red.detach().cpu().save()
            with vals.sum().backward():  # rows are independent: d(sum)/d(row i) = d(metric_i)/d(row i)
                for a in reversed(acts):  # gradients arrive last layer first
                    grads.insert(0, a.grad.detach().clone().save())
        base_vals, base_red = out["vals"], out["base"]
        n_fwd += 2
        per_layer = []
        for a_src, a_base, g in zip(src_acts, base_acts, grads):
            contrib = (a_src.double() - a_base.double()) * g.double()
            if kind == "head":
                s = contrib.view(*contrib.shape[:2], h, dh).sum(-1)[:, pos_t][:, :, units]
            elif kind == "neuron":
                s = contrib[:, pos_t][:, :, units]
            else:
                s = contrib.sum(-1)[:, pos_t]
            per_layer.append(s.cpu())
        scores = torch.stack(per_layer, dim=1)
        est_all.append(scores + base_vals.double().cpu().reshape(-1, *([1] * (scores.ndim - 1))))
        base_red_all.append(base_red)
        src_red_all.append(src_red.cpu())
    est = torch.cat(est_all)
    n = est.shape[0]
    mean = est.mean(0).numpy()
    stderr = (est.std(0, unbiased=True) / np.sqrt(n)).numpy() if n > 1 else np.full_like(mean, np.nan)  # 1: none
    same_all = pairs.clean_answers == pairs.corrupt_answers
    baseline = metric_unpatched_values(metric, _context(pseudo_logits(torch.cat(base_red_all), same_all),
                                                        pseudo_logits(torch.cat(src_red_all), same_all), same_all))
    axes, index, labels = sweep_axes(kind, pairs, layer_list, pos_list, units)
    return PatchResult(
        effects=mean, axes=axes, index=index, labels=labels, site=cli_site(kind), metric=metric,
        model=model_name or str(model.cfg.model_name), task=pairs.task, direction=direction, n_prompts=n,
        n_forward_passes=n_fwd, seconds=time.time() - t0, stderr=stderr, baseline=baseline,
        meta={"method": "attribution", "backward_passes": n_fwd // 2, "backend": "nnsight"},
    )

