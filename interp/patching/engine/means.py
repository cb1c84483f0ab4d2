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

__all__ = ["plan_prefix", "activation_sums", "TAPS"]

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
    for p in range(1, s):
        uniq, inv, counts = torch.unique(tokens[:, :p], dim=0, return_inverse=True, return_counts=True)
        u = int(uniq.shape[0])
        cost = u * p + n * (s - p)
        if cost >= best[0] or not bool((counts == counts[0]).all()):
            continue
        order = torch.argsort(inv, stable=True)  # rows grouped by prefix, in row order within a prefix
        best = (cost, p, uniq, order.view(u, -1).T.contiguous())
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
    bad = sorted({t for t, _ in want} - set(TAPS))
    if bad:
        raise ValueError(f"activation_sums cannot collect {bad}; it collects {', '.join(TAPS)}")
    n, s = tokens.shape
    engine._rope_tables(s)
    sums: dict[tuple[str, int], Tensor] = {}

    def add(key: tuple[str, int], val: Tensor, start: int, weight: int = 1) -> None:
        part = val.double().sum(0)
        if weight != 1:
            part = part * weight
        if key not in sums:
            sums[key] = torch.zeros((s, *part.shape[1:]), dtype=torch.float64, device=part.device)
        sums[key][start : start + part.shape[0]] += part.to(sums[key].device)

    def run_suffix(x: Tensor, p: int, n_var: int) -> Tensor:
        for layer in range(engine.n_layers):
            if ("resid_pre", layer) in want:
                add(("resid_pre", layer), x, p)
            taps: dict[str, Tensor] = {}
            x = engine.layer(layer, x, p, n_var, last=False, taps=taps)
            for name, val in taps.items():
                if (name, layer) in want:
                    add((name, layer), val, p)
        return x

    p, prefixes, members = plan_prefix(tokens)
    try:
        if p == 0 or prefixes is None or members is None:
            for i in range(0, n, max_rows):
                rows = torch.arange(i, min(n, i + max_rows))
                x = run_suffix(engine.embed(tokens[rows]), 0, 1)
                if on_logits is not None:
                    on_logits(rows, engine.logits(x[:, -1]))
            return sums
        c, u = members.shape
        per_block = max(1, max_rows // c)  # prefixes per block; all their rows fit in max_rows
        n_var = min(c, max_rows)  # rows of one prefix per pass when a prefix alone has more than max_rows
        kv = {(name, layer) for layer in range(engine.n_layers) for name in ("k", "v")}
        for u0 in range(0, u, per_block):
            pre = prefixes[u0 : u0 + per_block]
            _, acts = engine.forward(pre, kv | want)
            for key in want:  # positions < p: each prefix stands for its c rows
                add(key, acts[key], 0, weight=c)
            engine.acts = {k: acts[k] for k in kv}
            for v0 in range(0, c, n_var):
                rows = members[v0 : v0 + n_var, u0 : u0 + per_block].reshape(-1)  # variant-major, as layer() reads
                nv = min(n_var, c - v0)
                x = run_suffix(engine.embed(tokens[rows, p:], p), p, nv)
                if on_logits is not None:
                    on_logits(rows, engine.logits(x[:, -1]))
        return sums
    finally:
        engine.release()
