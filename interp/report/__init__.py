"""Level 7: the HTML report (``interp report``).

`base` holds `Section`, `ReportContext` and the rendering every section uses; one module per section (`arith`,
`circuits`, `neurons`, `pretrained`, and the opt-in `edges` and `explain`); `build` holds `build_report` and the
`SECTIONS` lists and imports the sections. Sections import `interp.report.base` and any lower level (core, models,
tasks, patching, circuits, neurons, vocab, explain); never `interp.report.build` nor `interp.cli`.
"""

from interp.report.arith import accuracy_section, patching_section
from interp.report.base import (
    FEW_SHOT_PREFIX,
    FEW_SHOT_SPEC,
    ReportContext,
    Section,
    default_task,
    render_html,
    single_token_numbers,
)
from interp.report.build import OPTIONAL_SECTIONS, PRETRAINED_SECTIONS, SECTIONS, build_report

__all__ = [
    "FEW_SHOT_PREFIX",
    "FEW_SHOT_SPEC",
    "OPTIONAL_SECTIONS",
    "PRETRAINED_SECTIONS",
    "ReportContext",
    "SECTIONS",
    "Section",
    "accuracy_section",
    "build_report",
    "default_task",
    "patching_section",
    "render_html",
    "single_token_numbers",
]
