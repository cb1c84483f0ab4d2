"""Every teaching notebook executes end to end on the toy model (INTERP_FAST=1)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_FAST", "1")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from run_notebooks import run
    finally:
        sys.path.pop(0)
    failures = run([path], tmp_path)
    assert not failures, failures[0][1]
