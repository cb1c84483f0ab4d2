"""Value vectors in vocabulary space (Geva et al., EMNLP 2022; LM-Debugger, methods.md §C).

An MLP layer computes ``FFN(x) = sum_i m_i v_i``: the *coefficient* ``m_i`` is neuron i's activation
(``blocks.{l}.mlp.hook_post``; the gated product in SwiGLU models) and the *value vector* ``v_i`` is row i of
``W_out``. Each *sub-update* ``m_i v_i`` pushes the residual stream in a fixed direction, and projecting that
direction onto the unembedding, ``r_i = v_i @ W_U``, shows which tokens the neuron promotes (largest entries) and
suppresses (smallest).

* `project_values` / `top_tokens`: the projection of chosen value vectors, ``raw`` (``W_out[n] @ W_U``, the
  LM-Debugger and Rai & Yao choice; in compatibility mode the final norm's gain is already folded into ``W_U``) or
  ``final_norm`` (the vector is first passed through the model's final normalization, ffn-values'
  ``project_value_to_vocab``; for RMSNorm this rescales the logits but keeps their order).
* `scan_values`: the top and bottom ``k`` tokens of *every* neuron of every layer, in chunked matmuls. With
  ``precision="auto"`` candidates are ranked in bfloat16 when that is faster on this machine (AMX CPUs, GPUs) and the
  ``k + margin`` best are re-scored in float32, so the returned logits are float32-exact.
* `dominant_subupdates`: the sub-updates of one prompt position ranked by the *scaled coefficient*
  ``|m_i| * ||v_i||`` (Geva et al.; the quantity Rai & Yao's "Algorithm one" ranks).
* `intervene` / `compare_generation`: LM-Debugger's interventions. *Promote* sets a neuron's coefficient so that its
  scaled coefficient equals the layer's current maximum + 0.01 (LM-Debugger writes that number into GPT-2's
  pre-activation; here the coefficient itself is set, which is what a gated MLP has); *suppress* sets it to 0. Both
  act at every position; the hooks are removed when the context exits, also on error.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError, ShapeError, TaskError, unknown
from interp.sites import hook_name

__all__ = [
    "NORMS",
    "PRECISIONS",
    "INTERVENTIONS",
    "VocabError",
    "TokenLogit",
    "ValueProjection",
    "SubUpdate",
    "SubUpdates",
    "InterventionResult",
    "vocab_strings",
    "value_vectors",
    "value_norms",
    "project_values",
    "top_tokens",
    "scan_values",
    "dominant_subupdates",
    "normalize_neurons",
    "intervene",
    "compare_generation",
]

log = logging.getLogger(__name__)

NORMS: tuple[str, ...] = ("raw", "final_norm")
PRECISIONS: tuple[str, ...] = ("auto", "exact", "bf16")
INTERVENTIONS: tuple[str, ...] = ("promote", "suppress", "set")

NeuronSpec = Mapping[int, Iterable[int]] | Iterable[tuple[int, int]]


class VocabError(InterpError, ValueError):
    """Bad input to vocabulary projection or interventions (k out of range, empty neuron set, bad mode...)."""


@dataclass(frozen=True)
class TokenLogit:
    """One entry of a projection: token id, its decoded string and its logit."""

    token_id: int
    token: str
    logit: float


# ------------------------------------------------------------------------------------------------ vocabulary strings

_VOCAB_CACHE: dict[int, tuple[Any, int, list[str]]] = {}


def vocab_strings(model: Any, token_strings: Sequence[str] | None = None) -> list[str]:
    """The decoded string of every token id ``0 .. d_vocab-1`` (cached per tokenizer).

    ``token_strings`` overrides the tokenizer (for models without one, e.g. hand-made test models). Ids the
    tokenizer does not know (padded vocabularies) become ``"<id N>"``.
    """
    d_vocab = int(model.cfg.d_vocab)
    if token_strings is not None:
        if len(token_strings) != d_vocab:
            raise ShapeError(f"token_strings has {len(token_strings)} entries; the model's d_vocab is {d_vocab}")
        return list(token_strings)
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise TaskError(
            "this model has no tokenizer, so token ids cannot be shown as text; load it with a tokenizer or pass "
            "token_strings=[one string per token id]"
        )
    hit = _VOCAB_CACHE.get(id(tok))
    if hit is not None and hit[0] is tok and hit[1] == d_vocab:
        return hit[2]
    n = min(len(tok), d_vocab)
    strings = tok.batch_decode([[i] for i in range(n)], clean_up_tokenization_spaces=False)
    strings += [f"<id {i}>" for i in range(n, d_vocab)]
    _VOCAB_CACHE[id(tok)] = (tok, d_vocab, strings)
    return strings


# ------------------------------------------------------------------------------------------------ projections


def _check_layer(model: Any, layer: int) -> int:
    n_layers = int(model.cfg.n_layers)
    if isinstance(layer, bool) or not 0 <= int(layer) < n_layers:
        raise ShapeError(f"layer {layer} is out of range; the model has layers 0..{n_layers - 1}")
    return int(layer)


def _w_out(model: Any, layer: int) -> Tensor:
    w = getattr(model.blocks[layer].mlp, "W_out", None)
    if w is None:
        raise ShapeError(f"block {layer} has no MLP W_out (attention-only model?); value vectors need MLP layers")
    return w.detach().float()


def value_vectors(model: Any, layer: int) -> Float[Tensor, "d_mlp d_model"]:
    """``W_out`` of ``layer``: row i is neuron i's value vector ``v_i``."""
    return _w_out(model, _check_layer(model, layer))


