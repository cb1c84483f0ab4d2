"""Representation control: add a vector to the residual stream and measure the behaviour (Zou et al. 2023;
Turner et al. 2023, activation addition).

`steer(model, vector, layers, alpha)` is a context manager: inside it every forward pass adds ``alpha · vector`` to
``resid_pre`` of each layer in ``layers`` at every position (or from ``start`` on); the hooks are removed on exit,
also on error. `dose_response` sweeps ``alpha`` and compares with random vectors of the same norm: a concept
direction should move the behaviour metric much more than a random direction does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.explain._common import ExplainError, check_finite, single_token
from interp.sites import hook_name, resolve_layers

__all__ = ["steer", "DoseResponse", "dose_response", "label_logit_diff"]


def _vector(model: Any, vector: Any) -> Tensor:
    v = torch.as_tensor(getattr(vector, "mean_diff", vector), dtype=torch.float64)
    d = int(model.cfg.d_model)
    if v.ndim != 1 or v.shape[0] != d:
        raise ExplainError(f"the steering vector must have shape ({d},) = d_model of this model; got {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise ExplainError("the steering vector contains NaN or infinite values")
    return v


@contextmanager
def steer(model: Any, vector: Any, layers: int | Sequence[int], alpha: float = 1.0, *, start: int = 0
          ) -> Iterator[Any]:
    """Add ``alpha * vector`` at ``resid_pre`` of ``layers`` (positions >= ``start``) inside the ``with`` block.

    ``vector`` is a ``[d_model]`` tensor or a `ReadingVector` (its raw ``mean_diff`` is used).
    """
    a = check_finite("alpha", alpha)
    v = _vector(model, vector)
    layers = resolve_layers(model, [layers] if isinstance(layers, int) else layers)
    if start < 0:
        raise ExplainError(f"start must be a position >= 0; got {start}")
    add = a * v

    def hook(act: Tensor, hook: Any) -> Tensor:
        act = act.clone()
        act[:, start:] += add.to(act.dtype)
        return act

    with model.hooks(fwd_hooks=[(hook_name("resid_pre", layer), hook) for layer in layers]):
        yield model


def label_logit_diff(model: Any, labels: tuple[Any, Any]) -> Callable[[Tensor], Tensor]:
    """Behaviour metric: logit(labels[0]) − logit(labels[1]) at the last position, per prompt."""
    a, b = single_token(model, labels[0], what="label"), single_token(model, labels[1], what="label")
    return lambda logits: logits[:, -1, a] - logits[:, -1, b]


@dataclass(frozen=True)
class DoseResponse:
    """Behaviour metric (mean over prompts) per alpha, for the concept vector and for random vectors of equal norm."""

    alphas: tuple[float, ...]
    concept: tuple[float, ...]
    random: tuple[tuple[float, ...], ...]  # one tuple per random vector
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def random_mean(self) -> tuple[float, ...]:
        return tuple(float(x) for x in np.mean(np.asarray(self.random), axis=0))

    def _slope(self, y: Sequence[float]) -> float:
        return float(np.polyfit(np.asarray(self.alphas), np.asarray(y), 1)[0])

    @property
    def slope(self) -> float:
        """Least-squares slope of the concept curve (metric per unit alpha)."""
        return self._slope(self.concept)

    @property
    def random_slopes(self) -> tuple[float, ...]:
        return tuple(self._slope(r) for r in self.random)

    @property
    def ratio(self) -> float:
        """|concept slope| / mean |random slope|: how much more the concept direction moves the behaviour."""
        rs = np.mean(np.abs(self.random_slopes))
        return float(abs(self.slope) / rs) if rs > 0 else float("inf")

    def __repr__(self) -> str:
        return (f"DoseResponse(slope {self.slope:+.3g}/alpha vs random {np.mean(np.abs(self.random_slopes)):.3g}; "
                f"ratio {self.ratio:.1f}x; {len(self.alphas)} alphas)")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "dose_response", "alphas": list(self.alphas), "concept": list(self.concept),
                "random": [list(r) for r in self.random], "slope": self.slope,
                "random_slopes": list(self.random_slopes), "ratio": self.ratio, "settings": self.settings}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DoseResponse:
        return cls(tuple(d["alphas"]), tuple(d["concept"]), tuple(tuple(r) for r in d["random"]),
                   d.get("settings", {}))

    def save(self, path: str | os.PathLike[str]) -> Path:
        from interp._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    def plot(self, *, title: str = "steering dose-response") -> Any:
        import plotly.graph_objects as go

        fig = go.Figure()
        fig.add_trace(go.Scatter(x=list(self.alphas), y=list(self.concept), name="concept vector",
                                 mode="lines+markers"))
        for i, r in enumerate(self.random):
            fig.add_trace(go.Scatter(x=list(self.alphas), y=list(r), name="random, same norm", mode="lines",
                                     line=dict(color="grey", dash="dot"), showlegend=i == 0))
        fig.update_layout(title=title, xaxis_title="alpha", yaxis_title=self.settings.get("metric", "behaviour"))
        return fig


@torch.inference_mode()
def _metric_mean(model: Any, prompts: list[list[int]], metric: Callable[[Tensor], Tensor]) -> float:
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    vals = []
    for _, idx in by_len.items():
        vals.append(metric(model(torch.tensor([prompts[i] for i in idx])).float()).double())
    return float(torch.cat(vals).mean())


def dose_response(model: Any, prompts: Sequence[Any], vector: Any, *, layers: int | Sequence[int],
                  alphas: Sequence[float] = (-4, -2, -1, 0, 1, 2, 4), labels: tuple[Any, Any] = (" positive",
                  " negative"), n_random: int = 3, seed: int = 0, prepend_bos: bool = True) -> DoseResponse:
    """Mean ``logit(labels[0]) − logit(labels[1])`` of ``prompts`` while steering with ``alpha · vector`` for each
    alpha, and the same with ``n_random`` Gaussian vectors rescaled to the vector's norm. ``prompts`` are strings or
    token-id lists."""
    from interp.tasks.base import encode, get_tokenizer

    v = _vector(model, vector)
    alphas = [check_finite("alpha", a) for a in alphas]
    if not alphas:
        raise ExplainError("no alphas given")
    if not prompts:
        raise ExplainError("no prompts to steer")
    if n_random < 1:
        raise ExplainError(f"n_random must be >= 1; got {n_random}")
    metric = label_logit_diff(model, labels)
    if all(isinstance(p, str) for p in prompts):
        tok = get_tokenizer(model)
        ids = encode(tok, list(prompts), prepend_bos=prepend_bos and tok.bos_token_id is not None)[0]
    else:
        ids = [[int(t) for t in p] for p in prompts]
    g = torch.Generator().manual_seed(seed)
    rand = [torch.randn(v.shape[0], generator=g, dtype=torch.float64) for _ in range(n_random)]
    rand = [r * (v.norm() / r.norm()) for r in rand]

    def curve(vec: Tensor) -> tuple[float, ...]:
        out = []
        for a in alphas:
            with steer(model, vec, layers, a):
                out.append(_metric_mean(model, ids, metric))
        return tuple(out)

    layer_list = [layers] if isinstance(layers, int) else list(layers)
    settings = {"layers": layer_list, "labels": list(labels), "n_prompts": len(prompts), "n_random": n_random,
                "seed": seed, "vector_norm": float(v.norm()), "metric": f"logit({labels[0]!r}) - logit({labels[1]!r})"}
    return DoseResponse(tuple(alphas), curve(v), tuple(curve(r) for r in rand), settings)
