"""Mean / zero / resample ablation and faithfulness (Eq. 2) on an `NNsightModel`.

`interp.circuits.faithfulness(model, ...)` and `interp.circuits.ablation.mean_cache(model, task)` land here for an
nnsight model. The ablation is the bridge's (`interp.circuits.ablation.ablation_hooks`): every head's ``z``
(``o_proj``'s input, viewed ``[head d_head]``) and every MLP's ``hook_post`` (``down_proj``'s input) outside the
circuit is replaced at every position by the per-position mean over the reference strings, by zero, or by the
activation of the resample prompt of the same row. Faithfulness uses the normalized logit of centred logits, as the
bridge computes it. One trace per ``batch_size`` prompts and circuit; local only (``remote=True`` is refused: the
masks would be uploaded with every request).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from interp.circuits.ablation import _check_components
from interp.circuits.faithfulness import FaithfulnessEvaluator
from interp.metrics import normalized_logit
from interp.sites import hook_name

__all__ = ["NNsightFaithfulnessEvaluator", "nnsight_mean_cache"]


def _z(nn: Any, layer: int) -> Any:
    return nn.model.layers[layer].self_attn.o_proj.input


def _post(nn: Any, layer: int) -> Any:
    return nn.model.layers[layer].mlp.down_proj.input


def _check_local(model: Any) -> None:
    from interp.errors import ShapeError

    if model.remote:
        raise ShapeError("ablations on the nnsight backend run locally only; load the model without remote=True")


@torch.inference_mode()
def nnsight_mean_cache(model: Any, tokens: Tensor, *, kinds: Sequence[str] = ("head", "mlp"),
                       batch_size: int = 512) -> dict[str, Tensor]:
    """`interp.circuits.ablation.mean_cache` of ``tokens`` on an `NNsightModel`: ``{hook name: per-position mean}``."""
    _check_local(model)
    nn, n_layers = model.nn, int(model.cfg.n_layers)
    h, dh = int(model.cfg.n_heads), int(model.cfg.d_head)
    want_heads, want_mlp = "head" in kinds, bool({"mlp", "neuron"} & set(kinds))
    sums: dict[str, Tensor] = {}
    for i in range(0, tokens.shape[0], batch_size):
        part = tokens[i : i + batch_size].to(model.device)
        got: dict[str, Tensor] = {}
        with nn.trace(part):
            for layer in range(n_layers):
                if want_heads:
                    got[hook_name("head", layer)] = _z(nn, layer).double().sum(0).cpu().save()
                if want_mlp:
                    got[hook_name("mlp", layer)] = _post(nn, layer).double().sum(0).cpu().save()
        for name, s in got.items():
            sums[name] = s if name not in sums else sums[name] + s
    out = {n: (s / tokens.shape[0]).float() for n, s in sums.items()}
    return {n: (v.view(v.shape[0], h, dh) if n.endswith("hook_z") else v) for n, v in out.items()}


class NNsightFaithfulnessEvaluator(FaithfulnessEvaluator):
    """`interp.circuits.faithfulness.FaithfulnessEvaluator` whose forward passes are nnsight traces (same checks,
    same result)."""

    def __init__(self, model: Any, tokens: Tensor, answers: Tensor, **kw: Any) -> None:
        _check_local(model)
        self._resample_acts: dict[str, Tensor] | None = None
        super().__init__(model, tokens, answers, **kw)

    def _resample(self) -> dict[str, Tensor]:
        """Every layer's z and post on the resample prompts (one pass, kept for all circuits)."""
        if self._resample_acts is None:
            assert self.resample_tokens is not None
            nn, got = self.model.nn, {}
            h, dh = int(self.model.cfg.n_heads), int(self.model.cfg.d_head)
            with torch.inference_mode(), nn.trace(self.resample_tokens.to(self.model.device)):
                for layer in range(int(self.model.cfg.n_layers)):
                    z = _z(nn, layer)
                    got[hook_name("head", layer)] = z.view(z.shape[0], z.shape[1], h, dh).clone().save()
                    got[hook_name("mlp", layer)] = _post(nn, layer).clone().save()
            self._resample_acts = dict(got)
        return self._resample_acts

    def _plan(self, heads: list, mlps: list, neurons: Mapping[int, Sequence[int]] | None,
              ) -> list[tuple[int, Tensor | None, Tensor | None]]:
        """Per layer: the keep mask of heads [head] (None = all kept) and of MLP neurons [d_mlp]."""
        hs, ms, ns = _check_components(self.model, heads, mlps, neurons)
        n_heads, d_mlp = int(self.model.cfg.n_heads), int(self.model.cfg.d_mlp)
        plan = []
        for layer in range(int(self.model.cfg.n_layers)):
            hm = torch.tensor([(layer, h) in hs for h in range(n_heads)])
            if layer in ns:
                mm = torch.zeros(d_mlp, dtype=torch.bool)
                mm[list(ns[layer])] = True
            else:
                mm = torch.full((d_mlp,), layer in ms)
            plan.append((layer, None if bool(hm.all()) else hm, None if bool(mm.all()) else mm))
        return plan

    @torch.inference_mode()
    def _nl(self, hooks_for: Any) -> Tensor:
        plan = list(hooks_for)  # [] from the base class (no ablation), else _plan's per-layer masks
        nn, dev = self.model.nn, self.model.device
        h, dh = int(self.model.cfg.n_heads), int(self.model.cfg.d_head)
        values: dict[str, Tensor | None] = {}
        for layer, hm, mm in plan:
            for name, mask in ((hook_name("head", layer), hm), (hook_name("mlp", layer), mm)):
                if mask is None:
                    continue
                if self.ablation == "mean":
                    assert self.mean is not None
                    values[name] = self.mean[name].to(dev)
                elif self.ablation == "resample":
                    values[name] = self._resample()[name]
                else:
                    values[name] = None
        outs = []
        for i in range(0, self.tokens.shape[0], self.batch_size):
            sl = slice(i, i + self.batch_size)
            res: dict[str, Tensor] = {}
            with nn.trace(self.tokens[sl].to(dev), logits_to_keep=1):
                for layer, hm, mm in plan:
                    if hm is not None:
                        z = _z(nn, layer)
                        zv = z.view(z.shape[0], z.shape[1], h, dh)
                        v = values[hook_name("head", layer)]
                        v = torch.zeros((), dtype=zv.dtype) if v is None else (v[sl] if v.ndim == 4 else v)
                        zv[...] = torch.where(hm.to(zv.device)[:, None], zv, v.to(zv.device, zv.dtype))
                    if mm is not None:
                        p = _post(nn, layer)
                        v = values[hook_name("mlp", layer)]
                        v = torch.zeros((), dtype=p.dtype) if v is None else (v[sl] if v.ndim == 3 else v)
                        p[...] = torch.where(mm.to(p.device), p, v.to(p.device, p.dtype))
                lg = nn.lm_head.output[:, -1].float()
                res["lg"] = (lg - lg.mean(-1, keepdim=True)).cpu().save()
            outs.append(normalized_logit(res["lg"], self.answers[sl]).double())
        return torch.cat(outs)

    def nl(self, *, keep_heads: Iterable[tuple[int, int]], keep_mlps: Iterable[int],
           keep_neurons: Mapping[int, Sequence[int]] | None = None) -> Tensor:
        return self._nl(self._plan(list(keep_heads), list(keep_mlps), keep_neurons))
