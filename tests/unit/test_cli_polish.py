"""The command line's first impression (issue 16 item 6) and its behaviour on interrupts and failed writes (issue 13).

* ``interp --help`` / ``--version`` import no torch (checked in a fresh interpreter) and take well under 0.5 s of CPU;
* every subcommand's help has a description, examples, a typical runtime and states its defaults;
* ``-v``/``-q`` are accepted before or after the subcommand;
* ``interp patch`` without ``--out`` prints the top effects as a table and writes nothing;
* a failing ``--plot`` leaves neither the plot nor the JSON; Ctrl-C exits 130 without a traceback; an interrupted
  ``train-toy`` leaves no checkpoint folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import interp.cli as cli
from interp.cli import COMMANDS, build_parser, main
from tests.toy_cache import cached_load_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shared_toy(monkeypatch):
    import interp.models as models

    monkeypatch.setattr(models, "load_model", cached_load_model(models.load_model))


def _fresh(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_and_version_import_no_torch_and_are_fast():
    r = _fresh(
        "import contextlib, io, json, sys, time\n"
        "t = time.process_time()\n"
        "from interp.cli import main\n"
        "codes = []\n"
        "for argv in (['--help'], ['--version'], ['patch', '--help'], ['explain', 'saliency', '--help']):\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        codes.append(main(argv))\n"
        "heavy = [m for m in ('torch', 'transformer_lens', 'transformers', 'numpy', 'plotly') if m in sys.modules]\n"
        "print(json.dumps({'cpu': time.process_time() - t, 'heavy': heavy, 'codes': codes, 'last': buf.getvalue()}))"
    )
    assert r["heavy"] == [] and r["codes"] == [0, 0, 0, 0]
    assert r["cpu"] < 0.5, r["cpu"]
    assert "typical runtime" in r["last"]


def test_version(capsys):
    assert main(["--version"]) == 0
    import interp

    out = capsys.readouterr().out
    assert re.match(rf"interp {re.escape(interp.__version__)} \(torch \S+, transformer-lens \S+", out), out


def _sub_parsers():
    p = build_parser()
    sub = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_subcommand_help_has_description_examples_runtime_and_defaults(name):
    sp = _sub_parsers()[name]
    text = sp.format_help()
    assert sp.description and len(sp.description) > 40
    examples = re.search(r"examples:\n((?:  interp .*\n)+)", text)
    assert examples and 1 <= len(examples.group(1).strip().splitlines()) <= 2, text
    assert all(line.strip().startswith(f"interp {name}") or f"interp {name} " in line
               for line in examples.group(1).strip().splitlines())
    assert re.search(r"typical runtime: \S+", text)
    # every option with a non-trivial default states it
    for action in sp._actions:
        if action.option_strings and action.default not in (None, False, "", argparse_suppress()) \
                and action.help not in (None, argparse_suppress()):
            help_text = sp._get_formatter()._expand_help(action)
            assert "default" in help_text.lower(), (name, action.option_strings, help_text)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


@pytest.mark.parametrize("argv", [["-v", "models"], ["models", "-v"], ["-q", "models"], ["models", "--quiet"],
                                  ["--verbose", "models", "--json"]])
def test_verbosity_before_or_after_the_subcommand(argv, capsys):
    assert main(argv) == 0
    level = logging.getLogger().level
    want = logging.INFO if {"-v", "--verbose"} & set(argv) else logging.ERROR
    assert level == want
    assert "toy-arith" in capsys.readouterr().out


def test_verbose_not_reset_by_the_subcommand():
    args = build_parser().parse_args(["-v", "patch", "--model", "m"])
    assert args.verbose is True and args.quiet is False
    args = build_parser().parse_args(["patch", "--model", "m", "-q"])
    assert args.quiet is True and args.verbose is False


def test_cli_choices_mirror_the_library():
    from interp.circuits.ablation import ABLATIONS
    from interp.circuits.edges import EDGE_ABLATIONS, EDGE_METRICS, METHODS
    from interp.circuits.edges.mib import MIB_SIGNS
    from interp.circuits.edges.search import SELECTIONS
    from interp.circuits.search import RANKS
    from interp.cli import choices
    from interp.metrics import METRICS
    from interp.models.toy import ToyArithConfig
    from interp.neurons.heuristics import GRIDS, K_RULES, MAP_MODES
    from interp.report import OPTIONAL_SECTIONS
    from interp.vocab.cot import VARIANTS

    assert choices.METRICS == tuple(METRICS) and choices.ABLATIONS == tuple(ABLATIONS)
    assert choices.RANKS == tuple(RANKS) and choices.GRIDS == tuple(GRIDS) and choices.K_RULES == tuple(K_RULES)
    assert choices.MAP_MODES == tuple(MAP_MODES) and choices.EDGE_ABLATIONS == tuple(EDGE_ABLATIONS)
    assert choices.EDGE_METRICS == tuple(EDGE_METRICS) and choices.EDGE_METHODS == tuple(METHODS)
    assert choices.EDGE_SELECTIONS == tuple(SELECTIONS) and choices.COT_VARIANTS == tuple(VARIANTS)
    assert set(choices.REPORT_SECTIONS) == set(OPTIONAL_SECTIONS) and choices.MIB_SIGNS == tuple(MIB_SIGNS)
    d = ToyArithConfig()
    assert choices.TOY_DEFAULTS == {k: getattr(d, k) for k in choices.TOY_DEFAULTS}


def test_patch_without_out_prints_a_table_and_writes_nothing(tmp_path, capsys, monkeypatch, shared_toy):
    monkeypatch.chdir(tmp_path)
    assert main(["patch", "--model", "toy-arith", "--task", "arith:+:0-9", "--n-per-op", "8", "--site", "mlps",
                 "--positions", "last", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("patched: mlps x last positions, metric ie, 8 prompts")
    rows = re.findall(r"^ +(\d) +(MLP\d|L\d \S+.*?) +([-+]\d+\.\d{4})$", out, flags=re.M)
    assert [r[0] for r in rows] == ["1", "2", "3"], out
    vals = [abs(float(r[2])) for r in rows]
    assert vals == sorted(vals, reverse=True)
    assert os.listdir(tmp_path) == []


def test_failed_plot_leaves_no_json(tmp_path, capsys, monkeypatch, shared_toy):
    from interp.errors import InterpError
    from interp.patching import PatchResult

    def broken_plot(self, **kw):
        raise InterpError("plot failed on purpose")

    monkeypatch.setattr(PatchResult, "plot", broken_plot)
    rc = main(["patch", "--model", "toy-arith", "--task", "arith:+:0-9", "--n-per-op", "4", "--site", "mlps",
               "--positions", "last", "--out", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.html")])
    assert rc == 2 and "plot failed on purpose" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_ctrl_c_during_startup_is_one_line(capsys, monkeypatch):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_parser", interrupted)
    assert main(["report"]) == 130
    err = capsys.readouterr().err
    assert err == "interp: interrupted\n"


def test_ctrl_c_during_a_command(capsys, monkeypatch):
    import interp.cli.models_cmd as models_cmd

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_PARSERS", {})
    monkeypatch.setattr(models_cmd, "run", interrupted)
    assert main(["models"]) == 130
    assert capsys.readouterr().err == "interp models: interrupted\n"


def test_interrupted_train_toy_leaves_no_checkpoint_folder(tmp_path, capsys, monkeypatch):
    import interp.models.toy as toy

    real = toy.train_toy

    def interrupt_after_first_checkpoint(cfg, *, checkpoint_dir=None, checkpoint_every=0, **kw):
        def stop(step, acc):
            raise KeyboardInterrupt

        return real(cfg, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, progress=False,
                    on_eval=stop)

    monkeypatch.setattr(toy, "train_toy", interrupt_after_first_checkpoint)
    rc = main(["train-toy", "--out", str(tmp_path / "run"), "--steps", "4", "--checkpoint-every", "2",
               "--n-layers", "1", "--d-model", "16", "--batch-size", "8"])
    assert rc == 130
    assert os.listdir(tmp_path) == []  # neither run/ nor run/checkpoints nor a staging folder
    # dynamics on that folder says it does not exist (not an unrelated message about prompts)
    assert main(["dynamics", "-c", str(tmp_path / "run"), "--out", str(tmp_path / "d.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
