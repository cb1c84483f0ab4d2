"""Activation maps of MLP neurons over the operand grid (Nikankin et al., ICLR 2025, §3.2 and methods.md §A.3).

For an operator ``op`` the *grid* is every legal prompt ``"{a}{op}{b}="`` of the task. For a neuron ``(l, n)``:

* the **K map** is its activation ``blocks.l.mlp.hook_post[..., n]`` at the last position of every grid prompt;
* its **value vector** is ``W_out[l][n]`` and the **logit lens** of it is ``W_out[l][n] @ W_U`` (in compatibility
  mode the final LayerNorm weights are folded into ``W_U``, as with the paper's ``fold_ln=True``);
* the **KV map** is the K map times the logit lens entry of each prompt's *result* token:
  ``KV[p] = K[p] * (W_out[l][n] @ W_U)[result_token(p)]`` - how much the neuron pushes the correct answer.

Direct heuristics (on the result) are read from KV maps, indirect ones (on the operands) from K maps
(`interp.neurons.heuristics`). Maps are produced by `iter_maps` in blocks of neurons that fit a memory budget, so a
grid of 10,000 prompts times every neuron of a large model never has to be held at once; each block costs one pass
over the grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import ShapeError, TaskError
from interp.neurons._common import check_hook_post, check_neurons, check_operator
from interp.sites import hook_name
from interp.tasks.arith import apply_op
from interp.tasks.base import TASK_METHODS, require

MIN_GRID_PROMPTS = 3

__all__ = ["MIN_GRID_PROMPTS", "OperandGrid", "MapBlock", "iter_maps", "neuron_maps", "value_logits",
           "top_value_tokens", "neuron_map"]


@dataclass(frozen=True, eq=False)
class OperandGrid:
    """Every legal prompt of one operator: operands ``a``, ``b``, ``result`` (int arrays) and, from a model, tokens.

    ``lo``/``hi`` is the operand range of the task. ``span`` (= hi - lo + 1) is the paper's ``max_op`` (300 there,
    operands in [0, 300)), and ``factor`` = |legal prompts| / span² the share of legal pairs; both scale the paper's
    per-heuristic constants to the task (`interp.neurons.heuristics`).
    """

    op: str
    a: np.ndarray
    b: np.ndarray
    result: np.ndarray
    lo: int
    hi: int
    tokens: Tensor | None = None
    answer_tokens: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not (len(self.a) == len(self.b) == len(self.result)):
            raise ShapeError(f"a, b and result differ in length: {len(self.a)}, {len(self.b)}, {len(self.result)}")
        if len(self.a) == 0:
            raise TaskError(f"the {self.op!r} grid of operands {self.lo}-{self.hi} has no legal prompt")
        if len(self.a) < MIN_GRID_PROMPTS:
            raise TaskError(f"the {self.op!r} grid has {len(self.a)} prompt(s); the neuron heuristics need at least "
                            f"{MIN_GRID_PROMPTS} (a heuristic's top-k must hold more than one prompt)")

    @classmethod
    def from_task(cls, model: Any, task: Any, op: str) -> OperandGrid:
        """The legal grid of ``op`` from ``task.prompts(model, op)``; numbers must be single tokens."""
        require(task, "the neuron heuristics (operand grid)", *TASK_METHODS["grid"])
        check_operator(task, op)
        prompts = task.prompts(model, op)
        if any(len(p.answer_tokens) != 1 for p in prompts):
            raise TaskError(
                f"neuron maps need every result of {task.name!r} to be one token (the paper's setting); "
                "this tokenizer splits numbers - use a model with single-token numbers such as toy-arith, or "
                "build your own grid with interp.tasks.custom.OperandTask (one answer token per prompt)"
            )
        return cls(
            op=op,
            a=np.array([p.a for p in prompts], dtype=np.int64),
            b=np.array([p.b for p in prompts], dtype=np.int64),
            result=np.array([p.result for p in prompts], dtype=np.int64),
            lo=int(task.lo),
            hi=int(task.hi),
            tokens=torch.tensor([p.tokens for p in prompts], dtype=torch.long),
            answer_tokens=np.array([p.answer_token for p in prompts], dtype=np.int64),
        )

    @classmethod
    def synthetic(cls, op: str, *, lo: int = 0, hi: int = 99, max_result: int = 999) -> OperandGrid:
        """The legal grid without a model (for tests and synthetic maps): the task's legality rules."""
        pairs = [(a, b) for a in range(lo, hi + 1) for b in range(lo, hi + 1)
                 if not (op == "/" and b == 0) and 0 <= apply_op(a, op, b) <= max_result]
        arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        res = np.array([apply_op(int(a), op, int(b)) for a, b in arr], dtype=np.int64)
        return cls(op=op, a=arr[:, 0], b=arr[:, 1], result=res, lo=lo, hi=hi)

    @property
    def n(self) -> int:
        return int(len(self.a))

    @property
    def span(self) -> int:
        return self.hi - self.lo + 1

    @property
    def factor(self) -> float:
        return self.n / self.span**2

    @property
    def max_result(self) -> int:
        return int(self.result.max())

    @property
    def operand_width(self) -> int:
        """Digits of the largest operand: the zero-padded width of operand patterns (3 in the paper, 2 for 0-99)."""
        return len(str(self.hi))

    @property
    def result_width(self) -> int:
        return len(str(self.max_result))

    def values(self, target: str) -> np.ndarray:
        return {"op1": self.a, "op2": self.b, "result": self.result}[target]

    def to_matrix(self, values: np.ndarray) -> np.ndarray:
        """``values`` per prompt as an op1 x op2 matrix (rows op1 = lo..hi, columns op2), NaN where illegal."""
        out = np.full((self.span, self.span), np.nan)
        out[self.a - self.lo, self.b - self.lo] = values
        return out


