"""Representation reading: reading vectors (RepE's LAT) and linear probes per layer.

* `activations`: the residual stream (``resid_pre`` of every chosen layer) at the last token of each text.
* `reading_vector`: the direction that separates contrasting stimuli at one layer (Zou et al. 2023, "Representation
  Engineering"): ``mean_diff`` = mean(positive) − mean(negative); ``pca`` = first principal direction of the paired
  differences a(pos_i) − a(neg_i) (LAT; uncentred, which equals centred PCA of the differences with random signs, as
  RepE builds them), oriented so that positives project higher.
* `probe_layers`: a logistic-regression probe per layer (torch, L-BFGS, standardised features, L2 penalty), trained
  on one split and scored on held-out data - the same family's test split and, for the cross-dataset test of Marks &
  Tegmark (2023), another family of statements.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import unknown
from interp.explain._common import ExplainError, check_context
from interp.explain.data import check_two_classes
from interp.sites import check_layer, hook_name, resolve_layers

__all__ = ["activations", "ReadingVector", "reading_vector", "LogisticProbe", "fit_probe", "ProbeResult",
           "probe_layers", "READING_METHODS"]

READING_METHODS = ("pca", "mean_diff")


def _ids(model: Any, texts: Sequence[str], prepend_bos: bool) -> list[list[int]]:
    from interp.tasks.base import encode, get_tokenizer

    tok = get_tokenizer(model)
    return encode(tok, list(texts), prepend_bos=prepend_bos and tok.bos_token_id is not None)[0]


@torch.inference_mode()
def activations(model: Any, texts: Sequence[str] | Sequence[Sequence[int]], layers: Sequence[int] | None = None, *,
                prepend_bos: bool = True, batch_size: int = 32) -> Tensor:
    """``[n_texts n_layers d_model]`` (float64): ``resid_pre`` of each layer at each text's last token.

    Texts of equal token length are batched together (no padding, so nothing leaks from pad tokens).
    """
    if len(texts) == 0:
        raise ExplainError("no texts given")
    layers = resolve_layers(model, layers)
    ids = [list(t) for t in texts] if not isinstance(texts[0], str) else _ids(model, texts, prepend_bos)
    check_context(model, ids, what="a stimulus text")
    out = torch.zeros(len(ids), len(layers), int(model.cfg.d_model), dtype=torch.float64)
    names = {hook_name("resid_pre", lyr): j for j, lyr in enumerate(layers)}
    by_len: dict[int, list[int]] = {}
    for i, x in enumerate(ids):
        by_len.setdefault(len(x), []).append(i)
    # the blocks after the last requested resid_pre (and the unembedding) cannot change it: stop the pass there
    stop = max(layers) + 1 if max(layers) + 1 < int(model.cfg.n_layers) else None
    for _, idx in sorted(by_len.items()):
        for s in range(0, len(idx), batch_size):
            rows = idx[s : s + batch_size]
            _, cache = model.run_with_cache(torch.tensor([ids[i] for i in rows]), names_filter=lambda n: n in names,
                                            stop_at_layer=stop)
            for name, j in names.items():
                out[rows, j] = cache[name][:, -1].double()
    return out


@dataclass(frozen=True)
class ReadingVector:
    """A unit ``direction`` at ``layer`` and the raw class-mean difference ``mean_diff`` (same layer)."""

    direction: Tensor
    mean_diff: Tensor
    layer: int
    method: str
    explained: float  # share of the paired differences' energy along the direction (pca), or of |mean_diff| (mean)
    threshold: float  # midpoint of the two class means projected on the direction

    def __repr__(self) -> str:
        return (f"ReadingVector(layer {self.layer}, {self.method}, |mean_diff| {float(self.mean_diff.norm()):.3g}, "
                f"explained {self.explained:.2f})")

    def score(self, acts: Tensor) -> Tensor:
        """Projection of ``[n d_model]`` activations on the direction."""
        return acts.double() @ self.direction.double()

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "method": self.method, "explained": self.explained, "threshold": self.threshold,
                "direction": self.direction.tolist(), "mean_diff": self.mean_diff.tolist()}

    def save(self, path: str | os.PathLike[str]) -> Path:
        from interp._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReadingVector:
        from interp._io import read_json

        d = read_json(path)
        return cls(torch.tensor(d["direction"], dtype=torch.float64), torch.tensor(d["mean_diff"], dtype=torch.float64),
                   int(d["layer"]), d["method"], float(d["explained"]), float(d["threshold"]))


def _stimuli(model: Any, x: Any, layer: int, prepend_bos: bool) -> Tensor:
    if isinstance(x, Tensor):
        if x.ndim != 2 or x.shape[1] != int(model.cfg.d_model):
            raise ExplainError(f"activations must be [n d_model={model.cfg.d_model}]; got {tuple(x.shape)}")
        return x.double()
    return activations(model, list(x), [layer], prepend_bos=prepend_bos)[:, 0]


def reading_vector(model: Any, positive: Any, negative: Any, *, layer: int, method: str = "pca",
                   prepend_bos: bool = True) -> ReadingVector:
    """The reading vector of ``positive`` vs ``negative`` stimuli (texts, or ``[n d_model]`` activations).

    ``pca`` pairs positive *i* with negative *i* and needs equal counts; ``mean_diff`` does not.
    """
    if method not in READING_METHODS:
        raise unknown("reading-vector method", method, READING_METHODS)
    check_layer(model, layer)
    n_pos, n_neg = len(positive), len(negative)
    if n_pos == 0 or n_neg == 0:
        raise ExplainError(f"reading_vector needs stimuli of both classes; got {n_pos} positive and {n_neg} negative")
    if method == "pca" and n_pos != n_neg:
        raise ExplainError(f"method 'pca' pairs positive i with negative i, so the counts must be equal; got "
                           f"{n_pos} positive and {n_neg} negative (use method='mean_diff' for unpaired sets)")
    a_pos, a_neg = _stimuli(model, positive, layer, prepend_bos), _stimuli(model, negative, layer, prepend_bos)
    mean_diff = a_pos.mean(0) - a_neg.mean(0)
    if method == "mean_diff":
        direction = mean_diff / mean_diff.norm().clamp_min(1e-12)
        explained = 1.0
    else:
        diffs = a_pos - a_neg
        _, s, vh = torch.linalg.svd(diffs, full_matrices=False)
        direction = vh[0]
        if float(diffs.mean(0) @ direction) < 0:
            direction = -direction
        explained = float(s[0] ** 2 / (s**2).sum())
    thr = float(0.5 * (a_pos.mean(0) + a_neg.mean(0)) @ direction)
    return ReadingVector(direction, mean_diff, int(layer), method, explained, thr)


# ---------------------------------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class LogisticProbe:
    """A logistic-regression probe on standardised features: p(y=1|x) = σ(((x − mean)/std)·w + b)."""

    w: Tensor
    b: float
    mean: Tensor
    std: Tensor

    def logits(self, x: Tensor) -> Tensor:
        return ((x.double() - self.mean) / self.std) @ self.w + self.b

    def predict(self, x: Tensor) -> Tensor:
        return self.logits(x) > 0

    def accuracy(self, x: Tensor, y: Tensor) -> float:
        return float((self.predict(x) == y.bool()).double().mean())


def fit_probe(x: Tensor, y: Tensor, *, l2: float = 1e-2, max_iter: int = 200) -> LogisticProbe:
    """Fit a logistic probe by L-BFGS on the mean log-loss + ``l2``·|w|² (float64; converges in well under a
    second for a few hundred examples of width 576)."""
    y = y.double()
    if x.shape[0] != y.shape[0]:
        raise ExplainError(f"{x.shape[0]} examples but {y.shape[0]} labels")
    check_two_classes(y.tolist(), what="the probe's training set")
    x = x.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
    z = (x - mean) / std
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * (w @ w)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return LogisticProbe(w.detach(), float(b.detach()), mean, std)


@dataclass(frozen=True)
class ProbeResult:
    """Held-out accuracy of a probe per layer, for the training family's test split and other families."""

    layers: tuple[int, ...]
    train_accuracy: tuple[float, ...]
    test_accuracy: tuple[float, ...]
    cross: dict[str, tuple[float, ...]] = field(default_factory=dict)
    reading: dict[str, tuple[float, ...]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def best_layer(self) -> int:
        return self.layers[int(np.argmax(self.test_accuracy))]

    @property
    def best_accuracy(self) -> float:
        return float(max(self.test_accuracy))

    def __repr__(self) -> str:
        cross = ", ".join(f"{k} {max(v):.2f}" for k, v in self.cross.items())
        return (f"ProbeResult(best layer {self.best_layer}: held-out {self.best_accuracy:.2f}"
                + (f"; cross-dataset best {cross}" if cross else "") + ")")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "probes", "layers": list(self.layers), "train_accuracy": list(self.train_accuracy),
                "test_accuracy": list(self.test_accuracy), "cross": {k: list(v) for k, v in self.cross.items()},
                "reading": {k: list(v) for k, v in self.reading.items()}, "best_layer": self.best_layer,
                "best_accuracy": self.best_accuracy, "settings": self.settings}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProbeResult:
        return cls(tuple(d["layers"]), tuple(d["train_accuracy"]), tuple(d["test_accuracy"]),
                   {k: tuple(v) for k, v in d.get("cross", {}).items()},
                   {k: tuple(v) for k, v in d.get("reading", {}).items()}, d.get("settings", {}))

    def save(self, path: str | os.PathLike[str]) -> Path:
        from interp._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    def plot(self, *, title: str = "probe accuracy per layer") -> Any:
        import plotly.graph_objects as go

        fig = go.Figure()
        x = list(self.layers)
        fig.add_trace(go.Scatter(x=x, y=list(self.test_accuracy), name="held-out (same family)", mode="lines+markers"))
        fig.add_trace(go.Scatter(x=x, y=list(self.train_accuracy), name="train", mode="lines", line=dict(dash="dot")))
        for k, v in self.cross.items():
            fig.add_trace(go.Scatter(x=x, y=list(v), name=f"cross: {k}", mode="lines+markers"))
        for k, v in self.reading.items():
            fig.add_trace(go.Scatter(x=x, y=list(v), name=f"reading vector: {k}", mode="lines", line=dict(dash="dash")))
        fig.add_hline(y=0.5, line=dict(color="grey", dash="dot"))
        fig.update_layout(title=title, xaxis_title="layer (resid_pre)", yaxis_title="accuracy",
                          yaxis=dict(range=[0, 1]))
        return fig


def probe_layers(model: Any, train: Sequence[Any], test: Sequence[Any], *, layers: Sequence[int] | None = None,
                 others: dict[str, Sequence[Any]] | None = None, l2: float = 1e-2, prepend_bos: bool = True
                 ) -> ProbeResult:
    """Train a probe per layer on ``train`` (items with ``.text`` and ``.label``), score it on ``test`` and on each
    set of ``others`` (cross-dataset). Also scores the mean-difference reading vector of the training set (threshold
    at the class midpoint) as an unsupervised-direction baseline."""
    layers = resolve_layers(model, layers)
    if len(train) == 0 or len(test) == 0:
        raise ExplainError(f"probes need non-empty train and test sets; got {len(train)} and {len(test)}")
    classes = check_two_classes([r.label for r in train], what="the probe's training set")

    def xy(rows: Sequence[Any]) -> tuple[Tensor, Tensor]:
        y = torch.tensor([r.label == classes[1] for r in rows])
        return activations(model, [r.text for r in rows], layers, prepend_bos=prepend_bos), y

    x_tr, y_tr = xy(train)
    x_te, y_te = xy(test)
    other = {k: xy(v) for k, v in (others or {}).items()}
    tr_acc, te_acc, cross, reading = [], [], {k: [] for k in other}, {"test": [], **{k: [] for k in other}}
    for j in range(len(layers)):
        p = fit_probe(x_tr[:, j], y_tr, l2=l2)
        tr_acc.append(p.accuracy(x_tr[:, j], y_tr))
        te_acc.append(p.accuracy(x_te[:, j], y_te))
        md = x_tr[y_tr, j].mean(0) - x_tr[~y_tr, j].mean(0)
        thr = float(0.5 * (x_tr[y_tr, j].mean(0) + x_tr[~y_tr, j].mean(0)) @ md)
        reading["test"].append(float(((x_te[:, j] @ md > thr) == y_te).double().mean()))
        for k, (xo, yo) in other.items():
            cross[k].append(p.accuracy(xo[:, j], yo))
            reading[k].append(float(((xo[:, j] @ md > thr) == yo).double().mean()))
    settings = {"layers": layers, "n_train": len(train), "n_test": len(test),
                "n_others": {k: len(v) for k, v in (others or {}).items()}, "l2": l2,
                "classes": [str(c) for c in classes],
                "positive_class": str(classes[1])}
    return ProbeResult(tuple(layers), tuple(tr_acc), tuple(te_acc), {k: tuple(v) for k, v in cross.items()},
                       {k: tuple(v) for k, v in reading.items()}, settings)
