"""Atomic file I/O: a failed run never leaves a half-written file, and a run writes all its outputs or none.

* `check_output_path` / `check_outputs`: refuse an output path that cannot be written (a directory, a parent that is a
  file, a read-only folder, the same path twice) *before* any compute, with a `FileError` saying what to give instead;
* `atomic_path`, `write_text_atomic`, `write_json_atomic`: write next to the target and rename;
* `write_outputs`: several outputs produced into temporary files first, then renamed together: when producing any of
  them fails, none is written;
* `read_json`: a missing or invalid file is a `FileError` / `FileFormatError` naming the file.

Every OS error raised here is wrapped in `interp.errors.FileError` (an `InterpError` and an `OSError`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from interp.errors import FileError, FileFormatError

__all__ = [
    "atomic_path",
    "write_text_atomic",
    "write_json_atomic",
    "write_outputs",
    "read_json",
    "check_output_path",
    "check_outputs",
]


def _os_error(e: OSError, path: str | os.PathLike[str], doing: str) -> FileError:
    reason = e.strerror or type(e).__name__
    return FileError(f"cannot {doing} {str(path)!r}: {reason}; give a path in a folder you can write to")


def check_output_path(path: str | os.PathLike[str], *, what: str = "output", directory: bool = False) -> Path:
    """Raise `FileError` when ``path`` cannot be written; nothing is created.

    ``directory=False``: ``path`` is a file to create or replace: it must not be a directory. ``directory=True``: it
    is a folder to create or fill: it must not be a file. In both cases no ancestor may be a file and the nearest
    existing ancestor must be writable (an existing target must be writable itself).
    """
    if path is None or str(path).strip() == "":
        raise FileError(f"{what}: empty path; give a file name such as result.json")
    p = Path(path).expanduser()
    if p.exists():
        if p.is_dir() and not directory:
            raise FileError(f"{what} {str(path)!r} is a directory; give a file name inside it, e.g. "
                            f"{str(p / 'result.json')!r}")
        if not p.is_dir() and directory:
            raise FileError(f"{what} {str(path)!r} is an existing file; give a directory (new or existing)")
        if not os.access(p, os.W_OK) or not os.access(p.parent if not directory else p, os.W_OK):
            raise FileError(f"{what} {str(path)!r} is not writable; give a path in a folder you can write to")
        return p
    probe = p.parent
    while not probe.exists():
        if probe == probe.parent:  # pragma: no cover - the root always exists
            break
        probe = probe.parent
    if not probe.is_dir():
        raise FileError(f"{what} {str(path)!r}: {str(probe)!r} is a file, not a folder; give a path whose parent "
                        "folders are folders")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise FileError(f"{what} {str(path)!r}: the folder {str(probe)!r} is not writable; give a path in a folder "
                        "you can write to")
    return p


def check_outputs(paths: Mapping[str, str | os.PathLike[str] | None], *, directories: tuple[str, ...] = ()) -> None:
    """`check_output_path` for every non-None path of ``{what: path}`` (those named in ``directories`` are folders);
    two outputs on the same path are refused too."""
    seen: dict[Path, str] = {}
    for what, path in paths.items():
        if path is None:
            continue
        p = check_output_path(path, what=what, directory=what in directories).resolve()
        if p in seen:
            raise FileError(f"{seen[p]} and {what} are the same path {str(path)!r}; give each output its own file")
        seen[p] = what


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically, on error it is removed.

    OS errors while creating the folder, the temporary file or renaming it raise `FileError`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise _os_error(e, path, "write") from e
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
            os.replace(tmp_path, path)
        except OSError as e:
            raise _os_error(e, path, "write") from e
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(path) as tmp:
        try:
            tmp.write_text(text, encoding="utf-8")
        except OSError as e:
            raise _os_error(e, path, "write") from e
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, default: Callable[[Any], Any] | None = None) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=1, default=default) + "\n")


Writer = str | Callable[[Path], Any]


def write_outputs(outputs: Mapping[str | os.PathLike[str], Writer | None]) -> list[Path]:
    """Write several outputs all or none: ``{path: text or writer(tmp_path)}`` (None entries are skipped).

    Each output is produced into a temporary file next to its target (a writer is called with that path, e.g.
    ``lambda p: result.save(p)``); only when all of them succeeded are they renamed into place, one after the other.
    When any writer raises, every temporary file is removed and no target is touched."""
    items = [(Path(p), w) for p, w in outputs.items() if w is not None]
    with ExitStack() as stack:
        tmps = []
        for path, w in items:
            tmp = stack.enter_context(_staged(path))
            if isinstance(w, str):
                try:
                    tmp.write_text(w, encoding="utf-8")
                except OSError as e:
                    raise _os_error(e, path, "write") from e
            else:
                w(tmp)
            tmps.append(tmp)
        for (path, _), tmp in zip(items, tmps):
            try:
                os.replace(tmp, path)
            except OSError as e:
                raise _os_error(e, path, "write") from e
    return [p for p, _ in items]


@contextmanager
def _staged(path: Path) -> Iterator[Path]:
    """A temporary file next to ``path`` with normal permissions, removed on exit unless renamed away."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
    except OSError as e:
        raise _os_error(e, path, "write") from e
    tmp_path = Path(tmp)
    try:
        yield tmp_path
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def read_json(path: str | os.PathLike[str]) -> Any:
    """The parsed JSON of ``path``; a missing/unreadable file raises `FileError`, invalid JSON `FileFormatError`."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise FileFormatError(f"{str(path)!r} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from e
    except UnicodeDecodeError as e:
        raise FileFormatError(f"{str(path)!r} is not a UTF-8 text (JSON) file") from e
    except OSError as e:
        raise _os_error(e, path, "read") from e
