"""interp: mechanistic interpretability on TransformerLens 4.

Load a model, build a task, patch::

    import interp
    model = interp.load_model("toy-arith")
    pairs = interp.parse_task("arith:+").pairs(model, n_per_op=50)
    result = interp.patch(model, pairs, site="heads", positions="all")
    result.plot()

The package map (levels, the one-way import rule) is in docs/CONTRIBUTING.md; this facade re-exports public names
of levels 0-3.
"""

from interp import _env  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch is imported)
from interp.errors import InterpError, ModelLoadError, ShapeError, TaskError, UnknownNameError
from interp.metrics import METRICS
from interp.models import list_models, load_model
from interp.patching import PatchResult, patch
from interp.sites import Site
from interp.tasks import ArithTask, PromptPairs, parse_task

__version__ = "0.1.0"

__all__ = [
    "METRICS",
    "ArithTask",
    "InterpError",
    "ModelLoadError",
    "PatchResult",
    "PromptPairs",
    "ShapeError",
    "Site",
    "TaskError",
    "UnknownNameError",
    "list_models",
    "load_model",
    "parse_task",
    "patch",
]
