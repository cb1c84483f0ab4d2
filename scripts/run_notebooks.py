"""Execute the teaching notebooks (jupytext percent scripts in notebooks/) with nbclient.

Usage: python scripts/run_notebooks.py [NAME ...] [--out DIR]. Sets INTERP_FAST=1 unless already set, so notebooks
use small samples. Writes executed .ipynb files to --out (default: a temporary directory), which a student can open
in JupyterLab (or any notebook viewer) without running anything: plotly figures are saved both as plotly JSON and as
self-contained HTML (PLOTLY_RENDERER=plotly_mimetype+notebook, set unless already set), so they also show outside
JupyterLab (VS Code, nbviewer, GitHub). Prints each notebook's run time. Exit code 1 on failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(paths: list[Path], out: Path, timeout: int = 900) -> list[tuple[Path, str]]:
    import time

    import jupytext
    from nbclient import NotebookClient

    failures = []
    os.environ.setdefault("INTERP_FAST", "1")
    # the kernel inherits this: figures carry text/html (plotly.js embedded once per notebook) besides plotly JSON
    os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype+notebook")
    for path in paths:
        t0 = time.perf_counter()
        nb = jupytext.read(path)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
        try:
            client.execute()
        except Exception as e:  # report every failing notebook, not just the first
            failures.append((path, str(e)[-2000:]))
        out.mkdir(parents=True, exist_ok=True)
        jupytext.write(nb, out / (path.stem + ".ipynb"))
        status = "FAILED" if failures and failures[-1][0] == path else "ok"
        print(f"{status:6} {path.name}  {time.perf_counter() - t0:.0f} s -> {out / (path.stem + '.ipynb')}",
              flush=True)
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*",
                    help="notebook names or parts of them, e.g. 01 02 (default: all notebooks/*.py)")
    ap.add_argument("--out", default=None, help="folder for the executed .ipynb files (default: a temporary folder)")
    args = ap.parse_args()
    paths = sorted((ROOT / "notebooks").glob("*.py"))
    if args.names:
        paths = [p for p in paths if any(n in p.name for n in args.names)]
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="interp-nb-"))
    failures = run(paths, out)
    for p, err in failures:
        print(f"--- {p.name} failed:\n{err}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
