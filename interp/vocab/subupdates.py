"""The sub-updates ``m_i v_i`` of one prompt position ranked by scaled coefficient ``|m_i| * ||v_i||`` (Geva et al.)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from interp.errors import ShapeError
from interp.sites import hook_name
from interp.vocab.projection import (
    VocabError,
    _as_tokens,
    _check_layer,
    value_norms,
)

__all__ = ["SubUpdate", "SubUpdates", "dominant_subupdates"]


@dataclass(frozen=True)
class SubUpdate:
    """One sub-update ``m_i v_i``: its coefficient, value-vector norm and scaled coefficient ``|m_i| ||v_i||``."""

    layer: int
    neuron: int
    coefficient: float
    value_norm: float
    score: float


@dataclass(frozen=True)
class SubUpdates:
    """The dominant sub-updates of one prompt position, highest scaled coefficient first."""

    rows: tuple[SubUpdate, ...]
    pos: int
    per_layer: bool
    k: int

    def neurons(self) -> dict[int, list[int]]:
        """``{layer: [neuron, ...]}`` of the listed sub-updates."""
        out: dict[int, list[int]] = {}
        for r in self.rows:
            out.setdefault(r.layer, []).append(r.neuron)
        return out

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([r.__dict__ for r in self.rows])


@torch.inference_mode()
def dominant_subupdates(
    model: Any,
    tokens: Any,
    *,
    pos: int = -1,
    k: int = 10,
    per_layer: bool = False,
    layers: Sequence[int] | None = None,
    prepend_bos: bool = True,
) -> SubUpdates:
    """Sub-updates of position ``pos`` of one prompt ranked by ``|m_i| * ||v_i||`` (Geva et al. 2022).

    ``per_layer=False`` returns the ``k`` largest over all ``layers``; ``per_layer=True`` the ``k`` largest of
    each layer (LM-Debugger's per-layer view, Rai & Yao's Algorithm one).
    """
    toks = _as_tokens(model, tokens, prepend_bos=prepend_bos)
    seq = toks.shape[1]
    if not -seq <= pos < seq:
        raise ShapeError(f"position {pos} is out of range for a prompt of {seq} tokens")
    pos = pos % seq
    layer_list = list(range(int(model.cfg.n_layers))) if layers is None else [_check_layer(model, x) for x in layers]
    d_mlp = int(model.cfg.d_mlp)
    k = int(k)
    if not 1 <= k <= (d_mlp if per_layer else d_mlp * len(layer_list)):
        raise VocabError(f"k={k} is out of range for {len(layer_list)} layers of {d_mlp} neurons")
    names = {hook_name("neuron", x) for x in layer_list}
    _, cache = model.run_with_cache(toks, names_filter=lambda n: n in names)
    norms = value_norms(model)
    coef = torch.stack([cache[hook_name("neuron", x)][0, pos].float() for x in layer_list])  # [layer d_mlp]
    score = coef.abs() * norms[layer_list]
    rows: list[SubUpdate] = []

    def row(j: int, n: int) -> SubUpdate:
        return SubUpdate(layer_list[j], n, float(coef[j, n]), float(norms[layer_list[j], n]), float(score[j, n]))

    if per_layer:
        idx = score.topk(k, dim=-1).indices
        for j in range(len(layer_list)):
            rows += [row(j, int(n)) for n in idx[j]]
    else:
        flat = score.reshape(-1).topk(k).indices
        rows = [row(int(f) // d_mlp, int(f) % d_mlp) for f in flat]
    return SubUpdates(tuple(rows), pos, per_layer, k)