@torch.inference_mode()
def value_norms(model: Any) -> Float[Tensor, "layer d_mlp"]:
    """``||v_i||_2`` of every neuron of every layer."""
    return torch.stack([_w_out(model, layer).norm(dim=-1) for layer in range(int(model.cfg.n_layers))])


def _unembed(model: Any) -> Tensor:
    return model.W_U.detach().float()


def _apply_norm(model: Any, v: Tensor, norm: str) -> Tensor:
    if norm not in NORMS:
        raise unknown("projection norm", norm, NORMS)
    if norm == "raw":
        return v
    return model.ln_final(v).float()


@torch.inference_mode()
def project_values(
    model: Any, layer: int, neurons: Sequence[int] | None = None, *, norm: str = "raw"
) -> Float[Tensor, "neuron d_vocab"]:
    """Vocabulary logits ``v_i @ W_U`` (``norm="raw"``) or ``final_norm(v_i) @ W_U`` of neurons of ``layer``."""
    w = value_vectors(model, layer)
    if neurons is not None:
        idx = _check_indices(model, neurons)
        w = w[idx]
    return _apply_norm(model, w, norm) @ _unembed(model)


def _check_indices(model: Any, neurons: Sequence[int]) -> list[int]:
    d_mlp = int(model.cfg.d_mlp)
    idx = [int(n) for n in neurons]
    bad = [n for n in idx if not 0 <= n < d_mlp]
    if bad:
        raise ShapeError(f"neurons {bad[:5]} are out of range; d_mlp is {d_mlp}")
    return idx


def _check_k(k: int, d_vocab: int) -> int:
    if isinstance(k, bool) or int(k) != k or not 1 <= int(k) <= d_vocab:
        raise VocabError(f"k must be an integer in 1..d_vocab={d_vocab}; got {k!r}")
    return int(k)


