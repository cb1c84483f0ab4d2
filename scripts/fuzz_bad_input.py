"""Run the command-line bad-input table (tests/unit/test_bad_input_cli.py) against a code tree and classify each case.

    PYTHONPATH=TREE python scripts/fuzz_bad_input.py [--timeout 20]

TREE is the checkout under test (its ``interp`` package is imported); the table always comes from this checkout. Each
case runs in this process (toy-arith loaded once) under a per-case alarm and an 8 GB address-space limit, and is
classified: clean (exit 2, the table's message regex, no file left), exit 2 with another message, traceback, hang or
ran on (> timeout), silently ran (exit 0), files left. Used for the before/after count in docs/cli.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import resource
import shutil
import signal
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
TABLE = HERE / "tests" / "unit" / "test_bad_input_cli.py"


def load_table() -> list[tuple[str, list[str], str]]:
    src = TABLE.read_text().split("@pytest.fixture")[0]
    for line in ("from interp.cli import main\n", "from tests.toy_cache import cached_load_model\n"):
        src = src.replace(line, "")
    ns: dict = {"__file__": str(TABLE)}
    exec(compile(src, str(TABLE), "exec"), ns)
    return ns["CASES"]


class _Timeout(Exception):
    pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=int, default=20, help="seconds per case (default 20)")
    opts = ap.parse_args()
    resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))
    cases = load_table()
    import interp.models as models
    from interp.cli import main as cli_main
    from interp.models.toy import TOY_DIR

    print(f"code under test: {Path(models.__file__).parents[1]}; {len(cases)} cases", flush=True)
    real, cache = models.load_model, {}

    def cached(spec, **kw):
        plain = dict(device=None, dtype="float32", device_map=None, n_devices=None, backend="bridge", remote=False)
        if spec == "toy-arith" and all(kw.get(k, v) == v for k, v in plain.items()):
            if "toy" not in cache:
                cache["toy"] = real("toy-arith")
            return cache["toy"]
        return real(spec, **kw)

    models.load_model = cached
    root = Path(tempfile.mkdtemp())
    bad_toy = root / "bad_toy"
    shutil.copytree(TOY_DIR, bad_toy)
    (bad_toy / "model.safetensors").write_bytes((bad_toy / "model.safetensors").read_bytes()[:1000])
    (root / "bad_json").mkdir()
    (root / "bad_json" / "config.json").write_text('{"interp_toy_arith": {')
    (root / "no_cfg").mkdir()
    (root / "broken_ckpt" / "checkpoints" / "step_100").mkdir(parents=True)
    (root / "broken_ckpt" / "checkpoints" / "step_100" / "config.json").write_text("{}")
    damaged = {k: str(root / k) for k in ("bad_toy", "bad_json", "no_cfg", "broken_ckpt")}

    def on_alarm(*_):
        raise _Timeout

    signal.signal(signal.SIGALRM, on_alarm)
    counts: dict[str, int] = {}
    for cid, argv, pattern in cases:
        tmp = Path(tempfile.mkdtemp())
        (tmp / "file").write_text("x")
        (tmp / "dir").mkdir()
        subs = {"tmp": str(tmp), "ro": "/proc/sys", "file": str(tmp / "file"), "dir": str(tmp / "dir"), **damaged}
        before = set(tmp.rglob("*"))
        err = io.StringIO()
        code, kind = None, None
        signal.alarm(opts.timeout)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = cli_main([a.format(**subs) for a in argv])
                except SystemExit as e:  # older trees let argparse exit
                    code = e.code
        except _Timeout:
            kind = f"hang or ran on (> {opts.timeout} s)"
        except BaseException as e:  # noqa: BLE001 - classifying is the point
            kind = f"traceback ({type(e).__name__})"
        finally:
            signal.alarm(0)
        left = set(tmp.rglob("*")) - before
        if kind is None:
            kind = ("silently ran (exit 0)" if code == 0 else f"exit {code}" if code != 2 else
                    "exit 2, files left" if left else
                    "clean" if re.search(pattern, err.getvalue(), re.S) else "exit 2, another message")
        elif left:
            kind += ", files left"
        counts[kind] = counts.get(kind, 0) + 1
        print(f"{kind:<40} {cid}", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(dict(sorted(counts.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
