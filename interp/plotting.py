"""Plotly figures for results. Functions take a result and return a `Figure`; they never show or write files."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_patch_result", "heatmap", "signed_log1p", "DIVERGING", "TRANSFORMS"]

DIVERGING = "RdBu_r"


def heatmap(
    z: np.ndarray,
    *,
    x: list[str],
    y: list[str],
    title: str = "",
    zlabel: str = "effect",
    symmetric: bool = True,
) -> Any:
    """A diverging heatmap centred at 0 (for signed effects)."""
    import plotly.graph_objects as go

    zmax = float(np.nanmax(np.abs(z))) if z.size and symmetric else None
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=y,
            colorscale=DIVERGING if symmetric else "Viridis",
            zmid=0 if symmetric else None,
            zmin=-zmax if zmax else None,
            zmax=zmax if zmax else None,
            colorbar=dict(title=zlabel),
            hovertemplate="%{y} %{x}: %{z:.4g}<extra></extra>",
        )
    )
    fig.update_layout(title=title, yaxis=dict(autorange="reversed"), margin=dict(l=60, r=20, t=50, b=40))
    return fig


TRANSFORMS = ("none", "log1p")


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """sign(x) * log(1 + |x|): the paper's display of indirect effects (Fig. 2a), which span many decades."""
    return np.sign(x) * np.log1p(np.abs(x))


def plot_patch_result(result: Any, *, title: str | None = None, transform: str = "none") -> Any:
    """Heatmap of a `PatchResult`: layer x position, or layer x head / neuron with one panel per position.

    ``transform="log1p"`` shows sign(x)·log(1+|x|), as the paper does for indirect effects.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from interp.errors import unknown

    if transform not in TRANSFORMS:
        raise unknown("transform", transform, TRANSFORMS)
    title = title or f"{result.site} patching, metric {result.metric} ({result.model} on {result.task})"
    effects = signed_log1p(result.effects) if transform == "log1p" else result.effects
    zlabel = f"log1p({result.metric})" if transform == "log1p" else result.metric
    axes = result.axes
    if len(axes) == 1:  # [layer]: a component patched at every position at once (positions="together")
        return heatmap(np.asarray(effects)[:, None], x=["all positions"], y=result.labels[axes[0]], title=title,
                       zlabel=zlabel)
    if len(axes) == 2:
        return heatmap(effects, x=result.labels[axes[1]], y=result.labels[axes[0]], title=title, zlabel=zlabel)
    # [layer pos unit]: one panel per position
    n_pos = len(result.index["pos"])
    unit_axis = axes[2]
    fig = make_subplots(rows=1, cols=n_pos, subplot_titles=result.labels["pos"], shared_yaxes=True,
                        horizontal_spacing=0.02)
    zmax = float(np.nanmax(np.abs(effects))) or 1.0
    for i in range(n_pos):
        fig.add_trace(
            go.Heatmap(
                z=effects[:, i, :],
                x=result.labels[unit_axis],
                y=result.labels["layer"],
                colorscale=DIVERGING,
                zmid=0,
                zmin=-zmax,
                zmax=zmax,
                showscale=i == n_pos - 1,
                colorbar=dict(title=zlabel),
                hovertemplate=f"{result.labels['pos'][i]} %{{y}} %{{x}}: %{{z:.4g}}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, margin=dict(l=60, r=20, t=70, b=40))
    return fig
