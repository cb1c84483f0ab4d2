"""Plotly figures for results. Functions take a result and return a `Figure`; they never show or write files.

Effects that span decades (indirect effects run from 0.1 to 1e7 on a confident model) are drawn on a signed
log1p colour scale, sign(x)·log(1+|x|) as the paper's Fig. 2a, with the colour bar labelled in the raw units
(`log_colorbar`); ``transform="auto"`` picks it when the values span at least three decades.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_patch_result", "heatmap", "signed_log1p", "log_colorbar", "pick_transform", "DIVERGING",
           "TRANSFORMS"]

DIVERGING = "RdBu_r"
TRANSFORMS = ("none", "log1p", "auto")


def signed_log1p(x: np.ndarray) -> np.ndarray:
    """sign(x) * log(1 + |x|): the paper's display of indirect effects (Fig. 2a), which span many decades."""
    return np.sign(x) * np.log1p(np.abs(x))


def pick_transform(z: np.ndarray, transform: str = "auto") -> str:
    """``"log1p"`` or ``"none"``; ``"auto"`` is log1p when the largest |value| is above 30 and at least 1000 times
    the median nonzero |value| (a linear scale would then leave all but a few cells white)."""
    from interp.errors import unknown

    if transform not in TRANSFORMS:
        raise unknown("transform", transform, TRANSFORMS)
    if transform != "auto":
        return transform
    a = np.abs(np.asarray(z, dtype=float))
    a = a[np.isfinite(a) & (a > 0)]
    if a.size == 0:
        return "none"
    return "log1p" if a.max() > 30 and a.max() >= 1000 * np.median(a) else "none"


def log_colorbar(vmax: float, title: str, *, signed: bool = True) -> dict[str, Any]:
    """A colour bar for values drawn as `signed_log1p`: ticks at 0, ±1, ±10, ±100, … (up to ``vmax`` in raw
    units), labelled with the raw values."""
    vmax = float(vmax) if np.isfinite(vmax) and vmax > 0 else 1.0
    decades = [10.0 ** k for k in range(0, int(np.floor(np.log10(vmax))) + 1)]
    if len(decades) > 3:  # 1 sits too close to 0 on a log1p axis once there are many decades
        decades = decades[1:]
    if len(decades) > 6:  # at most ~6 labelled decades: every other one, keeping the largest
        decades = decades[::-2][::-1]
    raw = [0.0] + decades
    vals = list(raw)
    if signed:
        vals = [-v for v in reversed(raw[1:])] + raw

    def lab(v: float) -> str:
        a = abs(v)
        s = "0" if a == 0 else (f"{a:g}" if a < 1e4 else f"1e{int(round(np.log10(a)))}")
        return ("−" if v < 0 else "") + s

    return dict(title=dict(text=title.replace(" (log scale)", "<br>(log scale)"), side="top"),
                tickvals=[float(signed_log1p(np.array(v))) for v in vals],
                ticktext=[lab(v) for v in vals])


def heatmap(
    z: np.ndarray,
    *,
    x: list[str],
    y: list[str],
    title: str = "",
    zlabel: str = "effect",
    symmetric: bool = True,
    transform: str = "none",
    xlabel: str = "",
    ylabel: str = "",
) -> Any:
    """A diverging heatmap centred at 0 (for signed effects), with axis titles ``xlabel``/``ylabel``.

    ``transform="log1p"`` (or ``"auto"`` when the values span decades, `pick_transform`) colours by
    sign(z)·log(1+|z|) with a colour bar labelled in raw units; hover shows the raw value either way.
    """
    import plotly.graph_objects as go

    z = np.asarray(z, dtype=float)
    tr = pick_transform(z, transform)
    shown = signed_log1p(z) if tr == "log1p" else z
    zmax = float(np.nanmax(np.abs(shown))) if shown.size and symmetric else None
    if tr == "log1p":
        colorbar = log_colorbar(float(np.nanmax(np.abs(z))) if z.size else 1.0, f"{zlabel} (log scale)")
    else:
        colorbar = dict(title=dict(text=zlabel, side="top"))
    fig = go.Figure(
        go.Heatmap(
            z=shown,
            x=x,
            y=y,
            customdata=z,
            colorscale=DIVERGING if symmetric else "Viridis",
            zmid=0 if symmetric else None,
            zmin=-zmax if zmax else None,
            zmax=zmax if zmax else None,
            colorbar=colorbar,
            hovertemplate="%{y} %{x}: %{customdata:.4g}<extra></extra>",
        )
    )
    fig.update_layout(title=title, yaxis=dict(autorange="reversed", title=ylabel), xaxis=dict(title=xlabel),
                      margin=dict(l=70, r=20, t=60, b=60))
    return fig