@dataclass(frozen=True, eq=False)
class MapBlock:
    """K (and KV) maps of a block of neurons: ``k[p, j]`` is neuron ``(layers[j], neurons[j])`` on prompt ``p``."""

    layers: np.ndarray
    neurons: np.ndarray
    k: np.ndarray
    kv: np.ndarray | None

    @property
    def size(self) -> int:
        return int(len(self.neurons))


def value_logits(model: Any, layer: int, neurons: Sequence[int]) -> Float[Tensor, "neuron d_vocab"]:
    """The logit lens of value vectors: ``W_out[layer][neurons] @ W_U`` (raw unembedding, no final norm)."""
    check_neurons(model, {layer: neurons})
    w_out = model.blocks[layer].mlp.W_out.detach()  # [d_mlp d_model]
    return (w_out[list(neurons)] @ model.W_U.detach()).float()


def top_value_tokens(model: Any, layer: int, neuron: int, *, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` tokens the value vector of ``(layer, neuron)`` promotes most, as ``(token, logit)``; ``k >= 1``."""
    from interp.checks import check_int

    k = check_int(k, "k", lo=1, hi=int(model.cfg.d_vocab))
    logits = value_logits(model, layer, [neuron])[0]
    vals, idx = logits.topk(min(k, logits.shape[0]))
    tok = getattr(model, "tokenizer", None)
    names = tok.convert_ids_to_tokens(idx.tolist()) if tok is not None else [str(i) for i in idx.tolist()]
    return [(str(n), float(v)) for n, v in zip(names, vals.tolist())]


def _flatten(neurons: Mapping[int, Sequence[int]]) -> list[tuple[int, int]]:
    return [(layer, n) for layer in sorted(neurons) for n in neurons[layer]]


@torch.inference_mode()
def _run_block(model: Any, grid: OperandGrid, block: list[tuple[int, int]], *, kv: bool, batch_size: int,
               engine: bool = True) -> MapBlock:
    """K (and KV) maps of ``block`` over ``grid``: through the cone engine's explicit forward where it reproduces
    the model (`ConeEngine.verified`; shared ``BOS x op`` prefixes computed once, no layer after the last needed
    one), else ``run_with_hooks`` on the bridge (``engine=False`` forces that)."""
    assert grid.tokens is not None and grid.answer_tokens is not None
    layers = np.array([lyr for lyr, _ in block], dtype=np.int64)
    neurons = np.array([n for _, n in block], dtype=np.int64)
    by_layer: dict[int, tuple[np.ndarray, Tensor]] = {}
    for layer in sorted(set(layers.tolist())):
        cols = np.nonzero(layers == layer)[0]
        by_layer[layer] = (cols, torch.as_tensor(neurons[cols]))
    k = np.empty((grid.n, len(block)), dtype=np.float32)
    device = next(iter(model.parameters())).device
    from interp.backends import is_nnsight_model

    if engine and not is_nnsight_model(model):
        from interp.patching.engine import ConeEngine
        from interp.patching.engine.means import last_position_acts

        eng = ConeEngine.verified(model, grid.tokens, fallback="neuron maps on bridge passes")
        if eng is not None:  # shared prefixes once, only the layers up to the last needed one
            keys = {("post", layer): idx for layer, (_, idx) in by_layer.items()}
            acts = last_position_acts(eng, grid.tokens.to(device), set(keys), max_rows=batch_size, select=keys)
            for layer, (cols, _) in by_layer.items():
                k[:, cols] = acts[("post", layer)].float().cpu().numpy()
            return _with_kv(model, grid, by_layer, layers, neurons, k, kv)
    stop_at = max(by_layer) + 1 if max(by_layer) + 1 < int(model.cfg.n_layers) else None
    for start in range(0, grid.n, batch_size):
        stop = min(start + batch_size, grid.n)

        def make_hook(cols: np.ndarray, idx: Tensor, rows: slice = slice(start, stop)):
            def hook(act: Tensor, hook: Any) -> None:
                k[rows, cols] = act[:, -1, idx.to(act.device)].float().cpu().numpy()

            return hook

        hooks = [(hook_name("neuron", layer), make_hook(c, i)) for layer, (c, i) in by_layer.items()]
        # the layers after the last needed one do not change the maps: stop the forward pass there
        model.run_with_hooks(grid.tokens[start:stop].to(device), fwd_hooks=hooks, stop_at_layer=stop_at)
    return _with_kv(model, grid, by_layer, layers, neurons, k, kv)


def _with_kv(model: Any, grid: OperandGrid, by_layer: dict[int, tuple[np.ndarray, Tensor]], layers: np.ndarray,
             neurons: np.ndarray, k: np.ndarray, kv: bool) -> MapBlock:
    """The block of K maps ``k`` [prompt neuron], with the KV maps (K times the value vector's logit of each
    prompt's result token) when ``kv``."""
    kv_map = None
    if kv:
        kv_map = np.empty_like(k)
        w_u = model.W_U.detach()[:, torch.as_tensor(grid.answer_tokens)].float()  # [d_model prompt]
        for layer, (cols, idx) in by_layer.items():
            w_out = model.blocks[layer].mlp.W_out.detach()[idx].float()  # [neuron d_model]
            lens = (w_out @ w_u).T.cpu().numpy()  # [prompt neuron]: logit of each prompt's result token
            kv_map[:, cols] = k[:, cols] * lens
    return MapBlock(layers=layers, neurons=neurons, k=k, kv=kv_map)


def iter_maps(
    model: Any,
    grid: OperandGrid,
    neurons: Mapping[int, Sequence[int]],
    *,
    kv: bool = True,
    budget_mb: float = 256.0,
    batch_size: int = 4096,
) -> Iterator[MapBlock]:
    """K (and KV) maps of ``neurons`` (``{layer: indices}``) over ``grid``, in blocks of at most ``budget_mb``.

    A block holds ``grid.n x block_size`` float32 values per map; the block size is the largest that fits the
    budget, so with a small budget a large neuron set takes several passes over the grid instead of running out of
    memory. Blocks follow the order of layers, then of the given indices.
    """
    check_hook_post(model)
    if grid.tokens is None:
        raise TaskError("this grid has no tokens (a synthetic grid); build it with OperandGrid.from_task(model, ...)")
    if budget_mb <= 0:
        raise ShapeError(f"budget_mb must be positive; got {budget_mb}")
    flat = _flatten(check_neurons(model, neurons))
    if not flat:
        return
    per_neuron = grid.n * 4 * (2 if kv else 1)
    block = max(1, int(budget_mb * 2**20 // per_neuron))
    for i in range(0, len(flat), block):
        yield _run_block(model, grid, flat[i : i + block], kv=kv, batch_size=batch_size)


def neuron_maps(
    model: Any, grid: OperandGrid, neurons: Mapping[int, Sequence[int]], *, kv: bool = True, batch_size: int = 4096
) -> MapBlock:
    """All maps of ``neurons`` in one block (for a handful of neurons; use `iter_maps` for many)."""
    check_hook_post(model)
    flat = _flatten(check_neurons(model, neurons))
    if not flat:
        raise ShapeError("no neurons given")
    if grid.tokens is None:
        raise TaskError("this grid has no tokens (a synthetic grid); build it with OperandGrid.from_task(model, ...)")
    return _run_block(model, grid, flat, kv=kv, batch_size=batch_size)


def neuron_map(model: Any, task: Any, op: str, layer: int, neuron: int, *, n_tokens: int = 10,
               heuristics: Sequence[Any] = ()) -> Any:
    """A `NeuronMap` (op1 x op2 K and KV maps plus the top value-vector tokens) ready to ``.plot()``."""
    from interp.neurons.results import NeuronMap

    grid = OperandGrid.from_task(model, task, op)
    block = neuron_maps(model, grid, {layer: [neuron]})
    assert block.kv is not None
    return NeuronMap(
        op=op, layer=int(layer), neuron=int(neuron), lo=grid.lo, hi=grid.hi,
        k_map=grid.to_matrix(block.k[:, 0]), kv_map=grid.to_matrix(block.kv[:, 0]),
        top_tokens=tuple(top_value_tokens(model, layer, neuron, k=n_tokens)),
        heuristics=tuple(heuristics),
    )


def grid_bytes(grid: OperandGrid, n_neurons: int, *, kv: bool = True) -> int:
    """Bytes of the maps of ``n_neurons`` neurons over ``grid`` (float32 K, and KV when ``kv``)."""
    return int(grid.n * n_neurons * 4 * (2 if kv else 1))


def blocks_needed(grid: OperandGrid, n_neurons: int, *, kv: bool = True, budget_mb: float = 256.0) -> int:
    return math.ceil(grid_bytes(grid, n_neurons, kv=kv) / (budget_mb * 2**20))
