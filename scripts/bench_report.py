"""Benchmark the main job, ``interp report --model toy-arith``, idle and with two CPU-bound processes running.

    python scripts/bench_report.py                                   # this checkout, idle then loaded
    python scripts/bench_report.py --baseline /path/to/other/checkout --md docs/benchmarks.md

Each run is a fresh process (``python -c 'from interp.cli import main; main()' report ...``, the same code path as
the ``interp`` command) with PYTHONPATH set to the checkout, no OMP_NUM_THREADS (so the command picks its own
thread count) and its stage lines read from stderr. "loaded" starts 2 busy-loop processes (``while True: pass``)
first and stops them after the run. ``--baseline DIR`` runs the same command from another checkout (e.g. the
commit before a change) side by side, in the same conditions. ``--md FILE`` appends a table to FILE.
Targets (issue 16): <= 30 s idle on a 2-core machine, loaded <= 3x idle.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE_END = re.compile(r"^\[(\d+)/(\d+)\] (.*?) … ([\d.]+ s|\d+ min \d+ s) \(total")


def _seconds(s: str) -> float:
    m = re.fullmatch(r"(\d+) min (\d+) s", s)
    return int(m.group(1)) * 60 + int(m.group(2)) if m else float(s.split()[0])


def run_report(checkout: Path, extra: list[str], out_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(checkout)
    out = out_dir / f"report-{checkout.name}-{time.time_ns()}.html"
    cmd = [sys.executable, "-c", GC_TIMED_MAIN, "report", "--model", "toy-arith", "--out", str(out), *extra]
    load0 = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=str(checkout), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if p.returncode != 0:
        raise SystemExit(f"report failed in {checkout}:\n{p.stderr[-3000:]}")
    stages = {m.group(3): _seconds(m.group(4)) for line in p.stderr.splitlines() if (m := STAGE_END.match(line))}
    gc_s = [float(line.split()[1]) for line in p.stderr.splitlines() if line.startswith("GC_SECONDS ")]
    return {"checkout": str(checkout), "wall": wall, "cpu": cpu, "load_before": load0, "stages": stages,
            "gc": gc_s[-1] if gc_s else float("nan")}


# `interp`'s own entry point (main() without arguments), plus the seconds spent in the cyclic garbage collector,
# summed over every collection (gc.callbacks) and printed to stderr at exit
GC_TIMED_MAIN = """
import atexit, gc, sys, time
spent, started = [0.0], [0.0]
def _gc(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
    else:
        spent[0] += time.perf_counter() - started[0]
gc.callbacks.append(_gc)
atexit.register(lambda: sys.stderr.write(f"GC_SECONDS {spent[0]:.3f}\\n"))
from interp.cli import main
sys.exit(main())
"""


def busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default=None, help="another checkout to time side by side (e.g. main)")
    ap.add_argument("--busy", type=int, default=2, help="CPU-bound processes for the loaded runs (default 2)")
    ap.add_argument("--quick", action="store_true", help="time `interp report --quick` instead")
    ap.add_argument("--md", default=None, help="append the table to this markdown file (e.g. docs/benchmarks.md)")
    args = ap.parse_args()
    checkouts = [("this", ROOT)] + ([("baseline", Path(args.baseline).resolve())] if args.baseline else [])
    extra = ["--quick"] if args.quick else []
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        for cond in ("idle", "loaded"):
            procs = busy(args.busy) if cond == "loaded" else []
            try:
                if procs:
                    time.sleep(2)
                for name, path in checkouts:
                    r = run_report(path, extra, Path(tmp))
                    r.update(name=name, cond=cond)
                    rows.append(r)
                    print(f"{name:8} {cond:6} {r['wall']:6.1f} s wall, {r['cpu']:6.1f} s CPU, {r['gc']:5.1f} s GC  "
                          f"(load before {r['load_before']:.1f})  "
                          + ", ".join(f"{k.split(' (')[0]} {v:.1f}" for k, v in r["stages"].items()), flush=True)
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
    lines = [
        "",
        f"### `interp report --model toy-arith{' --quick' if args.quick else ''}`: idle and with {args.busy} "
        f"CPU-bound processes ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Command: `python scripts/bench_report.py{' --quick' if args.quick else ''}"
        + (" --baseline CHECKOUT" if args.baseline else "") + f"` on {os.cpu_count()} cores; wall-clock seconds of "
        "the whole command (imports and model load included), CPU seconds (user + system) of the command, seconds "
        "spent in Python's cyclic garbage collector (all collections, `gc.callbacks`), and the stage times it "
        "printed; \"load\" is the 1-minute load average when the run started (other users' jobs "
        "included, so \"idle\" means: no busy loops of ours).",
        "",
        "| code | condition | wall (s) | CPU (s) | GC (s) | load | " + " | ".join(
            k.split(" (")[0] for k in rows[0]["stages"]) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(rows[0]["stages"]),
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['cond']} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['gc']:.1f} | "
                     f"{r['load_before']:.1f} | "
                     + " | ".join(f"{r['stages'][k]:.1f}" if k in r["stages"] else "-" for k in rows[0]["stages"])
                     + " |")
    for name, _ in checkouts:
        by = {r["cond"]: r["wall"] for r in rows if r["name"] == name}
        lines.append(f"\n{name}: loaded / idle = {by['loaded'] / by['idle']:.2f}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        with open(args.md, "a") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
