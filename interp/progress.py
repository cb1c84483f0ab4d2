"""Progress a user can see anywhere: one line per stage on stderr, periodic lines instead of bars off a terminal.

Long jobs (``interp report``, ``interp neurons``, ``interp circuit``) are split into a few named stages::

    stages = Stages(5, enabled=True)
    with stages.stage("neuron importance (AtP, 4 ops)", estimate=12.0):
        ...

prints ``[2/5] neuron importance (AtP, 4 ops) … (~12 s)`` when the stage starts and
``[2/5] neuron importance (AtP, 4 ops) … 12.3 s (total 31.0 s)`` when it ends, on stderr, whether or not stderr is a
terminal, so a log file or a CI job shows what is running. `bar` wraps an iterable: a tqdm bar on a terminal (or in
a notebook, where tqdm's widget needs ipywidgets; without it tqdm's plain text bar is used, with no warning), and
off a terminal a line at most every ``every`` seconds (``  patch heads: 120/400 (30%), 4.1 s``).

Level 0 (core): imports nothing from interp.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["Stages", "bar", "iterate", "stderr_is_terminal", "in_notebook", "fmt_seconds", "load_timings",
           "save_timings"]

# at most one periodic line every EVERY seconds when stderr is not a terminal
EVERY = 5.0


def stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def in_notebook() -> bool:
    """Whether we run inside a Jupyter kernel (IPython's ZMQ shell)."""
    ip = sys.modules.get("IPython")
    get = getattr(ip, "get_ipython", None) if ip is not None else None
    shell = get() if get is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def fmt_seconds(s: float) -> str:
    """``4.2 s``, ``37 s``, ``3 min 05 s``."""
    if s < 10:
        return f"{s:.1f} s"
    if s < 100:
        return f"{s:.0f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec:02d} s"


class Stages:
    """Numbered stages of one job; each prints a start line and an end line (elapsed, total) to ``stream``.

    ``enabled=False`` prints nothing (library calls, ``-q``). Times are kept in ``times`` (label -> seconds) either
    way, so a caller can report them.
    """

    def __init__(self, total: int, *, enabled: bool = True, stream: TextIO | None = None, prefix: str = ""):
        self.total = int(total)
        self.enabled = bool(enabled)
        self.stream = stream
        self.prefix = prefix
        self.i = 0
        self.t0 = time.perf_counter()
        self.times: dict[str, float] = {}

    def _write(self, line: str) -> None:
        if self.enabled:
            s = self.stream or sys.stderr
            s.write(self.prefix + line + "\n")
            s.flush()

    @contextmanager
    def stage(self, label: str, *, estimate: float | None = None) -> Iterator[None]:
        self.i += 1
        tag = f"[{self.i}/{self.total}] {label}"
        self._write(f"{tag} …" + (f" (~{fmt_seconds(estimate)})" if estimate else ""))
        t = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t
            self.times[label] = dt
            self._write(f"{tag} … {fmt_seconds(dt)} (total {fmt_seconds(time.perf_counter() - self.t0)})")

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


class _Lines:
    """Off a terminal: ``desc: n/total (p%), t`` at most every ``every`` seconds, and one final line."""

    def __init__(self, total: int | None, desc: str, every: float, stream: TextIO | None):
        self.total, self.desc, self.every, self.stream = total, desc, every, stream
        self.n = 0
        self.postfix = ""
        self.t0 = self.last = time.perf_counter()

    def _line(self) -> None:
        s = self.stream or sys.stderr
        frac = f"/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else ""
        post = f", {self.postfix}" if self.postfix else ""
        s.write(f"  {self.desc}: {self.n}{frac}, {fmt_seconds(time.perf_counter() - self.t0)}{post}\n")
        s.flush()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._line()

    def close(self) -> None:
        if time.perf_counter() - self.t0 >= self.every:  # short loops stay silent
            self._line()

    def set_postfix_str(self, s: str) -> None:  # as tqdm's
        self.postfix = s

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Off:
    n = 0

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def bar(total: int | None = None, *, desc: str = "", enabled: bool = True, every: float = EVERY,
        stream: TextIO | None = None, leave: bool = False) -> Any:
    """A progress counter with ``update(n)``/``close()`` (and a context manager): a tqdm bar on a terminal or in
    a notebook (plain text when ipywidgets is missing, no warning), periodic lines otherwise, nothing when disabled."""
    if not enabled:
        return _Off()
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm
        except ImportError:
            from tqdm.std import tqdm
        return tqdm(total=total, desc=desc, leave=leave)
    if stream is None and stderr_is_terminal():
        from tqdm.std import tqdm

        return tqdm(total=total, desc=desc, leave=leave, file=sys.stderr)
    return _Lines(total, desc, every, stream)


def iterate(items: Iterable[Any], *, desc: str = "", total: int | None = None, enabled: bool = True,
            every: float = EVERY, stream: TextIO | None = None) -> Iterator[Any]:
    """Iterate ``items`` with a `bar`."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    b = bar(total, desc=desc, enabled=enabled, every=every, stream=stream)
    try:
        for x in items:
            yield x
            b.update(1)
    finally:
        b.close()


# ------------------------------------------------------------------------------------------- stage estimates


def _timings_path() -> Any:
    import os
    from pathlib import Path

    root = os.environ.get("INTERP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "interp")
    return Path(root) / "timings.json"


def load_timings() -> dict[str, float]:
    """Stage times of earlier runs on this machine (``$INTERP_CACHE/timings.json``), ``{}`` when none."""
    import json

    try:
        data = json.loads(_timings_path().read_text())
        return {str(k): float(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def save_timings(times: dict[str, float]) -> None:
    """Merge ``times`` into the timings file (best effort: a read-only home directory is not an error)."""
    import json
    import os

    path = _timings_path()
    try:
        data = {**load_timings(), **{k: round(float(v), 2) for k, v in times.items()}}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass
