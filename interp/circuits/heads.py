"""Attention-head classes from attention patterns: previous-token, duplicate-token and induction heads.

For a token sequence, each head kind has *target* keys for every query position q:

========================= ===================================================================
kind                      target keys of query q
========================= ===================================================================
``previous_token``        q - 1
``duplicate_token``       every earlier k < q with ``token[k] == token[q]``
``induction``             every earlier k with ``token[k-1] == token[q]`` (the token after a previous occurrence)
========================= ===================================================================

Two scores per head (``blocks.{l}.attn.hook_pattern``, averaged over sequences):

* ``measure="targeted"`` (default): the attention mass on the target keys, averaged over the query positions
  that have a target. On ``[BOS] A A`` sequences (`interp.tasks.InductionTask`) a perfect induction head scores 1.
* ``measure="tl"``: TransformerLens's ``head_detector.detect_head`` "mul" score, reproduced in batch: the mass on
  target keys over the whole pattern divided by its total mass (rows without a target count as 0).

Within one sequence the two differ by a factor common to all heads, so they rank heads the same way; `agreement`
checks this implementation against ``transformer_lens.head_detector`` on the same model and sequences.
`HeadScores.classify` labels heads whose targeted score reaches a threshold.
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

from interp.errors import InterpError, ShapeError, TaskError, unknown

__all__ = ["HEAD_KINDS", "MEASURES", "DEFAULT_THRESHOLDS", "HeadError", "HeadScores", "HeadAgreement",
           "head_scores", "target_masks", "agreement"]

HEAD_KINDS: tuple[str, ...] = ("previous_token", "duplicate_token", "induction")
MEASURES: tuple[str, ...] = ("targeted", "tl")
DEFAULT_THRESHOLDS: dict[str, float] = {"previous_token": 0.4, "duplicate_token": 0.3, "induction": 0.3}
_TL_NAMES = {"previous_token": "previous_token_head", "duplicate_token": "duplicate_token_head",
             "induction": "induction_head"}


class HeadError(InterpError, ValueError):
    """Bad input to head classification (unknown kind, sequences too short, bad thresholds)."""


def target_masks(tokens: Tensor, kind: str) -> Tensor:
    """``[batch q k]`` 0/1 float mask of the target keys of ``kind`` (strictly causal: k < q)."""
    if kind not in HEAD_KINDS:
        raise unknown("head kind", kind, HEAD_KINDS)
    b, n = tokens.shape
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    causal = (k < q)[None].expand(b, n, n)
    if kind == "previous_token":
        return (k == q - 1)[None].expand(b, n, n).float()
    same = tokens[:, :, None] == tokens[:, None, :]  # [b q k]: token[q] == token[k]
    if kind == "duplicate_token":
        return (same & causal).float()
    prev_same = torch.zeros_like(same)
    prev_same[:, :, 1:] = same[:, :, :-1]  # token[q] == token[k-1]
    return (prev_same & causal).float()


@dataclass(frozen=True)
class HeadScores:
    """Scores ``[kind layer head]`` of every head for each kind in ``kinds``."""

    scores: np.ndarray
    kinds: tuple[str, ...]
    measure: str
    n_sequences: int
    seq_len: int
    model: str = ""
    exclude_bos: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        from interp._repr import short_repr

        k = self.kinds[0] if self.kinds else ""
        return short_repr("HeadScores", f"{self.measure} over {self.n_sequences} sequences of {self.seq_len} tokens, "
                          f"kinds {', '.join(self.kinds)}", shape=" x ".join(map(str, self.scores.shape)),
                          top=self.top(k, 3) if k else (), top_label=f"top {k}")

    def of(self, kind: str) -> np.ndarray:
        """``[layer head]`` scores of one kind."""
        if kind not in self.kinds:
            raise unknown("head kind", kind, self.kinds)
        return self.scores[self.kinds.index(kind)]

    def top(self, kind: str, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` highest-scoring heads of ``kind`` as ``("L5H1", score)`` (NaN scores last, with a warning);
        ``k >= 0``."""
        from interp.checks import check_int
        from interp.patching.result import rank_order

        k = check_int(k, "k", lo=0)
        s = self.of(kind)
        order = rank_order(s.reshape(-1), what=f"{kind} head scores")[:k]
        return [(f"L{int(f) // s.shape[1]}H{int(f) % s.shape[1]}", float(s.reshape(-1)[f])) for f in order]

    def classify(self, thresholds: dict[str, float] | float | None = None) -> dict[str, list[tuple[int, int]]]:
        """``{kind: [(layer, head), ...]}`` of heads scoring at least the kind's threshold, best first."""
        if thresholds is None:
            thresholds = DEFAULT_THRESHOLDS
        if isinstance(thresholds, (int, float)):
            thresholds = dict.fromkeys(self.kinds, float(thresholds))
        out = {}
        for kind in self.kinds:
            t = float(thresholds.get(kind, DEFAULT_THRESHOLDS.get(kind, 0.5)))
            if not 0.0 < t <= 1.0:
                raise HeadError(f"threshold for {kind} must lie in (0, 1]; got {t}")
            s = self.of(kind)
            idx = np.argwhere(s >= t)
            out[kind] = sorted(((int(a), int(b)) for a, b in idx), key=lambda lh: -s[lh])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kinds": list(self.kinds), "measure": self.measure, "n_sequences": self.n_sequences,
                "seq_len": self.seq_len, "model": self.model, "exclude_bos": self.exclude_bos,
                "scores": {k: self.of(k).tolist() for k in self.kinds}, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeadScores:
        kinds = tuple(d["kinds"])
        return cls(np.stack([np.asarray(d["scores"][k], float) for k in kinds]), kinds, d["measure"],
                   int(d["n_sequences"]), int(d["seq_len"]), d.get("model", ""), bool(d.get("exclude_bos", False)),
                   d.get("meta", {}))

    def save(self, path: str | os.PathLike[str]) -> Path:
        from interp._io import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HeadScores:
        from interp._io import read_json

        return cls.from_dict(read_json(path))

    def plot(self, *, title: str | None = None) -> Any:
        """One heatmap (layer x head) per kind."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=len(self.kinds), subplot_titles=list(self.kinds), shared_yaxes=True)
        for i, kind in enumerate(self.kinds):
            s = self.of(kind)
            fig.add_trace(go.Heatmap(z=s, x=[f"H{h}" for h in range(s.shape[1])],
                                     y=[f"L{x}" for x in range(s.shape[0])],
                                     colorscale="Viridis", zmin=0, zmax=1, showscale=i == len(self.kinds) - 1),
                          row=1, col=i + 1)
        fig.update_yaxes(autorange="reversed")
        fig.update_layout(title=title or f"Head scores ({self.measure}) on {self.n_sequences} sequences, {self.model}")
        return fig


def _patterns(model: Any, tokens: Tensor, batch_size: int) -> list[Tensor]:
    """Attention patterns ``[batch head q k]`` per layer."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(int(model.cfg.n_layers))]
    hook_dict = getattr(model, "hook_dict", None)
    if hook_dict is not None and names[0] not in hook_dict:
        raise ShapeError(f"this model has no {names[0]!r} hook (not in compatibility mode?); cannot read patterns")
    out: list[list[Tensor]] = [[] for _ in names]
    with torch.inference_mode():
        for s in range(0, tokens.shape[0], batch_size):
            _, cache = model.run_with_cache(tokens[s : s + batch_size], names_filter=lambda n: n in names)
            for i, n in enumerate(names):
                out[i].append(cache[n].float())
    return [torch.cat(x) for x in out]


