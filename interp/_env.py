"""Process settings applied when `interp` is first imported, before torch is: OpenMP's wait policy, and tqdm.auto
imported without its notebook warning. Level 0 (core): imports nothing from interp."""

import os

# OpenMP threads that wait by sleeping, not spinning: with spinning waits (the default), torch's CPU threads on a
# machine shared with other busy processes wait on each other, and a toy-arith forward pass with 2 threads ran 8x
# slower than with 1 on a 2-core machine with 3 other busy processes; with PASSIVE, 2 threads were as fast as 1
# there (docs/report.md). OpenMP reads this when torch is first imported, so it is set before any import.
# An explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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