def top_tokens(
    model: Any,
    layer: int,
    neuron: int,
    *,
    k: int = 20,
    norm: str = "raw",
    bottom: bool = False,
    token_strings: Sequence[str] | None = None,
) -> list[TokenLogit]:
    """The ``k`` tokens neuron ``(layer, neuron)`` promotes most (``bottom=True``: suppresses most), best first."""
    k = _check_k(k, int(model.cfg.d_vocab))
    logits = project_values(model, layer, [neuron], norm=norm)[0]
    vals, ids = (-logits if bottom else logits).topk(k)
    strings = vocab_strings(model, token_strings)
    sign = -1.0 if bottom else 1.0
    return [TokenLogit(int(i), strings[int(i)], sign * float(v)) for v, i in zip(vals, ids)]


# ------------------------------------------------------------------------------------------------ full scan


@dataclass(frozen=True, eq=False)
class ValueProjection:
    """Top (and bottom) ``k`` projected tokens of every neuron of ``layers``.

    ``top_ids[j, n, r]`` is the token of rank r for neuron n of ``layers[j]``, ``top_logits`` its logit (float32
    exact). ``bottom_*`` are the most suppressed tokens (most negative logits first), or None when not computed.
    ``strings`` maps every token id that appears to its decoded text (empty for models without a tokenizer).
    """

    layers: tuple[int, ...]
    top_ids: np.ndarray
    top_logits: np.ndarray
    bottom_ids: np.ndarray | None
    bottom_logits: np.ndarray | None
    norm: str
    k: int
    model: str = ""
    strings: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        want = (len(self.layers), self.top_ids.shape[1] if self.top_ids.ndim == 3 else -1, self.k)
        if self.top_ids.shape != want or self.top_logits.shape != want:
            raise ShapeError(f"top_ids/top_logits must be [layer d_mlp k] = {want}; got {self.top_ids.shape}")

    @property
    def d_mlp(self) -> int:
        return int(self.top_ids.shape[1])

    @property
    def n_neurons(self) -> int:
        return len(self.layers) * self.d_mlp

    def _row(self, layer: int) -> int:
        if layer not in self.layers:
            raise ShapeError(f"layer {layer} was not scanned; scanned layers: {list(self.layers)}")
        return self.layers.index(layer)

    def entries(self, layer: int, neuron: int, *, bottom: bool = False, k: int | None = None) -> list[TokenLogit]:
        """The projected tokens of one neuron as `TokenLogit` rows, best first."""
        j = self._row(layer)
        if not 0 <= neuron < self.d_mlp:
            raise ShapeError(f"neuron {neuron} is out of range; d_mlp is {self.d_mlp}")
        if bottom and self.bottom_ids is None:
            raise VocabError("this scan has no bottom tokens; run scan_values(..., bottom=True)")
        ids = (self.bottom_ids if bottom else self.top_ids)[j, neuron]  # type: ignore[index]
        lg = (self.bottom_logits if bottom else self.top_logits)[j, neuron]  # type: ignore[index]
        k = self.k if k is None else min(int(k), self.k)
        return [TokenLogit(int(i), self.strings.get(int(i), f"<id {int(i)}>"), float(v)) for i, v in
                zip(ids[:k], lg[:k])]

    def tokens(self, layer: int, neuron: int, *, bottom: bool = False, k: int | None = None) -> list[str]:
        """The decoded top (or bottom) tokens of one neuron, best first."""
        return [e.token for e in self.entries(layer, neuron, bottom=bottom, k=k)]

    def to_frame(self, k: int = 10) -> Any:
        """A pandas DataFrame: one row per neuron with its top (and bottom) ``k`` tokens joined by ``|``."""
        import pandas as pd

        rows = []
        for j, layer in enumerate(self.layers):
            for n in range(self.d_mlp):
                row = {"layer": layer, "neuron": n, "top": "|".join(self.tokens(layer, n, k=k)),
                       "top_logit": float(self.top_logits[j, n, 0])}
                if self.bottom_ids is not None:
                    row["bottom"] = "|".join(self.tokens(layer, n, k=k, bottom=True))
                rows.append(row)
        return pd.DataFrame(rows)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one safetensors file (arrays) whose metadata holds the settings and token strings (atomic)."""
        import json

        from safetensors.numpy import save_file

        from interp._io import atomic_path

        arrays = {"top_ids": self.top_ids.astype(np.int32), "top_logits": self.top_logits.astype(np.float32)}
        if self.bottom_ids is not None and self.bottom_logits is not None:
            arrays["bottom_ids"] = self.bottom_ids.astype(np.int32)
            arrays["bottom_logits"] = self.bottom_logits.astype(np.float32)
        meta = {"layers": list(self.layers), "norm": self.norm, "k": self.k, "model": self.model,
                "seconds": self.seconds, "meta": self.meta, "strings": {str(i): s for i, s in self.strings.items()}}
        with atomic_path(path) as tmp:
            save_file(arrays, str(tmp), metadata={"interp_value_projection": json.dumps(meta)})
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ValueProjection:
        import json

        from safetensors import safe_open
        from safetensors.numpy import load_file

        with safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get("interp_value_projection")
        if raw is None:
            raise VocabError(f"{path} is not a ValueProjection file (no interp_value_projection metadata)")
        meta = json.loads(raw)
        arr = load_file(str(path))
        return cls(
            layers=tuple(meta["layers"]),
            top_ids=arr["top_ids"].astype(np.int64),
            top_logits=arr["top_logits"],
            bottom_ids=arr["bottom_ids"].astype(np.int64) if "bottom_ids" in arr else None,
            bottom_logits=arr.get("bottom_logits"),
            norm=meta["norm"],
            k=int(meta["k"]),
            model=meta.get("model", ""),
            strings={int(i): s for i, s in meta.get("strings", {}).items()},
            seconds=float(meta.get("seconds", 0.0)),
            meta=meta.get("meta", {}),
        )

    def plot(self, layer: int, neurons: Sequence[int], *, k: int = 10) -> Any:
        """A table figure of the top ``k`` tokens of some neurons of one layer."""
        import plotly.graph_objects as go

        cols = [[f"L{layer}N{n}" for n in neurons]]
        header = ["neuron"] + [f"#{r + 1}" for r in range(k)]
        for r in range(k):
            cols.append([self.tokens(layer, n, k=k)[r] for n in neurons])
        fig = go.Figure(go.Table(header=dict(values=header), cells=dict(values=cols)))
        fig.update_layout(title=f"Top projected tokens ({self.norm}), layer {layer}")
        return fig


_BF16_FASTER: dict[str, bool] = {}


def _bf16_is_faster(device: torch.device) -> bool:
    """Whether a bfloat16 matmul beats float32 here (AMX CPUs and GPUs: yes; plain AVX CPUs: usually no)."""
    key = str(device)
    if key in _BF16_FASTER:
        return _BF16_FASTER[key]
    if device.type == "cuda":
        _BF16_FASTER[key] = True
        return True
    a32, b32 = torch.randn(256, 512), torch.randn(512, 4096)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    timings = {}
    for name, (a, b) in {"f32": (a32, b32), "bf16": (a16, b16)}.items():
        a @ b
        t0 = time.perf_counter()
        for _ in range(3):
            a @ b
        timings[name] = time.perf_counter() - t0
    _BF16_FASTER[key] = timings["bf16"] < 0.7 * timings["f32"]
    log.debug("bf16 candidate pass %s (%s)", "on" if _BF16_FASTER[key] else "off", timings)
    return _BF16_FASTER[key]


def _topk_rows(
    v: Tensor, w_u: Tensor, w_u_lp: Tensor | None, k: int, margin: int, largest: bool
) -> tuple[Tensor, Tensor]:
    """Exact float32 top-k of ``v @ w_u`` per row; candidates from a low-precision pass when ``w_u_lp`` is given."""
    sign = 1.0 if largest else -1.0
    if w_u_lp is None:
        vals, ids = (sign * (v @ w_u)).topk(k, dim=-1)
        return sign * vals, ids
    approx = sign * (v.to(w_u_lp.dtype) @ w_u_lp)
    cand = approx.topk(min(k + margin, approx.shape[-1]), dim=-1).indices  # [n c]
    exact = torch.einsum("nd,ncd->nc", v, w_u.T[cand])  # [n c] float32
    vals, pos = (sign * exact).topk(k, dim=-1)
    return sign * vals, cand.gather(1, pos)


@torch.inference_mode()
def scan_values(
    model: Any,
    *,
    layers: Sequence[int] | None = None,
    k: int = 20,
    norm: str = "raw",
    bottom: bool = True,
    chunk_size: int = 1024,
    precision: str = "auto",
    margin: int | None = None,
    token_strings: Sequence[str] | None = None,
    progress: bool = False,
) -> ValueProjection:
    """Top (and bottom) ``k`` projected tokens of every neuron of ``layers`` (default all), in chunked matmuls.

    ``precision``: ``exact`` ranks in float32; ``bf16`` ranks candidates in bfloat16 and re-scores the best
    ``k + margin`` (default margin ``max(16, k)``) in float32; ``auto`` picks ``bf16`` when it is faster on this
    device. The returned logits are float32 in every mode.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    d_vocab = int(model.cfg.d_vocab)
    k = _check_k(k, d_vocab)
    if norm not in NORMS:
        raise unknown("projection norm", norm, NORMS)
    if precision not in PRECISIONS:
        raise unknown("precision", precision, PRECISIONS)
    if chunk_size < 1:
        raise VocabError(f"chunk_size must be >= 1; got {chunk_size}")
    layer_list = list(range(int(model.cfg.n_layers))) if layers is None else [_check_layer(model, x) for x in layers]
    if not layer_list:
        raise VocabError("no layers to scan")
    w_u = _unembed(model)
    use_lp = precision == "bf16" or (precision == "auto" and _bf16_is_faster(w_u.device))
    w_u_lp = w_u.bfloat16() if use_lp else None
    margin = max(16, k) if margin is None else int(margin)
    d_mlp = int(model.cfg.d_mlp)
    shape = (len(layer_list), d_mlp, k)
    top_ids, top_lg = np.zeros(shape, np.int64), np.zeros(shape, np.float32)
    bot_ids = np.zeros(shape, np.int64) if bottom else None
    bot_lg = np.zeros(shape, np.float32) if bottom else None
    bar = tqdm(total=len(layer_list) * d_mlp, desc="scan value vectors", disable=not progress, leave=False)
    for j, layer in enumerate(layer_list):
        w = _apply_norm(model, _w_out(model, layer), norm)
        for s in range(0, d_mlp, chunk_size):
            v = w[s : s + chunk_size]
            vals, ids = _topk_rows(v, w_u, w_u_lp, k, margin, largest=True)
            top_ids[j, s : s + len(v)], top_lg[j, s : s + len(v)] = ids.cpu().numpy(), vals.cpu().numpy()
            if bottom:
                vals, ids = _topk_rows(v, w_u, w_u_lp, k, margin, largest=False)
                bot_ids[j, s : s + len(v)], bot_lg[j, s : s + len(v)] = ids.cpu().numpy(), vals.cpu().numpy()  # type: ignore[index]
            bar.update(len(v))
    bar.close()
    strings: dict[int, str] = {}
    if token_strings is not None or getattr(model, "tokenizer", None) is not None:
        all_strings = vocab_strings(model, token_strings)
        used = np.unique(top_ids if bot_ids is None else np.concatenate([top_ids.ravel(), bot_ids.ravel()]))
        strings = {int(i): all_strings[int(i)] for i in used}
    from interp.models import model_name

    return ValueProjection(
        layers=tuple(layer_list), top_ids=top_ids, top_logits=top_lg, bottom_ids=bot_ids, bottom_logits=bot_lg,
        norm=norm, k=k, model=model_name(model), strings=strings, seconds=time.perf_counter() - t0,
        meta={"precision": "bf16+f32 rescoring" if use_lp else "f32", "margin": margin if use_lp else 0},
    )


