"""MIB's circuit-submission format: one JSON per task_model with a float score per edge.

Layout (MIB circuit-localization track, ``Graph.to_json`` of the EAP-IG code)::

    {"cfg": {"n_layers": .., "n_heads": .., "parallel_attn_mlp": false, "d_model": ..},
     "nodes": {"input": {"in_graph": true}, "a0.h0": {...}, "m0": {...}, ..., "logits": {...}},
     "edges": {"input->a0.h0<q>": {"score": -0.0003, "in_graph": false}, ..., "m11->logits": {...}}}

Edge names are ``sender->receiver`` with receivers ``a{l}.h{h}<q|k|v>``, ``m{l}`` and ``logits``. On grouped-query
models our k/v receivers are per query head, as MIB's (``ungroup_grouped_query_attention``). ``in_graph`` marks
the edges of a circuit (all False when only scores are written). Loading checks every edge name against the model's
graph, so a file for another model fails with the names that do not exist.

**Sign.** MIB's attribution (``run_attribution.py``) scores edges with the *negated* logit difference
(``loss=True``), so in MIB's files a positive score means the edge helps the behaviour, and MIB's CPR ranks edges
by that signed score, largest first (``absolute=False``). Our scores are the change of the metric itself (negative
= the edge helps, for the logit difference). ``sign="mib"`` (default) writes and reads `EdgeScores.helpfulness`
(``helps_sign(metric) * score``: minus our logit-difference score), so a file we write ranks the same way under
MIB's evaluation as one from MIB's pipeline; ``sign="metric"`` writes and reads our scores unchanged (MIB's 2024
example circuit ``circuits/ioi-eap-ig.json`` has that sign: its name mover ``a9.h9->logits`` scores -0.28).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from interp._io import read_json, write_json_atomic
from interp.circuits.edges.graph import EdgeError, EdgeGraph
from interp.circuits.edges.prep import helps_sign
from interp.circuits.edges.result import EdgeCircuit, EdgeScores, graph_from_cfg

__all__ = ["MIB_SIGNS", "to_mib", "save_mib", "load_mib"]

MIB_SIGNS: tuple[str, ...] = ("mib", "metric")


def _check_sign(sign: str) -> str:
    if sign not in MIB_SIGNS:
        from interp.errors import unknown

        raise unknown("MIB score sign", sign, MIB_SIGNS)
    return sign


def to_mib(scores: EdgeScores, circuit: EdgeCircuit | None = None, *, d_model: int | None = None,
           sign: str = "mib") -> dict[str, Any]:
    """The MIB file's dict; ``sign="mib"`` writes the helpfulness (positive = the edge helps, MIB's sign)."""
    _check_sign(sign)
    g = scores.graph
    written = scores.helpfulness if sign == "mib" else scores.scores
    kept = np.zeros(g.n_edges, dtype=bool)
    if circuit is not None:
        if circuit.graph != g:
            raise EdgeError("the circuit and the scores are for different graphs")
        kept[list(circuit.edges)] = True
    s, r = g.edge_index
    in_node = np.zeros(len(g.senders) + 1, dtype=bool)  # last slot: logits
    for e in np.nonzero(kept)[0]:
        in_node[s[e]] = True
        rn = g.receiver_node[r[e]]
        in_node[rn if rn >= 0 else -1] = True
    cfg = {"n_layers": g.n_layers, "n_heads": g.n_heads, "parallel_attn_mlp": g.parallel_attn_mlp}
    if d_model is not None:
        cfg["d_model"] = int(d_model)
    if g.n_kv_heads != g.n_heads:
        cfg["n_key_value_heads"] = g.n_kv_heads
    nodes = {n: {"in_graph": bool(in_node[i])} for i, n in enumerate(g.senders)}
    nodes["logits"] = {"in_graph": bool(in_node[-1])}
    edges = {}
    for i, name in enumerate(g.names):
        v = float(written[i])
        edges[name] = {"score": v if np.isfinite(v) else None, "in_graph": bool(kept[i])}
    return {"cfg": cfg, "nodes": nodes, "edges": edges}


def save_mib(path: str | os.PathLike[str], scores: EdgeScores, circuit: EdgeCircuit | None = None,
             *, d_model: int | None = None, sign: str = "mib") -> Path:
    return write_json_atomic(path, to_mib(scores, circuit, d_model=d_model, sign=sign))


def load_mib(path: str | os.PathLike[str] | dict[str, Any], graph: EdgeGraph | None = None, *,
             sign: str = "mib", metric: str = "logit_diff") -> tuple[EdgeScores, EdgeCircuit]:
    """Scores and the ``in_graph`` circuit of a MIB file; ``graph`` (the model's) checks the names.

    ``sign="mib"``: the file's scores are helpfulness (MIB's sign) and come back as our scores under ``metric``
    (``helps_sign(metric) * file score``); ``sign="metric"``: they are taken unchanged."""
    _check_sign(sign)
    factor = helps_sign(metric) if sign == "mib" else 1.0
    d = read_json(path) if not isinstance(path, dict) else path
    if not isinstance(d, dict) or "edges" not in d or "cfg" not in d:
        raise EdgeError("not a MIB circuit file: it needs 'cfg' and 'edges'")
    fg = graph_from_cfg(d["cfg"])
    g = graph or fg
    if graph is not None and (fg.n_layers, fg.n_heads) != (graph.n_layers, graph.n_heads):
        raise EdgeError(f"the file is for a model with {fg.n_layers} layers and {fg.n_heads} heads; this model has "
                        f"{graph.n_layers} layers and {graph.n_heads} heads")
    edges = d["edges"]
    idx = g.edges_from_names(list(edges))
    vals = np.full(g.n_edges, np.nan)
    kept = []
    for i, e in zip(idx, edges.values()):
        sc = e.get("score") if isinstance(e, dict) else e
        vals[i] = np.nan if sc is None else factor * float(sc)
        if isinstance(e, dict) and e.get("in_graph"):
            kept.append(int(i))
    scores = EdgeScores(g, vals, method="mib-file", metric=metric, model=g.model)
    return scores, EdgeCircuit(g, tuple(sorted(kept)), scores=vals, method="mib-file", metric=metric, model=g.model)
