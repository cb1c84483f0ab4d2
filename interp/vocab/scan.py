"""Every neuron at once: the top and bottom ``k`` projected tokens of all value vectors, in chunked matmuls
(bfloat16 ranking with a float32 re-score where that is faster)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.errors import ShapeError, unknown
from interp.vocab.projection import (
    NORMS,
    PRECISIONS,
    TokenLogit,
    VocabError,
    _apply_norm,
    _check_k,
    _check_layer,
    _order_ties,
    _unembed,
    _w_out,
    tie_ordered_topk,
    vocab_strings,
)

__all__ = ["ValueProjection", "scan_values"]

log = logging.getLogger(__name__)


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
    if not _cpu_has_bf16():  # emulated: 100x slower than float32 here; a probe alone took 9 s to show it
        _BF16_FASTER[key] = False
        return False
    a32, b32 = torch.randn(256, 512), torch.randn(512, 4096)
    timings = {}
    for name, (a, b) in {"f32": (a32, b32), "bf16": (a32.bfloat16(), b32.bfloat16())}.items():
        a @ b
        t0 = time.perf_counter()
        for _ in range(3):
            a @ b
        timings[name] = time.perf_counter() - t0
    _BF16_FASTER[key] = timings["bf16"] < 0.7 * timings["f32"]
    log.debug("bf16 candidate pass %s (%s)", "on" if _BF16_FASTER[key] else "off", timings)
    return _BF16_FASTER[key]


def _cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 matmul instructions (AVX-512 BF16 or AMX); True when torch cannot say."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: let the timing decide
        return True


def _topk_rows(
    v: Tensor, w_u: Tensor, w_u_lp: Tensor | None, k: int, margin: int, largest: bool
) -> tuple[Tensor, Tensor]:
    """Exact float32 top-k of ``v @ w_u`` per row; candidates from a low-precision pass when ``w_u_lp`` is given."""
    sign = 1.0 if largest else -1.0
    if w_u_lp is None:
        scores = sign * (v @ w_u)
        vals, ids = tie_ordered_topk(scores, k, extra=min(margin, scores.shape[-1] - k))
        return sign * vals, ids
    approx = sign * (v.to(w_u_lp.dtype) @ w_u_lp)
    cand = approx.topk(min(k + margin, approx.shape[-1]), dim=-1).indices  # [n c]
    exact = torch.einsum("nd,ncd->nc", v, w_u.T[cand])  # [n c] float32
    vals, pos = _order_ties(sign * exact, cand, k)
    return sign * vals, pos


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
    from interp.progress import bar as progress_bar

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
    bar = progress_bar(len(layer_list) * d_mlp, desc="scan value vectors", enabled=progress)
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
