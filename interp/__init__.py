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

import os as _os

# OpenMP threads that wait by sleeping, not spinning: with spinning waits (the default), torch's CPU threads on a
# machine shared with other busy processes wait on each other, and a toy-arith forward pass with 2 threads ran 8x
# slower than with 1 on a 2-core machine with 3 other busy processes; with PASSIVE, 2 threads were as fast as 1
# there (docs/benchmarks.md). OpenMP reads this when torch is first imported, so it is set before any import.
# An explicit OMP_WAIT_POLICY in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _quiet_tqdm_auto() -> None:
    """Import tqdm.auto once without its "IProgress not found" warning. Dependencies (transformers, ...) import it;
    in a notebook without ipywidgets it then falls back to tqdm's plain text bars, which is what we want there
    (``pip install -e ".[notebooks]"`` brings ipywidgets and widget bars)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        try:
            import tqdm.auto  # noqa: F401
        except ImportError:  # pragma: no cover - tqdm is a dependency
            pass


_quiet_tqdm_auto()

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
