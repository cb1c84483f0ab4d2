"""The parts every ``interp report`` section shares: `Section`, `ReportContext`, the default task, HTML rendering.

Every section module of this package imports this module (and lower levels) only; `interp.report.build` imports
the sections. Nothing here imports a section, so the package has no import circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interp._html import esc

__all__ = ["Section", "ReportContext", "render_html", "default_task", "single_token_numbers", "grid_pass",
           "FEW_SHOT_SPEC", "FEW_SHOT_PREFIX"]


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
    # names of the sections this report runs (``circuit`` for `circuit_section`), so a section can compute
    # something a later one needs in the same pass (`grid_pass`)
    plan: tuple[str, ...] = ()
    _task: Any = field(default=None, repr=False, compare=False)

    def task(self) -> Any:
        """The arithmetic task every section uses (spec plus overrides such as a few-shot prefix).

        One instance for the whole report, so its caches (tokenized grid, correctness of every prompt, correct
        prompts) are computed once and shared by all sections."""
        if self._task is None:
            from interp.tasks import parse_task

            self._task = parse_task(self.task_spec, **self.task_overrides)
        return self._task


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


def grid_pass(model: Any, ctx: ReportContext) -> bool:
    """The report's shared grid pass (`interp.circuits.ablation.grid_pass`): the mean cache of the circuit section
    (``ctx.results["mean_cache"]``) and the greedy correctness of every legal prompt, recorded on the shared task,
    from one forward pass over the grid. Returns False (and does nothing) where it does not apply."""
    if "mean_cache" in ctx.results:
        return True
    from interp.circuits.ablation import grid_pass as shared

    mean = shared(model, ctx.task())
    if mean is None:
        return False
    ctx.results["mean_cache"] = mean
    return True


# ---------------------------------------------------------------------------------------------------- rendering

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222} h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f4f4f4} code{background:#f4f4f4;padding:0 .2em} .meta{color:#666;font-size:.9em}
caption{caption-side:top;text-align:left;color:#444;font-size:.92em;padding:.2em 0 .4em;width:max-content;
max-width:min(60em,90vw)}
.summary{background:#f7f9fc;border:1px solid #dde4ee;padding:.8em 1.2em .8em 2.2em;border-radius:4px}
nav.toc{margin:1em 0} nav.toc ol{margin:.3em 0} .figure{margin:1em 0 1.6em}
"""


def _anchor(i: int, title: str) -> str:
    import re

    return f"s{i}-" + (re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "section")


def render_html(title: str, sections: list[Section], meta: str = "", *, summary: str = "") -> str:
    """Render sections as one self-contained HTML page (plotly.js embedded once): the title, ``summary`` (HTML),
    a table of contents, then each section with its paragraphs and figures."""
    anchors = [_anchor(i, sec.title) for i, sec in enumerate(sections, 1)]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1><p class='meta'>{meta}</p>"]
    if summary:
        parts.append(f"<h2 id='summary'>Summary</h2>{summary}")
    if len(sections) > 1:
        items = "".join(f"<li><a href='#{a}'>{esc(sec.title)}</a></li>" for a, sec in zip(anchors, sections))
        parts.append(f"<nav class='toc'><b>Contents</b><ol>{items}</ol></nav>")
    first = True
    for a, sec in zip(anchors, sections):
        parts.append(f"<h2 id='{a}'>{esc(sec.title)}</h2>")
        parts.extend(p if p.lstrip().startswith("<") else f"<p>{p}</p>" for p in sec.paragraphs)
        for fig in sec.figures:
            parts.append("<div class='figure'>" + fig.to_html(
                full_html=False, include_plotlyjs=True if first else False, config={"displaylogo": False,
                                                                                   "responsive": True}) + "</div>")
            first = False
    parts.append("</body></html>")
    return "\n".join(parts)
