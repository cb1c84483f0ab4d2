"""Plotly figures for circuits: the faithfulness curve, the circuit diagram and the effect map.

Functions take a result and return a `Figure`; they never show or write files, and never change global templates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interp.plotting import DIVERGING, heatmap, log_colorbar, pick_transform, signed_log1p

__all__ = ["plot_curve", "plot_curves", "plot_diagram", "plot_effects"]


def _curve_trace(circuit: Any, name: str | None = None) -> Any:
    import plotly.graph_objects as go

    x = [row["n_heads"] + (row.get("n_mlps", 0) if circuit.meta.get("rank_mlps") else 0) for row in circuit.curve]
    y = [row["faithfulness"] for row in circuit.curve]
    text = [row.get("added") or "start" for row in circuit.curve]
    return go.Scatter(x=x, y=y, mode="lines+markers", name=name or circuit.ablation, text=text,
                      hovertemplate="%{x} components (+%{text}): F = %{y:.3f}<extra></extra>")


def plot_curves(circuits: dict[str, Any], *, title: str = "Faithfulness against circuit size") -> Any:
    """Several circuits' sweeps in one figure (e.g. one per operator), each chosen size marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    target = None
    for name, c in circuits.items():
        fig.add_trace(_curve_trace(c, name))
        n = len(c.heads) + (len(c.mlps) if c.meta.get("rank_mlps") else 0)
        fig.add_trace(go.Scatter(x=[n], y=[c.faithfulness], mode="markers", marker=dict(size=13, symbol="star"),
                                 name=f"{name}: chosen ({n})", showlegend=True))
        target = c.target if c.target is not None else target
    if target is not None:
        fig.add_hline(y=target, line_dash="dash", line_color="grey", annotation_text=f"target {target:g}")
    any_c = next(iter(circuits.values()), None)
    xlabel = "components kept (heads + ranked MLPs)" if any_c and any_c.meta.get("rank_mlps") else (
        "heads kept (all MLPs kept)")
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title="faithfulness F (Eq. 2)",
                      margin=dict(l=60, r=20, t=50, b=40))
    return fig


def plot_curve(circuit: Any, *, title: str | None = None) -> Any:
    """One circuit's faithfulness-versus-size sweep with the chosen circuit and the target marked."""
    op = f", operator {circuit.operator}" if circuit.operator else ""
    title = title or (
        f"Faithfulness vs circuit size ({circuit.ablation} ablation{op}; {circuit.model} on {circuit.task})"
    )
    return plot_curves({circuit.ablation: circuit}, title=title)


def plot_effects(effects: Any, *, title: str | None = None) -> Any:
    """Position-averaged effects ``[layer x (H0..Hn, MLP)]`` as a diverging heatmap."""
    h, m = effects.head_scores(), effects.mlp_scores()
    z = np.concatenate([h, m[:, None]], axis=1)
    x = [f"H{i}" for i in effects.heads.index["head"]] + ["MLP"]
    y = [f"L{i}" for i in effects.heads.index["layer"]]
    op = f" operator {effects.operator}," if effects.operator else ""
    title = title or (f"Component effects ({effects.heads.metric}),{op} mean over positions "
                      f"{list(effects.rank_positions)} and seeds {list(effects.seeds)}")
    return heatmap(z, x=x, y=y, title=title, zlabel=effects.heads.metric, transform="auto",
                   xlabel="component (attention heads, then the MLP)", ylabel="layer")


