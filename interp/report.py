"""``interp report``: one self-contained HTML file that says which components carry a model's arithmetic.

The report is a list of sections; each section is a function ``(model, ctx) -> Section``. The plotly library is
embedded once, so the file renders offline in any browser with no system packages. Later capabilities (circuits,
neurons, concepts) add their own sections to `SECTIONS`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp._html import esc, table
from interp._io import write_text_atomic

__all__ = ["Section", "ReportContext", "build_report", "SECTIONS", "render_html"]


@dataclass
class Section:
    """A report section: a title, paragraphs of HTML and plotly figures."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[Any] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportContext:
    """Settings shared by the sections and the data they leave for later sections (``results``)."""

    model_name: str
    task_spec: str = "arith"
    n_per_op: int = 50
    seed: int = 0
    progress: bool = True
    quick: bool = False
    task_overrides: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    def task(self) -> Any:
        """The arithmetic task every section uses (spec plus overrides such as a few-shot prefix)."""
        from interp.tasks import parse_task

        return parse_task(self.task_spec, **self.task_overrides)


# A model whose numbers are not single tokens gets a task it can do: small operands and a few-shot prefix.
FEW_SHOT_SPEC = "arith:+-*:0-9"
FEW_SHOT_PREFIX = "3+4=7\n8-5=3\n2*3=6\n6+1=7\n9-4=5\n4*2=8\n"


def single_token_numbers(model: Any) -> bool:
    """Whether every number 0-99 is one token for ``model`` (the setting of the heuristics method)."""
    from interp.tasks import single_token_limit

    tok = getattr(model, "tokenizer", None)
    return tok is not None and single_token_limit(tok, search_max=200) >= 99


def default_task(model: Any) -> tuple[str, dict[str, Any]]:
    """``("arith", {})`` for single-token-number models (toy-arith), else a few-shot single-digit task."""
    if single_token_numbers(model):
        return "arith", {}
    return FEW_SHOT_SPEC, {"prefix": FEW_SHOT_PREFIX}


# ---------------------------------------------------------------------------------------------------- sections


def accuracy_section(model: Any, ctx: ReportContext) -> Section:
    task = ctx.task()
    max_prompts = 300 if ctx.quick or int(model.cfg.n_layers) > 8 else None
    acc = task.accuracy(model, max_prompts=max_prompts)
    ctx.results["accuracy"] = acc
    rows = [[op, acc.n_total[op], acc.n_correct[op], f"{100 * acc.accuracy[op]:.1f}%"] for op in task.operators]
    scope = "every legal prompt of the grid" if max_prompts is None else f"a seeded sample of {max_prompts} prompts"
    p = [
        f"Greedy accuracy of <b>{esc(ctx.model_name)}</b> on <code>{esc(task.name)}</code>, template "
        f"<code>{esc(task.template)}</code>"
        + (f" after the few-shot prefix <code>{esc(task.prefix)}</code>" if task.prefix else "")
        + f", over {scope} per operator. Patching below uses correct prompts only.",
        table(rows, ["operator", "prompts", "correct", "accuracy"]),
    ]
    return Section("Accuracy", p, data={"accuracy": acc.to_dict()})


def patching_section(model: Any, ctx: ReportContext) -> Section:
    """Heads and MLPs at every position, per operator, by exact patching (metric: indirect effect, Eq. 1)."""
    from interp.patching import patch

    task = ctx.task()
    pairs = task.pairs(model, n_per_op=ctx.n_per_op, seed=ctx.seed, corrupt_from="all")
    sec = Section("Which components carry the answer: activation patching")
    sec.paragraphs.append(
        "Each cell is the mean <i>indirect effect</i> (Nikankin et al. 2025, Eq. 1) of replacing one component's "
        "activation at one token position of a correct clean prompt by its value on a corrupt prompt (another "
        "correct prompt, drawn from all operators, with a different answer). Large values: the component at that "
        f"position carries information the answer needs. {ctx.n_per_op} clean prompts per operator; heads patch "
        "<code>attn.hook_z</code>, MLPs patch the whole <code>mlp.hook_post</code> vector. Because Eq. 1 divides "
        "by probabilities that a confident model puts near zero, effects span many decades; the maps show "
        "sign·log(1+IE) as the paper's Fig. 2a does, the tables the raw means."
    )
    # positions of the problem itself (never a few-shot prefix); on large models heads at the last position only,
    # as in the paper's Fig. 2a
    problem = [i for i, lab in enumerate(pairs.position_labels) if lab != "BOS" and not lab.startswith("prefix")]
    large = int(model.cfg.n_layers) * int(model.cfg.n_heads) > 64
    head_positions = "last" if large else problem
    if large:
        sec.paragraphs.append("This is a large model: heads are patched at the last position only, MLPs at every "
                              "position of the problem.")
    per_op: dict[str, dict[str, Any]] = {}
    summary_rows = []
    for op, sub in pairs.by_group().items():
        heads = patch(model, sub, site="heads", positions=head_positions, metric="ie", progress=ctx.progress,
                      model_name=ctx.model_name)
        mlps = patch(model, sub, site="mlps", positions=problem, metric="ie", progress=ctx.progress,
                     model_name=ctx.model_name)
        per_op[op] = {"heads": heads, "mlps": mlps}
        sec.figures.append(mlps.plot(title=f"MLPs (hook_post), operator {op}: log1p(IE) by layer and position",
                                     transform="log1p"))
        sec.figures.append(heads.plot(title=f"Attention heads (hook_z), operator {op}: log1p(IE) per position",
                                      transform="log1p"))
        top_h = ", ".join(f"{lab} ({v:.3g})" for lab, v in heads.top(3))
        top_m = ", ".join(f"{lab} ({v:.3g})" for lab, v in mlps.top(3))
        summary_rows.append([op, sub.n, top_m, top_h])
    ctx.results["patching"] = per_op
    sec.paragraphs.append(table(summary_rows, ["operator", "prompts", "top MLP sites", "top head sites"]))
    sec.paragraphs.append(_summary_text(per_op))
    return sec


