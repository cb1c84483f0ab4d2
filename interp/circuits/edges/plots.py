"""Plotly figures of edge circuits: the layered graph of kept edges and MIB's faithfulness curve."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_edge_circuit", "plot_mib_curve"]

_COLOURS = {"q": "#1f77b4", "k": "#2ca02c", "v": "#ff7f0e", "mlp": "#7f7f7f", "logits": "#7f7f7f"}


def _positions(graph: Any) -> dict[str, tuple[float, float]]:
    """Node -> (x, y): input at depth 0, layer l's heads at 2l + 1, its MLP at 2l + 2, the logits on top."""
    pos: dict[str, tuple[float, float]] = {"input": (0.0, 0.0)}
    w = max(graph.n_heads - 1, 1)
    for layer in range(graph.n_layers):
        for h in range(graph.n_heads):
            pos[f"a{layer}.h{h}"] = (-1 + 2 * h / w, 2 * layer + 1)
        pos[f"m{layer}"] = (0.0, 2 * layer + 2)
    pos["logits"] = (0.0, 2 * graph.n_layers + 1)
    return pos


def plot_edge_circuit(circuit: Any, *, title: str | None = None, max_edges: int = 400) -> Any:
    import plotly.graph_objects as go

    g = circuit.graph
    pos = _positions(g)
    idx = np.asarray(circuit.edges, dtype=np.int64)
    sc = None if circuit.scores is None else np.abs(np.nan_to_num(circuit.scores[idx]))
    if sc is not None and len(idx) > max_edges:
        order = np.argsort(-sc)[:max_edges]
        idx, sc = idx[order], sc[order]
    top = float(sc.max()) if sc is not None and len(sc) and sc.max() > 0 else 1.0
    s, r = g.edge_index
    fig = go.Figure()
    # one trace per (receiver kind, width bin) keeps the figure small for hundreds of edges
    bins: dict[tuple[str, int], list[float | None]] = {}
    binsy: dict[tuple[str, int], list[float | None]] = {}
    for j, e in enumerate(idx):
        rec = g.receivers[r[e]]
        kind = rec.split("<")[1].rstrip(">") if "<" in rec else ("logits" if rec == "logits" else "mlp")
        node = rec.split("<")[0]
        x0, y0 = pos[g.senders[s[e]]]
        x1, y1 = pos[node]
        wbin = 1 if sc is None else int(1 + 4 * sc[j] / top)
        bins.setdefault((kind, wbin), []).extend([x0, x1, None])
        binsy.setdefault((kind, wbin), []).extend([y0, y1, None])
    for (kind, wbin), xs in sorted(bins.items()):
        fig.add_trace(go.Scatter(x=xs, y=binsy[(kind, wbin)], mode="lines", hoverinfo="skip",
                                 line={"width": wbin, "color": _COLOURS[kind]}, opacity=0.6,
                                 name=f"into {kind}", legendgroup=kind, showlegend=wbin == 1 or False))
    names = circuit.nodes
    fig.add_trace(go.Scatter(x=[pos[n][0] for n in names], y=[pos[n][1] for n in names], mode="markers+text",
                             text=names, textposition="middle right", marker={"size": 9, "color": "black"},
                             name="nodes"))
    fig.update_layout(title=title or f"{len(circuit.edges)} edges ({circuit.method or 'circuit'}, {circuit.model})",
                      xaxis={"visible": False}, yaxis={"title": "depth", "showgrid": False},
                      height=300 + 40 * g.n_layers)
    return fig


def plot_mib_curve(curves: dict[str, Any], *, title: str | None = None) -> Any:
    """Faithfulness against edge budget (log x); ``curves`` is one `mib_curve` dict or {label: dict}."""
    import plotly.graph_objects as go

    if "faithfulness" in curves:
        curves = {"circuit": curves}
    fig = go.Figure()
    for label, c in curves.items():
        fig.add_trace(go.Scatter(x=c["budgets"], y=c["faithfulness"], mode="lines+markers",
                                 name=f"{label} (CPR {c['cpr']:.3f}, CMD {c['cmd']:.3f})"))
    fig.add_hline(y=1.0, line_dash="dot")
    fig.update_layout(title=title or "faithfulness by edge budget", xaxis={"type": "log", "title": "% of edges"},
                      yaxis={"title": "faithfulness f"})
    return fig
