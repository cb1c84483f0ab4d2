"""``interp report``: one self-contained HTML file that says which components carry a model's arithmetic.

The report is a list of sections; each section is a function ``(model, ctx) -> Section`` in its own module of this
package (`arith`, `circuits`, `neurons`, `pretrained`; opt-in `edges`, `explain`), built on `interp.report.base`.
The plotly library is embedded once, so the file renders offline in any browser with no system packages. A new
capability adds its section module and lists it in `SECTIONS` / `PRETRAINED_SECTIONS` / `OPTIONAL_SECTIONS` here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interp._html import esc
from interp._io import write_text_atomic
from interp.errors import TaskError, UnknownNameError
from interp.progress import Stages, load_timings, save_timings
from interp.report.arith import accuracy_sample, accuracy_section, patching_section
from interp.report.base import ReportContext, Section, default_task, render_html, single_token_numbers
from interp.report.circuits import circuit_section
from interp.report.custom import custom_section
from interp.report.edges import edges_section
from interp.report.explain import explain_section
from interp.report.neurons import neuron_section
from interp.report.pretrained import concepts_section, ioi_section
from interp.report.summary import summary_html

__all__ = ["build_report", "check_report_task", "SECTIONS", "PRETRAINED_SECTIONS", "OPTIONAL_SECTIONS",
           "CUSTOM_SECTIONS"]

# sections for models whose numbers are single tokens (toy-arith, Llama-3-like tokenizers)
SECTIONS: list[Callable[[Any, ReportContext], Section]] = [
    accuracy_section,
    patching_section,
    circuit_section,
    neuron_section,
]
# sections for pretrained models with multi-token numbers (SmolLM2): the heuristics method does not apply there
PRETRAINED_SECTIONS: list[Callable[[Any, ReportContext], Section]] = [
    accuracy_section,
    patching_section,
    concepts_section,
    ioi_section,
]
# sections for your own task (``--task file:PATH``): the arithmetic sections do not apply to clean/corrupt pairs
CUSTOM_SECTIONS: list[Callable[[Any, ReportContext], Section]] = [custom_section]
# one progress line per section (interp.progress.Stages)
STAGE_LABELS: dict[str, str] = {
    "accuracy": "accuracy (greedy, every prompt of the grid; with circuits also their mean activations)",
    "accuracy_sample": "accuracy (greedy, a seeded sample of 300 prompts per operator)",
    "patching": "activation patching (heads and MLPs at every position, per operator)",
    "circuit": "circuits (effects over seeds, head search, faithfulness under 3 ablations)",
    "neuron": "neurons (importance, Algorithm 1, knockouts)",
    "concepts": "concept neurons",
    "ioi": "IOI circuit",
    "edges": "edge circuits (EAP, EAP-IG)",
    "explain": "explanations",
}
# opt-in sections (``interp report --with edges,explain``), appended after the default ones; they cost tens of
# seconds each on the toy model and minutes on SmolLM2, so the first report stays fast
OPTIONAL_SECTIONS: dict[str, Callable[[Any, ReportContext], Section]] = {
    "edges": edges_section,
    "explain": explain_section,
}



def check_report_task(task_spec: str | None) -> None:
    """The report runs on an arithmetic task (``arith...``) or your own task file (``file:PATH``); anything else
    (``ioi``, ``induction``) is refused with what to use instead, before any model loads."""
    if task_spec is None:
        return
    family = str(task_spec).split(":", 1)[0]
    if family in ("arith", "file"):
        return
    raise TaskError(
        f"interp report --task takes an arithmetic task ('arith', 'arith:+-', 'arith:+:0-99') or your own task file "
        f"('file:PATH.jsonl'); got {task_spec!r}. The IOI circuit is already a section of the report of a pretrained "
        f"model (e.g. --model smollm2-135m); for IOI or induction alone use `interp patch --task ioi:32` or "
        f"`interp circuit --task ioi:32`")


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
    extra: list[str] | tuple[str, ...] = (),
) -> Path:
    """Run every section and write the HTML report atomically to ``out``.

    ``task_spec=None`` picks `default_task` for the model (all four operators on 0-99 for single-token-number
    models; a few-shot single-digit task otherwise). ``sections=None`` picks `SECTIONS` (patching, circuits, neuron
    heuristics) for single-token-number models and `PRETRAINED_SECTIONS` (patching, concept neurons, IOI) otherwise;
    ``extra`` appends named `OPTIONAL_SECTIONS` (``edges``, ``explain``).
    """
    unknown = [e for e in extra if e not in OPTIONAL_SECTIONS]
    if unknown:
        raise UnknownNameError(f"unknown report section(s) {unknown}; valid: {sorted(OPTIONAL_SECTIONS)}")
    extra = list(dict.fromkeys(extra))  # --with edges,edges: one edges section
    check_report_task(task_spec)
    t0 = time.time()
    if task_spec is None:
        task_spec, auto_overrides = default_task(model)
        task_overrides = {**auto_overrides, **(task_overrides or {})}
    ctx = ReportContext(model_name=model_name, task_spec=task_spec, n_per_op=n_per_op, seed=seed,
                        progress=progress, quick=quick, task_overrides=dict(task_overrides or {}))
    if sections is None and task_spec.startswith("file:"):
        sections = CUSTOM_SECTIONS
    if sections is None:
        sections = SECTIONS if single_token_numbers(model) else PRETRAINED_SECTIONS
    sections = list(sections) + [OPTIONAL_SECTIONS[e] for e in extra]
    ctx.plan = tuple(fn.__name__.removesuffix("_section") for fn in sections)
    stages = Stages(len(sections), enabled=progress)
    known = load_timings()
    done = []
    for fn in sections:
        name = fn.__name__.removesuffix("_section")
        key = f"report:{model_name}:{'quick' if quick else 'full'}:{name}"
        sample = name == "accuracy" and accuracy_sample(model, ctx)
        label = STAGE_LABELS["accuracy_sample"] if sample else STAGE_LABELS.get(name, name)
        with stages.stage(label, estimate=known.get(key)):
            done.append(fn(model, ctx))
        known[key] = stages.times[label]
    save_timings(known)
    meta = (f"model <code>{esc(model_name)}</code> · task <code>{esc(task_spec)}</code> · seed {seed} · "
            f"{'quick mode · ' if quick else ''}generated by interp in {time.time() - t0:.0f} s")
    return write_text_atomic(out, render_html(f"interp report: {model_name}", done, meta,
                                              summary=summary_html(model, ctx)))