def plot_diagram(circuit: Any, *, title: str | None = None) -> Any:
    """Circuit diagram: layers as rows (embeddings at the bottom, logits at the top), heads and the MLP as nodes.

    Kept components are filled and coloured by their position-averaged effect (when the circuit carries scores),
    the others are hollow grey; kept components are joined to the residual stream they read from and write to.
    """
    import plotly.graph_objects as go

    n_layers = circuit.n_layers or (max([l for l, _ in circuit.heads] + list(circuit.mlps) + [0]) + 1)
    n_heads = circuit.n_heads_total or (max([h for _, h in circuit.heads] + [0]) + 1)
    hs = np.asarray(circuit.meta.get("head_scores") or np.zeros((n_layers, n_heads)), dtype=float)
    ms = np.asarray(circuit.meta.get("mlp_scores") or np.zeros(n_layers), dtype=float)
    kept_h, kept_m = set(circuit.heads), set(circuit.mlps)
    mlp_x = n_heads + 0.8
    fig = go.Figure()
    # residual stream
    fig.add_trace(go.Scatter(x=[-1.2, -1.2], y=[-1, n_layers], mode="lines", line=dict(color="#888", width=6),
                             hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=[-1.2, -1.2], y=[-1, n_layers], mode="markers+text", text=["embed", "logits"],
                             textposition=["bottom center", "top center"], marker=dict(size=14, color="#444"),
                             hoverinfo="skip", showlegend=False))
    # connectors from kept components to the residual stream
    for l, h in sorted(kept_h):
        fig.add_trace(go.Scatter(x=[-1.2, h], y=[l - 0.25, l], mode="lines", line=dict(color="#bbb", width=1),
                                 hoverinfo="skip", showlegend=False))
    for l in sorted(kept_m):
        fig.add_trace(go.Scatter(x=[-1.2, mlp_x], y=[l + 0.15, l + 0.3], mode="lines",
                                 line=dict(color="#bbb", width=1, dash="dot"), hoverinfo="skip", showlegend=False))
    xs, ys, cs, texts, kept_flags, labels = [], [], [], [], [], []
    for l in range(n_layers):
        for h in range(n_heads):
            xs.append(h)
            ys.append(l)
            cs.append(float(hs[l, h]) if hs.shape == (n_layers, n_heads) else 0.0)
            kept_flags.append((l, h) in kept_h)
            labels.append(f"L{l}H{h}")
        xs.append(mlp_x)
        ys.append(l + 0.3)
        cs.append(float(ms[l]) if ms.shape == (n_layers,) else 0.0)
        kept_flags.append(l in kept_m)
        labels.append(f"MLP{l}")
    texts = [f"{lab}: effect {c:.3g}{' (in circuit)' if k else ''}" for lab, c, k in zip(labels, cs, kept_flags)]
    # effects spanning decades (IE: 0.1 ... 1e7) are coloured on a signed log1p scale with raw-unit ticks
    raw_max = max(1e-9, max(abs(c) for c in cs)) if cs else 1.0
    log = pick_transform(np.asarray(cs), "auto") == "log1p"
    if log:
        cs = [float(signed_log1p(np.asarray(c))) for c in cs]
    cmax = max(1e-9, max(abs(c) for c in cs)) if cs else 1.0
    colorbar = (log_colorbar(raw_max, "effect (log scale)") if log
                else dict(title=dict(text="effect", side="top")))
    ki = [i for i, k in enumerate(kept_flags) if k]
    oi = [i for i, k in enumerate(kept_flags) if not k]
    fig.add_trace(go.Scatter(
        x=[xs[i] for i in oi], y=[ys[i] for i in oi], mode="markers", name="ablated",
        marker=dict(size=16, color="white", line=dict(color="#bbb", width=1.5),
                    symbol=["square" if labels[i].startswith("MLP") else "circle" for i in oi]),
        text=[texts[i] for i in oi], hovertemplate="%{text}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=[xs[i] for i in ki], y=[ys[i] for i in ki], mode="markers+text", name="in circuit",
        text=[labels[i] for i in ki], textposition="top center", customdata=[texts[i] for i in ki],
        marker=dict(size=22, color=[cs[i] for i in ki], colorscale=DIVERGING, cmin=-cmax, cmax=cmax,
                    line=dict(color="black", width=1.5), colorbar=colorbar,
                    symbol=["square" if labels[i].startswith("MLP") else "circle" for i in ki]),
        hovertemplate="%{customdata}<extra></extra>",
    ))
    op = f" operator {circuit.operator}," if circuit.operator else ""
    title = title or (f"Circuit:{op} {len(circuit.heads)} heads, {len(circuit.mlps)} MLPs, "
                      f"F = {circuit.faithfulness:.3f} ({circuit.ablation} ablation)")
    fig.update_layout(
        title=title,
        xaxis=dict(tickvals=[-1.2, *range(n_heads), mlp_x], ticktext=["resid", *[f"H{h}" for h in range(n_heads)],
                   "MLP"], showgrid=False, zeroline=False),
        yaxis=dict(tickvals=list(range(n_layers)), ticktext=[f"L{l}" for l in range(n_layers)], showgrid=False,
                   zeroline=False, range=[-1.6, n_layers + 0.6]),
        plot_bgcolor="white", margin=dict(l=60, r=20, t=80, b=40),
        # the legend above the plot, left: never over the colour bar on the right
        legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom"),
        height=max(350, 80 * (n_layers + 2)),
    )
    return fig