# ------------------------------------------------------------------------------------------------ dominant sub-updates


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


def _as_tokens(model: Any, tokens: Any, *, prepend_bos: bool = True) -> Tensor:
    if isinstance(tokens, str):
        if getattr(model, "tokenizer", None) is None:
            raise TaskError("text input needs a model with a tokenizer; pass token ids instead")
        return model.to_tokens(tokens, prepend_bos=prepend_bos)
    t = torch.as_tensor(tokens)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[0] != 1:
        raise ShapeError(f"expected one prompt ([pos] or [1 pos] token ids, or a string); got shape {tuple(t.shape)}")
    d_vocab = int(model.cfg.d_vocab)
    if t.numel() == 0 or int(t.min()) < 0 or int(t.max()) >= d_vocab:
        raise ShapeError(f"token ids must be a non-empty sequence in [0, {d_vocab})")
    return t.long()


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


# ------------------------------------------------------------------------------------------------ interventions


def normalize_neurons(model: Any, neurons: NeuronSpec) -> dict[int, list[int]]:
    """``{layer: [neuron...]}`` from a mapping or (layer, neuron) pairs, checked against the model."""
    pairs: list[tuple[int, int]] = []
    if isinstance(neurons, Mapping):
        for layer, idx in neurons.items():
            pairs += [(int(layer), int(n)) for n in idx]
    else:
        for item in neurons:
            if hasattr(item, "layer") and hasattr(item, "neuron"):
                pairs.append((int(item.layer), int(item.neuron)))
            else:
                try:
                    layer, n = item
                except (TypeError, ValueError):
                    raise VocabError(
                        f"neurons must be {{layer: [index...]}} or (layer, index) pairs; got {item!r}") from None
                pairs.append((int(layer), int(n)))
    if not pairs:
        raise VocabError("no neurons given")
    d_mlp = int(model.cfg.d_mlp)
    out: dict[int, list[int]] = {}
    for layer, n in pairs:
        _check_layer(model, layer)
        if not 0 <= n < d_mlp:
            raise ShapeError(f"neuron {n} of layer {layer} is out of range; d_mlp is {d_mlp}")
        out.setdefault(layer, [])
        if n not in out[layer]:
            out[layer].append(n)
    return {layer: sorted(v) for layer, v in sorted(out.items())}


