"""pyproject.toml lists its packages explicitly (no discovery, no setuptools warning): the list must hold every
package under interp/ (a folder with __init__.py) and the data folders, and nothing that does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_lists_every_package_and_data_folder():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "interp").rglob("__init__.py")}
    data = {"interp.data", "interp.models.data"}
    assert listed == on_disk | data, (f"add to pyproject: {sorted(on_disk - listed)}; "
                                      f"remove: {sorted(listed - on_disk - data)}")
    for pkg in data:
        assert (ROOT / Path(*pkg.split("."))).is_dir()
    assert set(cfg["package-data"]) <= listed
