"""Tasks: prompt sets with clean/corrupt pairs and answers. Specs: ``arith``, ``arith:+``, ``arith:+-:0-99``.

Level 2 (tasks): may import core and `interp.models`.
"""

from __future__ import annotations

from typing import Any

from interp.errors import TaskError
from interp.tasks.arith import OPERATORS, AccuracyReport, ArithPrompt, ArithTask, apply_op, single_token_limit
from interp.tasks.base import PromptPairs

__all__ = [
    "OPERATORS",
    "AccuracyReport",
    "ArithPrompt",
    "ArithTask",
    "PromptPairs",
    "apply_op",
    "parse_task",
    "single_token_limit",
    "TASK_FAMILIES",
]

TASK_FAMILIES = ("arith", "ioi", "induction")


def parse_task(spec: str, **overrides: Any) -> Any:
    """Build a task from a command-line spec.

    ``arith``, ``arith:+``, ``arith:+-``, ``arith:+:0-99`` -> :class:`ArithTask`; ``ioi`` -> ``IOITask``;
    ``induction`` -> ``InductionTask`` (the latter two are imported lazily).
    """
    family = spec.split(":", 1)[0]
    if family == "arith":
        return ArithTask.from_spec(spec, **overrides)
    if family == "ioi":
        from interp.tasks.ioi import IOITask

        return IOITask.from_spec(spec, **overrides)
    if family == "induction":
        from interp.tasks.induction import InductionTask

        return InductionTask.from_spec(spec, **overrides)
    raise TaskError(f"unknown task family {family!r} in {spec!r}; valid: {', '.join(TASK_FAMILIES)} (e.g. arith:+-)")