def _summary_text(per_op: dict[str, dict[str, Any]]) -> str:
    """A short written reading of the maps: MLP vs head mass, and where (which positions) effects sit."""
    import numpy as np

    lines = []
    for op, d in per_op.items():
        h, m = d["heads"], d["mlps"]
        last = h.index["pos"][-1]
        head_last = h.values(pos=last)
        mlp_max, head_max = float(np.max(m.effects)), float(np.max(h.effects))
        li, pi = np.unravel_index(int(np.argmax(m.effects)), m.effects.shape)
        n_big_heads = int((head_last > 0.1 * max(head_max, 1e-9)).sum())
        lines.append(
            f"<li><b>{esc(op)}</b>: strongest MLP site {esc(m.labels['layer'][li])} at position "
            f"{esc(m.labels['pos'][pi])} (IE {mlp_max:.3g}); strongest head site IE {head_max:.3g}; "
            f"{n_big_heads} of {head_last.size} heads at the last position reach 10% of the strongest head effect.</li>"
        )
    ratio = [
        float(np.max(d["mlps"].effects)) / max(float(np.max(d["heads"].effects)), 1e-9) for d in per_op.values()
    ]
    verdict = (
        "MLPs dominate: their strongest effect exceeds the strongest head's for every operator"
        if all(r > 1 for r in ratio)
        else "Heads and MLPs both carry large effects"
    )
    return f"<p><b>Summary.</b> {verdict}.</p><ul>{''.join(lines)}</ul>"


def _circuit_section(model: Any, ctx: ReportContext) -> Section:
    from interp.circuits.report_section import circuit_section

    return circuit_section(model, ctx)


def _neuron_section(model: Any, ctx: ReportContext) -> Section:
    from interp.neurons.report_section import neuron_section

    return neuron_section(model, ctx)


def _concepts_section(model: Any, ctx: ReportContext) -> Section:
    from interp.pretrained_report import concepts_section

    return concepts_section(model, ctx)


def _ioi_section(model: Any, ctx: ReportContext) -> Section:
    from interp.pretrained_report import ioi_section

    return ioi_section(model, ctx)


# sections for models whose numbers are single tokens (toy-arith, Llama-3-like tokenizers)
SECTIONS: list[Callable[[Any, ReportContext], Section]] = [
    accuracy_section,
    patching_section,
    _circuit_section,
    _neuron_section,
]
# sections for pretrained models with multi-token numbers (SmolLM2): the heuristics method does not apply there
PRETRAINED_SECTIONS: list[Callable[[Any, ReportContext], Section]] = [
    accuracy_section,
    patching_section,
    _concepts_section,
    _ioi_section,
]


# ---------------------------------------------------------------------------------------------------- rendering

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222} h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f4f4f4} code{background:#f4f4f4;padding:0 .2em} .meta{color:#666;font-size:.9em}
"""


def render_html(title: str, sections: list[Section], meta: str = "") -> str:
    """Render sections as one self-contained HTML page (plotly.js embedded once)."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1><p class='meta'>{meta}</p>"]
    first = True
    for sec in sections:
        parts.append(f"<h2>{esc(sec.title)}</h2>")
        parts.extend(p if p.lstrip().startswith("<") else f"<p>{p}</p>" for p in sec.paragraphs)
        for fig in sec.figures:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=True if first else False,
                                     config={"displaylogo": False}))
            first = False
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(
    model: Any,
    out: str | os.PathLike[str],
    *,
    model_name: str,
    task_spec: str | None = None,
    task_overrides: dict[str, Any] | None = None,
    n_per_op: int = 50,
    seed: int = 0,
    progress: bool = True,
    quick: bool = False,
    sections: list[Callable[[Any, ReportContext], Section]] | None = None,
) -> Path:
    """Run every section and write the HTML report atomically to ``out``.

    ``task_spec=None`` picks `default_task` for the model (all four operators on 0-99 for single-token-number
    models; a few-shot single-digit task otherwise). ``sections=None`` picks `SECTIONS` (patching, circuits, neuron
    heuristics) for single-token-number models and `PRETRAINED_SECTIONS` (patching, concept neurons, IOI) otherwise.
    """
    t0 = time.time()
    if task_spec is None:
        task_spec, auto_overrides = default_task(model)
        task_overrides = {**auto_overrides, **(task_overrides or {})}
    ctx = ReportContext(model_name=model_name, task_spec=task_spec, n_per_op=n_per_op, seed=seed,
                        progress=progress, quick=quick, task_overrides=dict(task_overrides or {}))
    if sections is None:
        sections = SECTIONS if single_token_numbers(model) else PRETRAINED_SECTIONS
    done = [fn(model, ctx) for fn in sections]
    meta = (f"model <code>{esc(model_name)}</code> · task <code>{esc(task_spec)}</code> · seed {seed} · "
            f"generated by interp in {time.time() - t0:.0f} s")
    return write_text_atomic(out, render_html(f"interp report: {model_name}", done, meta))
