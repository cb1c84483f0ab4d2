"""Batched circuit evaluation: the faithfulness (Eq. 2) of many candidate circuits per forward pass.

`FaithfulnessEvaluator.score` runs one circuit per forward pass. Here ``K`` circuits are stacked on the batch axis
(circuit-major: rows ``k*B .. k*B+B-1`` are the ``B`` evaluation prompts under circuit ``k``) and each hook applies a
per-row keep mask: head ``z`` ``[K*B pos head d_head]`` against ``[K head]``, MLP ``hook_post`` ``[K*B pos d_mlp]``
against ``[K d_mlp]`` (a whole MLP or single neurons). The ablation values are the evaluator's (per-position mean,
zero, or the resample prompts' activations, computed once for all circuits). A layer gets a hook only if some row
ablates something in it.

Passes are chunked to a memory budget (``max_memory``, as the patching engine: bytes, ``"2GB"`` or ``"auto"``): as
many whole circuits per pass as fit; if even one circuit's ``B`` rows do not fit, one circuit per pass with the
prompts split. Every row's computation is the same as in one-circuit-per-pass evaluation, so the values agree with
`FaithfulnessEvaluator.score` up to float32 summation order of the batched matrix products (tests check <= 1e-5
relative on the normalized logits and the same chosen circuit). Everything stays on the model's device; the only
host copy is one per pass (the ``[rows]`` normalized logits).

Used by the greedy sweep (`interp.circuits.search.sweep`, the faithfulness-versus-size curve).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.circuits.ablation import CircuitError, Hook, _check_components
from interp.circuits.faithfulness import FaithfulnessEvaluator, FaithfulnessResult, faithfulness_score
from interp.errors import ShapeError
from interp.metrics import normalized_logit
from interp.patching.engine.budget import format_bytes, parse_bytes
from interp.sites import hook_name

__all__ = ["CPU_ROWS", "CircuitSpec", "BatchedFaithfulness", "score_circuits", "iter_scores", "row_bytes"]

log = logging.getLogger(__name__)

CPU_ROWS = 1024  # rows per pass on a CPU (toy-arith, 1 thread: 600-1000 rows per pass fastest, 3400 rows 1.4x slower)


@dataclass(frozen=True)
class CircuitSpec:
    """One candidate circuit: kept heads ``(layer, head)``, whole MLP layers, optional per-layer neuron lists."""

    keep_heads: tuple[tuple[int, int], ...]
    keep_mlps: tuple[int, ...]
    keep_neurons: Mapping[int, Sequence[int]] | None = None

    @classmethod
    def of(cls, c: Any) -> CircuitSpec:
        """From a `CircuitSpec`, a `Circuit`-like object (``.heads``/``.mlps``/``.neurons``), a dict of
        ``keep_heads``/``keep_mlps``/``keep_neurons`` or a ``(heads, mlps)`` pair."""
        if isinstance(c, CircuitSpec):
            return c
        if isinstance(c, Mapping):
            return cls(tuple(map(tuple, c["keep_heads"])), tuple(c["keep_mlps"]), c.get("keep_neurons"))
        if hasattr(c, "heads") and hasattr(c, "mlps"):
            return cls(tuple(map(tuple, c.heads)), tuple(c.mlps), getattr(c, "neurons", None))
        heads, mlps = c
        return cls(tuple(map(tuple, heads)), tuple(mlps))


def row_bytes(model: Any, seq_len: int) -> int:
    """Working memory of one evaluated row (one prompt under one circuit) in a hooked bridge forward.

    Residual stream, attention (q, k, v, z, pattern), MLP hidden state, the ablation's ``torch.where`` copies and the
    full-sequence logits the bridge returns, x 1.25 for allocator slack.
    """
    cfg = model.cfg
    d, h, dh = int(cfg.d_model), int(cfg.n_heads), int(cfg.d_head)
    m = 0 if getattr(cfg, "attn_only", False) else int(cfg.d_mlp)
    item = max(torch.finfo(getattr(cfg, "dtype", torch.float32)).bits // 8, 4)
    act = seq_len * (6 * d + 6 * h * dh + 4 * m) + 3 * h * seq_len * seq_len
    logits = seq_len * int(cfg.d_vocab) * 2
    return int((act + logits) * item * 1.25)


class BatchedFaithfulness:
    """Scores many circuits on one `FaithfulnessEvaluator`'s prompts, ``K`` circuits per forward pass.

    ``evaluator`` supplies the prompts, answers, ablation values and NL(M)/NL(∅); ``max_memory`` bounds a pass's
    working memory (default ``"auto"``: 40% of the memory free on the model's device); ``max_rows`` caps the rows
    (circuits x prompts) of a pass (default ``"auto"``: `CPU_ROWS` on a CPU, where larger passes were measured to
    run slower per row, none on an accelerator). ``stats`` records passes, rows and the peak estimate.
    """

    def __init__(self, evaluator: FaithfulnessEvaluator, *, max_memory: int | float | str = "auto",
                 max_rows: int | str | None = "auto") -> None:
        self.ev = evaluator
        model = evaluator.model
        self.device = next(iter(model.parameters())).device
        self.n_layers, self.n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
        self.d_mlp = 0 if getattr(model.cfg, "attn_only", False) else int(model.cfg.d_mlp)
        self.batch, self.seq = (int(x) for x in evaluator.tokens.shape)
        self.budget = parse_bytes(max_memory, self.device)
        self.row = row_bytes(model, self.seq)
        if self.budget < self.row:
            raise ShapeError(f"max_memory={format_bytes(self.budget)} is too small for one evaluated row (one prompt "
                             f"under one circuit); the minimum is {format_bytes(self.row)}")
        if max_rows == "auto":  # CPU: passes past ~1k rows run slower per row (measured); accelerators: no cap
            max_rows = CPU_ROWS if self.device.type == "cpu" else None
        if max_rows is not None and int(max_rows) < 1:
            raise ShapeError(f"max_rows must be at least 1; got {max_rows}")
        rows = self.budget // self.row
        self.rows_per_pass = int(rows if max_rows is None else min(rows, int(max_rows)))
        self.tokens = evaluator.tokens.to(self.device)
        self.answers = evaluator.answers.to(self.device)
        self._values: dict[str, Tensor | None] | None = None
        self.stats = {"passes": 0, "rows": 0, "circuits": 0, "peak_bytes_estimate": 0}

    # ------------------------------------------------------------------------------------------ masks
    def _masks(self, spec: CircuitSpec) -> tuple[Tensor, Tensor | None]:
        """Keep masks ``[layer head]`` and ``[layer d_mlp]`` (None for attention-only models) of one circuit."""
        heads, mlps, neurons = _check_components(self.ev.model, spec.keep_heads, spec.keep_mlps, spec.keep_neurons)
        hm = torch.zeros(self.n_layers, self.n_heads, dtype=torch.bool)
        for l, h in heads:
            hm[l, h] = True
        if not self.d_mlp:
            return hm, None
        mm = torch.zeros(self.n_layers, self.d_mlp, dtype=torch.bool)
        for l in mlps:
            mm[l] = True
        for l, idx in neurons.items():  # neuron lists override the whole-layer choice
            mm[l] = False
            mm[l, idx] = True
        return hm, mm

    def _ablation_values(self) -> dict[str, Tensor | None]:
        """Per hook: the ablation value (mean ``[pos ...]``, resample ``[B pos ...]``) or None (zero); once."""
        if self._values is not None:
            return self._values
        names = [hook_name("head", l) for l in range(self.n_layers)]
        if self.d_mlp:
            names += [hook_name("mlp", l) for l in range(self.n_layers)]
        abl = self.ev.ablation
        if abl == "mean":
            assert self.ev.mean is not None
            missing = [n for n in names if n not in self.ev.mean]
            if missing:
                raise CircuitError(f"the mean cache has no entry for {missing[:3]}; build it with kinds=('head', "
                                   "'mlp')")
            self._values = {n: self.ev.mean[n].to(self.device) for n in names}
        elif abl == "resample":
            assert self.ev.resample_tokens is not None
            want = set(names)
            with torch.inference_mode():
                _, cache = self.ev.model.run_with_cache(self.ev.resample_tokens.to(self.device),
                                                        names_filter=lambda n: n in want)
            self._values = {n: cache[n].clone() for n in names}
        else:
            self._values = {n: None for n in names}
        return self._values

    def _hooks(self, head_keep: Tensor, mlp_keep: Tensor | None, sl: slice) -> list[Hook]:
        """Hooks for ``K`` stacked circuits (keep masks ``[K layer head]``, ``[K layer d_mlp]``) on prompts ``sl``."""
        values = self._ablation_values()
        k = head_keep.shape[0]
        b = len(range(*sl.indices(self.batch)))
        hooks: list[Hook] = []
        for l in range(self.n_layers):
            hk = head_keep[:, l]
            if not bool(hk.all()):
                hooks.append((hook_name("head", l), _masked(hk[:, None, None, :, None], values[hook_name("head", l)],
                                                            k, b, sl)))
            if mlp_keep is not None:
                mk = mlp_keep[:, l]
                if not bool(mk.all()):
                    hooks.append((hook_name("mlp", l), _masked(mk[:, None, None, :], values[hook_name("mlp", l)],
                                                               k, b, sl)))
        return hooks

    # ------------------------------------------------------------------------------------------ passes
    @torch.inference_mode()
    def nl_chunks(self, circuits: Iterable[Any]) -> Iterator[Tensor]:
        """Per-prompt NL ``[B]`` (float64, on the host) of each circuit, in order, computed pass by pass."""
        specs = [CircuitSpec.of(c) for c in circuits]
        per_pass = max(1, self.rows_per_pass // self.batch)
        prompt_chunk = min(self.batch, self.rows_per_pass)
        for i in range(0, len(specs), per_pass):
            group = specs[i : i + per_pass]
            masks = [self._masks(s) for s in group]
            hk = torch.stack([m[0] for m in masks]).to(self.device)
            mk = None if masks[0][1] is None else torch.stack([m[1] for m in masks]).to(self.device)  # type: ignore
            k = len(group)
            parts = []
            for j in range(0, self.batch, prompt_chunk):
                sl = slice(j, j + prompt_chunk)
                toks, ans = self.tokens[sl], self.answers[sl]
                b = toks.shape[0]
                hooks = self._hooks(hk, mk, sl)
                rows = toks.repeat(k, 1)
                logits = self.ev.model.run_with_hooks(rows, fwd_hooks=hooks)[:, -1, :].float()
                parts.append(normalized_logit(logits, ans.repeat(k)).double().view(k, b))
                self.stats["passes"] += 1
                self.stats["rows"] += k * b
                self.stats["peak_bytes_estimate"] = max(self.stats["peak_bytes_estimate"], k * b * self.row)
            nl = torch.cat(parts, dim=1).cpu()  # one host copy per group of circuits
            self.stats["circuits"] += k
            yield from nl

    def iter_scores(self, circuits: Iterable[Any]) -> Iterator[FaithfulnessResult]:
        """`FaithfulnessResult` of each circuit, in order, lazily (a consumer may stop early)."""
        specs = [CircuitSpec.of(c) for c in circuits]
        for spec, nl_c in zip(specs, self.nl_chunks(specs)):
            yield _result(self.ev, spec, nl_c)

    def score_many(self, circuits: Iterable[Any]) -> list[FaithfulnessResult]:
        return list(self.iter_scores(circuits))


def _masked(keep: Tensor, value: Tensor | None, k: int, b: int, sl: slice) -> Any:
    """Hook replacing units where ``keep`` (``[K 1 1 unit (1)]``) is False by ``value``, per stacked circuit."""

    def hook(act: Tensor, hook: Any) -> Tensor:
        a = act.view(k, b, *act.shape[1:])
        if value is None:
            v: Tensor = torch.zeros((), dtype=act.dtype, device=act.device)
        elif value.ndim == act.ndim:  # resample: [B_all pos ...] -> this chunk's prompts, shared by the K circuits
            v = value[sl].to(act.dtype).unsqueeze(0)
        else:  # mean: [pos ...]
            v = value.to(act.dtype)
            if v.shape != act.shape[1:]:
                raise ShapeError(f"{hook.name}: the mean cache has shape {tuple(v.shape)} but the activation is "
                                 f"{tuple(act.shape)}; build it from strings of the evaluated length")
        return torch.where(keep, a, v).view(act.shape)

    return hook


def _result(ev: FaithfulnessEvaluator, spec: CircuitSpec, nl_c: Tensor) -> FaithfulnessResult:
    ratios = faithfulness_score(nl_c, ev.nl_empty, ev.nl_full)
    defined = ratios[~np.isnan(ratios)]
    neurons = spec.keep_neurons
    return FaithfulnessResult(
        faithfulness=float(defined.mean()) if len(defined) else float("nan"),
        per_prompt=ratios,
        nl_circuit=nl_c.numpy(),
        nl_empty=ev.nl_empty.cpu().numpy(),
        nl_full=ev.nl_full.cpu().numpy(),
        ablation=ev.ablation,
        n_heads=len(set(spec.keep_heads)),
        n_mlps=len(set(spec.keep_mlps)),
        n_neurons=None if neurons is None else sum(len(set(v)) for v in neurons.values()),
    )


def iter_scores(evaluator: FaithfulnessEvaluator, circuits: Iterable[Any], *, max_memory: int | float | str = "auto",
                max_rows: int | str | None = "auto", engine: bool = True, stats: dict[str, Any] | None = None,
                ) -> Iterator[FaithfulnessResult]:
    """Lazily score ``circuits`` on ``evaluator``'s prompts, many per pass; one per pass on backends without hooks
    (an nnsight model).

    ``engine=True`` (default) runs the passes on the cone engine's explicit forward where it supports the model,
    computing each layer once per distinct ablation state (`interp.circuits.shared_forward`: about half the work
    for the sweep's nested circuits); otherwise, or with ``engine=False``, hooked bridge passes. ``stats`` (a dict),
    when given, receives the scorer's counters and ``engine`` (``shared-forward``, ``hooked`` or ``nnsight``) once
    the iteration ends or stops."""
    from interp.backends import is_nnsight_model

    if is_nnsight_model(evaluator.model):
        if stats is not None:
            stats["engine"] = "nnsight"
        for c in circuits:
            s = CircuitSpec.of(c)
            yield evaluator.score(keep_heads=s.keep_heads, keep_mlps=s.keep_mlps, keep_neurons=s.keep_neurons)
        return
    scorer: BatchedFaithfulness | None = None
    label = "hooked"
    if engine:
        from interp.circuits.shared_forward import SharedForwardScorer, engine_for

        eng = engine_for(evaluator)
        if eng is not None:
            scorer, label = SharedForwardScorer(evaluator, eng, max_memory=max_memory, max_rows=max_rows), \
                "shared-forward"
    if scorer is None:
        scorer = BatchedFaithfulness(evaluator, max_memory=max_memory, max_rows=max_rows)
    try:
        yield from scorer.iter_scores(circuits)
    finally:
        if stats is not None:
            stats.update(scorer.stats, engine=label)


def score_circuits(evaluator: FaithfulnessEvaluator, circuits: Iterable[Any], *,
                   max_memory: int | float | str = "auto", max_rows: int | str | None = "auto", engine: bool = True,
                   ) -> list[FaithfulnessResult]:
    """`FaithfulnessResult` of every circuit (same values as ``evaluator.score`` one by one), many per pass."""
    return list(iter_scores(evaluator, circuits, max_memory=max_memory, max_rows=max_rows, engine=engine))