@torch.inference_mode()
def _max_scaled(model: Any, reference: Tensor, layers: Iterable[int]) -> dict[int, float]:
    names = {hook_name("neuron", x): x for x in layers}
    _, cache = model.run_with_cache(reference, names_filter=lambda n: n in names)
    norms = value_norms(model)
    return {x: float((cache[n][0, -1].float().abs() * norms[x]).max()) for n, x in names.items()}


@contextmanager
def intervene(
    model: Any,
    neurons: NeuronSpec,
    *,
    mode: str = "promote",
    value: float | None = None,
    reference: Any = None,
    eps: float = 0.01,
) -> Iterator[dict[int, dict[int, float]]]:
    """Set chosen neurons' coefficients at every position while the context is open (LM-Debugger).

    ``promote``: coefficient ``(max_j |m_j| ||v_j|| + eps) / ||v_i||``, where the maximum is over the neuron's
    layer at the last position of ``reference`` (the prompt, unintervened), so the neuron becomes its layer's
    dominant sub-update. ``suppress``: 0. ``set``: ``value``. Yields ``{layer: {neuron: coefficient}}``.
    """
    if mode not in INTERVENTIONS:
        raise unknown("intervention", mode, INTERVENTIONS)
    chosen = normalize_neurons(model, neurons)
    coefs: dict[int, dict[int, float]] = {}
    if mode == "suppress":
        coefs = {layer: dict.fromkeys(idx, 0.0) for layer, idx in chosen.items()}
    elif mode == "set":
        if value is None:
            raise VocabError("mode='set' needs value=<coefficient>")
        coefs = {layer: dict.fromkeys(idx, float(value)) for layer, idx in chosen.items()}
    else:
        if value is not None:
            coefs = {layer: dict.fromkeys(idx, float(value)) for layer, idx in chosen.items()}
        else:
            if reference is None:
                raise VocabError(
                    "mode='promote' needs reference=<the prompt> to find each layer's largest scaled coefficient "
                    "(LM-Debugger), or an explicit value="
                )
            ref = _as_tokens(model, reference)
            maxima = _max_scaled(model, ref, chosen)
            norms = value_norms(model)
            coefs = {layer: {n: (maxima[layer] + eps) / max(float(norms[layer, n]), 1e-12) for n in idx}
                     for layer, idx in chosen.items()}

    def make_hook(layer_coefs: dict[int, float]):
        idx = torch.tensor(list(layer_coefs))
        vals = torch.tensor(list(layer_coefs.values()))

        def hook(act: Tensor, hook: Any) -> Tensor:
            act = act.clone()
            act[..., idx] = vals.to(act.dtype).to(act.device)
            return act

        return hook

    fwd = [(hook_name("neuron", layer), make_hook(c)) for layer, c in coefs.items()]
    with model.hooks(fwd_hooks=fwd):  # removes exactly these hooks on exit, also on error
        yield coefs