def head_scores(
    model: Any,
    tokens: Any = None,
    *,
    kinds: Sequence[str] = HEAD_KINDS,
    measure: str = "targeted",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
    seq_len: int = 20,
    n_sequences: int = 16,
    seed: int = 0,
    batch_size: int = 16,
) -> HeadScores:
    """Score every head for each kind on ``tokens`` (``[batch pos]`` ids or a list of strings); by default on
    ``n_sequences`` repeated random sequences of ``seq_len`` tokens (`InductionTask`)."""
    from interp.models import model_name
    from interp.tasks.induction import InductionTask

    for k in kinds:
        if k not in HEAD_KINDS:
            raise unknown("head kind", k, HEAD_KINDS)
    if not kinds:
        raise HeadError("no head kinds given")
    if measure not in MEASURES:
        raise unknown("head score measure", measure, MEASURES)
    if tokens is None:
        has_bos = getattr(getattr(model, "tokenizer", None), "bos_token_id", None) is not None
        tokens = InductionTask(seq_len=seq_len, n_prompts=n_sequences, seed=seed, prepend_bos=has_bos).tokens(model)
    elif isinstance(tokens, (list, tuple)) and tokens and isinstance(tokens[0], str):
        if getattr(model, "tokenizer", None) is None:
            raise TaskError("text sequences need a model with a tokenizer; pass token ids instead")
        toks = [model.to_tokens(t)[0] for t in tokens]
        if len({len(t) for t in toks}) != 1:
            # different lengths: score one at a time and average (as detect_head does for a list)
            parts = [head_scores(model, t[None], kinds=kinds, measure=measure, exclude_bos=exclude_bos,
                                 exclude_current_token=exclude_current_token, batch_size=batch_size) for t in toks]
            return HeadScores(np.mean([p.scores for p in parts], axis=0), tuple(kinds), measure, len(toks),
                              int(np.mean([p.seq_len for p in parts])), model_name(model), exclude_bos)
        tokens = torch.stack(toks)
    tokens = torch.as_tensor(tokens).long()
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or tokens.shape[1] < 3:
        raise HeadError(f"need [batch pos] token ids with at least 3 positions; got shape {tuple(tokens.shape)}")
    d_vocab = int(model.cfg.d_vocab)
    if int(tokens.min()) < 0 or int(tokens.max()) >= d_vocab:
        raise ShapeError(f"token ids must lie in [0, {d_vocab})")
    pats = _patterns(model, tokens, batch_size)
    scores = np.zeros((len(kinds), len(pats), pats[0].shape[1]))
    for i, kind in enumerate(kinds):
        mask = target_masks(tokens, kind)[:, None]  # [b 1 q k]
        for layer, p in enumerate(pats):
            p = p.clone()
            if exclude_bos:
                p[..., 0] = 0
            if exclude_current_token:
                p = p * (1 - torch.eye(p.shape[-1]))
            if measure == "tl":
                s = (p * mask).sum((-1, -2)) / p.sum((-1, -2))  # [b head]
            else:
                has = mask.sum(-1) > 0  # [b 1 q]
                row = (p * mask).sum(-1)  # [b head q]
                s = (row * has).sum(-1) / has.sum(-1).clamp(min=1)
                s = torch.where(has.sum(-1) > 0, s, torch.nan)
            scores[i, layer] = np.nanmean(s.numpy(), axis=0)
    return HeadScores(scores, tuple(kinds), measure, int(tokens.shape[0]), int(tokens.shape[1]), model_name(model),
                      exclude_bos)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    def ranks(x: np.ndarray) -> np.ndarray:
        r = np.empty(len(x))
        r[np.argsort(x, kind="stable")] = np.arange(len(x))
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
        return r

    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    return float(np.corrcoef(ra, rb)[0, 1]) if ra.std() and rb.std() else float("nan")


