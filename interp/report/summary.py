"""The summary at the top of ``interp report``: model, task, accuracy, circuit size and faithfulness, share of
classified neurons and the strongest heuristic classes, read from what the sections left in ``ctx.results``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from interp._html import esc
from interp.report.base import ReportContext

__all__ = ["summary_html"]


def summary_html(model: Any, ctx: ReportContext) -> str:
    """A short bulleted summary (``<ul>``); lines whose section did not run are left out."""
    r = ctx.results
    cfg = model.cfg
    items = [f"<b>Model</b> <code>{esc(ctx.model_name)}</code>: {int(cfg.n_layers)} layers, "
             f"{int(cfg.n_heads)} heads per layer, d_model {int(cfg.d_model)}"
             + (f", d_mlp {int(cfg.d_mlp)}" if getattr(cfg, "d_mlp", None) else "") + "."]
    task = ctx.task()
    items.append(f"<b>Task</b> <code>{esc(task.name)}</code>, {ctx.n_per_op} clean prompts per operator for "
                 f"patching{' (quick mode: smaller samples)' if ctx.quick else ''}.")
    acc = r.get("accuracy")
    if acc is not None:
        per = ", ".join(f"{esc(op)} {100 * a:.1f}%" for op, a in acc.accuracy.items())
        items.append(f"<b>Accuracy</b> {100 * acc.overall:.1f}% overall ({per}).")
    circuits = r.get("circuits")
    if circuits:
        per = "; ".join(f"{esc(op)}: {len(c.heads)} heads, F = {c.faithfulness:.2f}" for op, c in circuits.items())
        items.append("<b>Circuits</b> (all MLPs plus the heads below, mean ablation; F = faithfulness, 1 = the full "
                     f"model): {per}.")
    neurons = r.get("neurons")
    if neurons is not None:
        cls = neurons.classification
        counts: Counter[str] = Counter()
        for oc in cls.ops.values():
            for name, members in oc.by_heuristic().items():
                counts[name] += len(members)
        top = ", ".join(f"{esc(n)} ({c})" for n, c in counts.most_common(3))
        items.append(f"<b>Neurons</b>: {100 * cls.classified_fraction:.0f}% of the top neurons per layer implement "
                     f"a heuristic of Algorithm 1" + (f"; the largest classes: {top}" if top else "") + ".")
    return "<ul class='summary'>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>"