@dataclass(frozen=True)
class InterventionResult:
    """Greedy continuations of one prompt before and after an intervention, and the top next tokens."""

    prompt: str
    mode: str
    neurons: dict[int, list[int]]
    coefficients: dict[int, dict[int, float]]
    before: str
    after: str
    top_before: tuple[TokenLogit, ...]
    top_after: tuple[TokenLogit, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt, "mode": self.mode, "before": self.before, "after": self.after,
            "neurons": {str(k): v for k, v in self.neurons.items()},
            "coefficients": {str(k): {str(n): c for n, c in v.items()} for k, v in self.coefficients.items()},
            "top_before": [t.__dict__ for t in self.top_before], "top_after": [t.__dict__ for t in self.top_after],
        }


@torch.inference_mode()
def _greedy(model: Any, toks: Tensor, max_new_tokens: int) -> Tensor:
    out = model.generate(toks, max_new_tokens=max_new_tokens, do_sample=False, stop_at_eos=False, verbose=False)
    return out[0, toks.shape[1] :]


def compare_generation(
    model: Any,
    prompt: Any,
    neurons: NeuronSpec,
    *,
    mode: str = "promote",
    value: float | None = None,
    max_new_tokens: int = 10,
    top: int = 5,
    prepend_bos: bool = True,
    token_strings: Sequence[str] | None = None,
) -> InterventionResult:
    """Greedy continuation and top next tokens of ``prompt`` without and with `intervene` (LM-Debugger's view)."""
    toks = _as_tokens(model, prompt, prepend_bos=prepend_bos)
    strings = vocab_strings(model, token_strings)
    if max_new_tokens < 1:
        raise VocabError(f"max_new_tokens must be >= 1; got {max_new_tokens}")

    def top_next() -> tuple[TokenLogit, ...]:
        with torch.inference_mode():
            lg = model(toks)[0, -1].float()
        v, i = lg.topk(top)
        return tuple(TokenLogit(int(a), strings[int(a)], float(b)) for b, a in zip(v, i))

    def text(ids: Tensor) -> str:
        return "".join(strings[int(i)] for i in ids)

    before_top, before = top_next(), text(_greedy(model, toks, max_new_tokens))
    with intervene(model, neurons, mode=mode, value=value, reference=toks) as coefs:
        after_top, after = top_next(), text(_greedy(model, toks, max_new_tokens))
    prompt_text = prompt if isinstance(prompt, str) else text(toks[0])
    return InterventionResult(prompt_text, mode, normalize_neurons(model, neurons), coefs, before, after,
                              before_top, after_top)