@dataclass(frozen=True)
class HeadAgreement:
    """Ours vs ``transformer_lens.head_detector`` per kind: max |difference| of the TL-measure scores (the
    reimplementation check), Spearman rho of our targeted scores against TL's, and top-k overlap."""

    max_abs_diff: dict[str, float]
    spearman: dict[str, float]
    top_overlap: dict[str, float]
    top_ours: dict[str, list[str]]
    top_tl: dict[str, list[str]]
    k: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def agreement(model: Any, texts: Sequence[str], *, k: int = 5, kinds: Sequence[str] = HEAD_KINDS,
              exclude_bos: bool = False) -> HeadAgreement:
    """Compare with ``transformer_lens.head_detector.detect_head`` on the same model and text sequences."""
    from transformer_lens.head_detector import detect_head

    if getattr(model, "tokenizer", None) is None:
        raise TaskError("agreement with head_detector runs on text, which needs a model with a tokenizer")
    texts = list(texts)
    if not texts:
        raise HeadError("no sequences given")
    ours_tl = head_scores(model, texts, kinds=kinds, measure="tl", exclude_bos=exclude_bos)
    ours = head_scores(model, texts, kinds=kinds, measure="targeted", exclude_bos=exclude_bos)
    mad, rho, overlap, top_o, top_t = {}, {}, {}, {}, {}
    for kind in kinds:
        tl = detect_head(model, texts if len(texts) > 1 else texts[0], _TL_NAMES[kind], exclude_bos=exclude_bos,
                         error_measure="mul").float().numpy()
        mad[kind] = float(np.abs(ours_tl.of(kind) - tl).max())
        rho[kind] = _spearman(ours.of(kind).reshape(-1), tl.reshape(-1))
        n_heads = tl.shape[1]
        tl_top = [f"L{int(f) // n_heads}H{int(f) % n_heads}" for f in np.argsort(-tl.reshape(-1), kind="stable")[:k]]
        our_top = [lab for lab, _ in ours.top(kind, k)]
        overlap[kind] = len(set(tl_top) & set(our_top)) / k
        top_o[kind], top_t[kind] = our_top, tl_top
    return HeadAgreement(mad, rho, overlap, top_o, top_t, k)