_AXIS_TITLES = {"layer": "layer", "pos": "token position", "head": "head", "neuron": "neuron"}


def plot_patch_result(result: Any, *, title: str | None = None, transform: str = "auto") -> Any:
    """Heatmap of a `PatchResult`: layer x position, or layer x head / neuron with one panel per position.

    ``transform="log1p"`` shows sign(x)·log(1+|x|), as the paper does for indirect effects; ``"auto"`` (default)
    picks it when the effects span three decades or more (`pick_transform`); the colour bar is labelled in raw units.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    tr = pick_transform(result.effects, transform)
    scale = " (log colour scale)" if tr == "log1p" else ""
    title = title or f"{result.site} patching, metric {result.metric} ({result.model} on {result.task}){scale}"
    axes = result.axes
    if len(axes) == 1:  # [layer]: a component patched at every position at once (positions="together")
        return heatmap(np.asarray(result.effects)[:, None], x=["all positions"], y=result.labels[axes[0]],
                       title=title, zlabel=result.metric, transform=tr, xlabel="",
                       ylabel=_AXIS_TITLES.get(axes[0], axes[0]))
    if len(axes) == 2:
        return heatmap(result.effects, x=result.labels[axes[1]], y=result.labels[axes[0]], title=title,
                       zlabel=result.metric, transform=tr, xlabel=_AXIS_TITLES.get(axes[1], axes[1]),
                       ylabel=_AXIS_TITLES.get(axes[0], axes[0]))
    # [layer pos unit]: one panel per position
    effects = signed_log1p(result.effects) if tr == "log1p" else result.effects
    n_pos = len(result.index["pos"])
    unit_axis = axes[2]
    fig = make_subplots(rows=1, cols=n_pos, subplot_titles=[f"pos {p}" for p in result.labels["pos"]],
                        shared_yaxes=True,
                        horizontal_spacing=0.02)
    zmax = float(np.nanmax(np.abs(effects))) or 1.0
    if tr == "log1p":
        colorbar = log_colorbar(float(np.nanmax(np.abs(result.effects))), f"{result.metric} (log scale)")
    else:
        colorbar = dict(title=dict(text=result.metric, side="top"))
    for i in range(n_pos):
        fig.add_trace(
            go.Heatmap(
                z=effects[:, i, :],
                customdata=result.effects[:, i, :],
                x=result.labels[unit_axis],
                y=result.labels["layer"],
                colorscale=DIVERGING,
                zmid=0,
                zmin=-zmax,
                zmax=zmax,
                showscale=i == n_pos - 1,
                colorbar=colorbar,
                hovertemplate=f"{result.labels['pos'][i]} %{{y}} %{{x}}: %{{customdata:.4g}}<extra></extra>",
            ),
            row=1,
            col=i + 1,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(title_text="layer", row=1, col=1)
    unit_title = _AXIS_TITLES.get(unit_axis, unit_axis)
    for i in range(n_pos):
        fig.update_xaxes(title_text=unit_title, row=1, col=i + 1)
    # subplot titles name the token position: a little above the panels, clear of the top tick labels
    for ann in fig.layout.annotations:
        ann.update(yshift=6, font=dict(size=12))
    fig.update_layout(title=dict(text=title, y=0.97, yanchor="top"), margin=dict(l=70, r=20, t=90, b=60))
    return fig
