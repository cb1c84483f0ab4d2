"""Choosing edges: top-n, threshold and greedy selection, and pruning edges that no longer connect input to logits.

Scores are ranked by absolute value by default (MIB's ``absolute=True``: an edge that hurts the metric when
ablated matters as much as one that helps); NaN scores rank last. Pruning keeps an edge only if its sender is
reachable from the input through kept edges and its receiver's node reaches the logits through kept edges
(iterated to a fixed point, as MIB's ``prune``).
"""

from __future__ import annotations

import numpy as np

from interp.circuits.edges.graph import EdgeError, EdgeGraph

__all__ = ["top_n_edges", "threshold_edges", "greedy_edges", "prune_edges", "edges_of_nodes"]


def _key(scores: np.ndarray, absolute: bool) -> np.ndarray:
    k = np.abs(scores) if absolute else np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(k), -np.inf, k)


def _check_n(n: int, total: int) -> int:
    if isinstance(n, bool) or int(n) != n or not 0 <= int(n) <= total:
        raise EdgeError(f"n must be an integer in [0, {total}] (the graph has {total} edges); got {n!r}")
    return int(n)


def top_n_edges(scores: np.ndarray, n: int, *, absolute: bool = True) -> np.ndarray:
    """Indices of the ``n`` best-scoring edges (stable order on ties)."""
    n = _check_n(n, len(scores))
    return np.sort(np.argsort(-_key(scores, absolute), kind="stable")[:n])


def threshold_edges(scores: np.ndarray, threshold: float, *, absolute: bool = True) -> np.ndarray:
    """Indices of the edges whose (absolute) score is at least ``threshold``."""
    return np.nonzero(_key(scores, absolute) >= float(threshold))[0]


def greedy_edges(graph: EdgeGraph, scores: np.ndarray, n: int, *, absolute: bool = True) -> np.ndarray:
    """MIB's greedy selection: grow from the logits, each step adding the best edge whose receiver's node is
    already in the circuit (so every chosen edge connects to the logits)."""
    n = _check_n(n, graph.n_edges)
    key = _key(scores, absolute)
    s, r = graph.edge_index
    rnode = graph.receiver_node[r]  # -1 = logits
    in_circ = np.zeros(len(graph.senders) + 1, dtype=bool)  # last slot = logits
    in_circ[-1] = True
    chosen = np.zeros(graph.n_edges, dtype=bool)
    for _ in range(n):
        cand = in_circ[np.where(rnode < 0, len(graph.senders), rnode)] & ~chosen
        if not cand.any():
            break
        best = int(np.argmax(np.where(cand, key, -np.inf)))
        chosen[best] = True
        in_circ[s[best]] = True
    return np.nonzero(chosen)[0]


def prune_edges(graph: EdgeGraph, edges: np.ndarray) -> np.ndarray:
    """The edges that lie on some input -> logits path made of kept edges."""
    s, r = graph.edge_index
    idx = np.asarray(edges, dtype=np.int64)
    if len(idx) == 0:
        return idx
    ks, kr = s[idx], r[idx]
    knode = graph.receiver_node[kr]  # node each kept edge feeds (-1 = logits)
    n_s = len(graph.senders)
    fwd = np.zeros(n_s, dtype=bool)
    fwd[0] = True
    for j in range(1, n_s):  # sender order is topological
        into = knode == j
        fwd[j] = bool(np.any(fwd[ks[into]])) if into.any() else False
    back = np.zeros(n_s, dtype=bool)
    for j in range(n_s - 1, -1, -1):
        out = ks == j
        if out.any():
            tgt = knode[out]
            back[j] = bool(np.any(tgt < 0) or np.any(back[tgt[tgt >= 0]]))
    keep = fwd[ks] & ((knode < 0) | back[np.maximum(knode, 0)])
    keep &= np.where(knode < 0, True, fwd[np.maximum(knode, 0)])
    return np.sort(idx[keep])


def edges_of_nodes(graph: EdgeGraph, heads: set[tuple[int, int]] | list, mlps: set[int] | list) -> np.ndarray:
    """A node circuit (heads, MLP layers; the input and logits always in) as edges: every edge between kept nodes."""
    keep = np.zeros(len(graph.senders), dtype=bool)
    keep[0] = True
    for layer, h in heads:
        keep[graph.sender_index(int(layer), int(h))] = True
    for layer in mlps:
        keep[graph.sender_index(int(layer), None)] = True
    s, r = graph.edge_index
    rnode = graph.receiver_node[r]
    ok = keep[s] & ((rnode < 0) | keep[np.maximum(rnode, 0)])
    return np.nonzero(ok)[0]
