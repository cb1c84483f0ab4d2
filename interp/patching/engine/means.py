"""Activation sums over many prompts through the engine's explicit forward, computing shared prefixes once.

Mean ablation needs the per-position mean of every head's ``z`` and every MLP's ``hook_post`` over a large reference
set (the arithmetic grid: 40,000 strings ``x op y=``). Two things make that cheaper than ``run_with_cache`` on every
string, without changing what is computed:

* the explicit forward (`ConeEngine.forward`) reproduces the bridge and computes logits only at the last position
  (the bridge computes them at every position);
* causal attention means a position's activations depend only on the tokens up to it. When the rows share
  prefixes in equal-sized groups (the grid's ``BOS x op`` prefix is shared by every ``y``), each distinct prefix
  runs once, its activations count once per row that has it, and the remaining positions of each row run through
  `ConeEngine.layer` with the prefix's keys and values as the attention cache - the same mechanism the patch sweep
  uses for positions before a patch. `plan_prefix` picks the prefix length that computes the fewest tokens.

The sums are float64; their values equal the bridge's up to float32 rounding of the split attention sum
(tests: against ``run_with_cache`` sums).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["plan_prefix", "activation_sums", "last_position_acts", "TAPS"]

# what `activation_sums` can collect: the explicit forward's taps plus the residual stream entering each layer
TAPS = ("resid_pre", "z", "attn_out", "resid_mid", "post", "mlp_out")


def plan_prefix(tokens: Tensor) -> tuple[int, Tensor | None, Tensor | None]:
    """The shared-prefix split of ``tokens`` [N S] that computes the fewest token positions.

    Returns ``(p, prefixes [U p], members [c U])``: the ``U`` distinct first-``p``-token prefixes and, for each,
    its ``c`` rows (``members[v, u]`` is the ``v``-th row with prefix ``u``, in row order). Only splits where every
    prefix has the same number of rows qualify (the engine stacks a prefix's rows variant-major); ``p = 0`` (and
    None, None) when no split computes fewer positions than ``N * S``.
    """
    n, s = tokens.shape
    best: tuple[int, int, Tensor | None, Tensor | None] = (n * s, 0, None, None)
    tokens = tokens.long()
    width = int(tokens.max()) + 1 if tokens.numel() else 1
    inv = torch.zeros(n, dtype=torch.long, device=tokens.device)
    for p in range(1, s):
        # each row's first-p-token prefix as one integer: (rank of its first p-1 tokens, token p-1); ranks follow
        # the lexicographic order of the prefixes, as torch.unique(tokens[:, :p], dim=0) would, at a 1-D unique's cost
        _, inv, counts = torch.unique(inv * width + tokens[:, p - 1], return_inverse=True, return_counts=True)
        u = int(counts.shape[0])
        cost = u * p + n * (s - p)
        if cost >= best[0] or not bool((counts == counts[0]).all()):
            continue
        order = torch.argsort(inv, stable=True)  # rows grouped by prefix, in row order within a prefix
        members = order.view(u, -1).T.contiguous()
        best = (cost, p, tokens[members[0], :p], members)
    return best[1], best[2], best[3]


@torch.inference_mode()
def activation_sums(
    engine: Any,
    tokens: Tensor,
    want: set[tuple[str, int]],
    *,
    max_rows: int = 512,
    on_logits: Callable[[Tensor, Tensor], None] | None = None,
) -> dict[tuple[str, int], Tensor]:
    """Sums over the rows of ``tokens`` [N S] of each activation ``(tap, layer)`` in ``want``, per position.

    Returns ``{(tap, layer): sum}`` in float64 with the bridge cache's shape minus the batch axis (``z``:
    ``[S head d_head]``, ``post``: ``[S d_mlp]``, ...). ``max_rows`` bounds the rows of one pass (a prefix shared
    by more rows than that is split over several passes). ``on_logits(rows, last_logits)`` receives the
    last-position logits ``[len(rows) d_vocab]`` of the rows ``rows`` (indices into ``tokens``) as they are
    computed. The engine must have been verified for sequences of this length (`ConeEngine.verify`).
    """
    s = tokens.shape[1]
    sums: dict[tuple[str, int], Tensor] = {}

    def add(key: tuple[str, int], val: Tensor, start: int, weight: int = 1) -> None:
        part = val.double().sum(0)
        if weight != 1:
            part = part * weight
        if key not in sums:
            sums[key] = torch.zeros((s, *part.shape[1:]), dtype=torch.float64, device=part.device)
        sums[key][start : start + part.shape[0]] += part.to(sums[key].device)

    _sweep(engine, tokens, want, max_rows=max_rows, on_prefix=lambda key, val, c: add(key, val, 0, weight=c),
           on_suffix=lambda rows, key, val, p: add(key, val, p), on_logits=on_logits)
    return sums


@torch.inference_mode()
def last_position_acts(
    engine: Any,
    tokens: Tensor,
    want: set[tuple[str, int]],
    *,
    max_rows: int = 512,
    select: dict[tuple[str, int], Tensor] | None = None,
) -> dict[tuple[str, int], Tensor]:
    """Each row's activation ``(tap, layer)`` in ``want`` at the last position of ``tokens`` [N S].

    Returns ``{(tap, layer): [N ...]}`` (``post``: ``[N d_mlp]``, or ``[N len(select[key])]`` with ``select``, a
    LongTensor of last-axis indices per key, e.g. chosen neurons). Shared prefixes are computed once, as in
    `activation_sums`, and no layer after the last one in ``want`` runs. The engine must have been verified for
    sequences of this length (`ConeEngine.verify`).
    """
    n = tokens.shape[0]
    out: dict[tuple[str, int], Tensor] = {}

    def keep(rows: Tensor, key: tuple[str, int], val: Tensor, p: int) -> None:
        last = val[:, -1]
        if select is not None and key in select:
            last = last[..., select[key].to(last.device)]
        if key not in out:
            out[key] = torch.empty((n, *last.shape[1:]), dtype=last.dtype, device=last.device)
        out[key][rows.to(last.device)] = last

    stop = 1 + max((layer - (name == "resid_pre") for name, layer in want), default=-1)
    _sweep(engine, tokens, want, max_rows=max_rows, on_prefix=None, on_suffix=keep, stop_layer=stop, last_only=True)
    return out


def _sweep(
    engine: Any,
    tokens: Tensor,
    want: set[tuple[str, int]],
    *,
    max_rows: int,
    on_prefix: Callable[[tuple[str, int], Tensor, int], None] | None,
    on_suffix: Callable[[Tensor, tuple[str, int], Tensor, int], None],
    on_logits: Callable[[Tensor, Tensor], None] | None = None,
    stop_layer: int | None = None,
    last_only: bool = False,
) -> None:
    """Run every row of ``tokens`` [N S] through the explicit forward, each distinct shared prefix once
    (`plan_prefix`), and hand over the activations of ``want``: ``on_prefix(key, value, c)`` with a block of
    prefixes' positions ``< p`` (each prefix standing for its ``c`` rows; None: prefix activations are not
    needed), ``on_suffix(rows, key, value, p)`` with positions ``p..S-1`` of the rows ``rows``, and
    ``on_logits(rows, last_logits)``. ``stop_layer``: run only layers before it (no logits). ``last_only``: the
    last layer that runs computes only the last position (``on_suffix`` then sees ``[rows 1 ...]`` there)."""
    bad = sorted({t for t, _ in want} - set(TAPS))
    if bad:
        raise ValueError(f"the engine's sweep cannot collect {bad}; it collects {', '.join(TAPS)}")
    n, s = tokens.shape
    engine._rope_tables(s)
    n_run = engine.n_layers if stop_layer is None else min(stop_layer, engine.n_layers)

    def run_suffix(rows: Tensor, x: Tensor, p: int, n_var: int) -> Tensor:
        for layer in range(n_run):
            if ("resid_pre", layer) in want:
                on_suffix(rows, ("resid_pre", layer), x, p)
            taps: dict[str, Tensor] = {}
            x = engine.layer(layer, x, p, n_var, last=last_only and layer == n_run - 1, taps=taps)
            for name, val in taps.items():
                if (name, layer) in want:
                    on_suffix(rows, (name, layer), val, p)
        if n_run == engine.n_layers and ("resid_pre", n_run) in want:
            on_suffix(rows, ("resid_pre", n_run), x, p)
        if on_logits is not None and n_run == engine.n_layers:
            on_logits(rows, engine.logits(x[:, -1]))
        return x

    p, prefixes, members = plan_prefix(tokens)
    try:
        if p == 0 or prefixes is None or members is None:
            for i in range(0, n, max_rows):
                rows = torch.arange(i, min(n, i + max_rows))
                run_suffix(rows, engine.embed(tokens[rows]), 0, 1)
            return
        c, u = members.shape
        per_block = max(1, max_rows // c)  # prefixes per block; all their rows fit in max_rows
        n_var = min(c, max_rows)  # rows of one prefix per pass when a prefix alone has more than max_rows
        kv = {(name, layer) for layer in range(n_run) for name in ("k", "v")}
        for u0 in range(0, u, per_block):
            pre = prefixes[u0 : u0 + per_block]
            _, acts = engine.forward(pre, kv | (want if on_prefix is not None else set()))
            if on_prefix is not None:
                for key in want:  # positions < p: each prefix stands for its c rows
                    on_prefix(key, acts[key], c)
            engine.acts = {k: acts[k] for k in kv}
            for v0 in range(0, c, n_var):
                rows = members[v0 : v0 + n_var, u0 : u0 + per_block].reshape(-1)  # variant-major, as layer() reads
                nv = min(n_var, c - v0)
                run_suffix(rows, engine.embed(tokens[rows, p:], p), p, nv)
    finally:
        engine.release()
