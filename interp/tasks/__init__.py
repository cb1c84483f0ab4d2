"""Tasks: prompt sets with clean/corrupt pairs and answers. Specs: ``arith``, ``arith:+``, ``arith:+-:0-99``,
``ioi``, ``induction``, ``file:PATH.jsonl`` / ``file:PATH.csv`` (your own pairs or operand grid, docs/tasks.md).

Every pipeline takes any object following the task protocol (`Task`; `GridTask` for the neuron heuristics);
`interp.tasks.custom.PairsTask` and `OperandTask` build one from your own data.

Level 2 (tasks): may import core and `interp.models`.
"""

from __future__ import annotations

from typing import Any

from interp.errors import TaskError
from interp.tasks.arith import OPERATORS, AccuracyReport, ArithPrompt, ArithTask, apply_op, single_token_limit
from interp.tasks.base import GridTask, PromptPairs, Task, require

__all__ = [
    "OPERATORS",
    "AccuracyReport",
    "ArithPrompt",
    "ArithTask",
    "GridTask",
    "PromptPairs",
    "Task",
    "require",
    "apply_op",
    "parse_task",
    "single_token_limit",
    "TASK_FAMILIES",
]

TASK_FAMILIES = ("arith", "ioi", "induction", "file")


def parse_task(spec: str, **overrides: Any) -> Any:
    """Build a task from a command-line spec.

    ``arith``, ``arith:+``, ``arith:+-``, ``arith:+:0-99`` -> :class:`ArithTask`; ``ioi`` -> ``IOITask``;
    ``induction`` -> ``InductionTask`` (the latter two are imported lazily); ``file:PATH.jsonl`` or
    ``file:PATH.csv`` -> `interp.tasks.custom.PairsTask` (pair columns) or ``OperandTask`` (grid columns).
    """
    family = spec.split(":", 1)[0]
    if family == "file":
        from interp.tasks.files import load_task_file

        path = spec.split(":", 1)[1] if ":" in spec else ""
        if not path:
            raise TaskError(f"task spec {spec!r} names no file; use file:PATH.jsonl or file:PATH.csv")
        for key, default in (("number_mode", "auto"), ("prefix", "")):
            if key in overrides and overrides.pop(key) != default:
                raise TaskError(f"{key!r} applies to arithmetic tasks only, not to {spec!r}")
        return load_task_file(path, **overrides)
    if family == "arith":
        return ArithTask.from_spec(spec, **overrides)
    if family == "ioi":
        from interp.tasks.ioi import IOITask

        return IOITask.from_spec(spec, **overrides)
    if family == "induction":
        from interp.tasks.induction import InductionTask

        return InductionTask.from_spec(spec, **overrides)
    raise TaskError(f"unknown task family {family!r} in {spec!r}; valid: {', '.join(TASK_FAMILIES)} "
                    "(e.g. arith:+- or file:pairs.jsonl)")
