"""Training dynamics on a tiny toy trained with checkpoints, and the `interp dynamics` / `interp neurons` CLIs."""

from __future__ import annotations

import json
import math

import pytest

from interp.errors import ModelLoadError
from interp.neurons import DynamicsResult
from interp.neurons.dynamics import list_checkpoints, training_dynamics
from interp.tasks import parse_task


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from interp.models.toy import ToyArithConfig, save_toy, train_toy

    cfg = ToyArithConfig(n_numbers=100, operand_max=9, n_layers=2, d_model=32, n_heads=2, d_mlp=64, steps=150,
                         batch_size=128, lr=3e-3, held_out_frac=0.0)
    out = tmp_path_factory.mktemp("run")
    res = train_toy(cfg, checkpoint_dir=out / "checkpoints", checkpoint_every=50, progress=False)
    save_toy(cfg, res.state_dict, out)
    return out


def _cli(argv):
    from interp.cli import main

    return main(argv)


def test_dynamics_over_checkpoints(run_dir, tmp_path):
    assert [s for s, _ in list_checkpoints(run_dir)] == [50, 100, 150]
    task = parse_task("arith:+-*/:0-9")
    res = training_dynamics(run_dir / "checkpoints", task, top_k=16, n_per_op=8, knockout_per_layer=[2, 4],
                            knockout_prompts=8, max_accuracy_prompts=None)
    assert res.steps == [50, 100, 150]
    assert all(len(v) == 3 for v in res.accuracy.values())
    assert res.n_final_triples > 0 and res.intersection[-1] == pytest.approx(1.0)
    assert all(math.isnan(x) or 0 <= x <= 1 for x in res.intersection)
    assert set(res.heuristic_accuracy) == {f"{op} L={x}" for op in "+-*/" for x in (2, 4)}
    res.save(tmp_path / "d.json")
    back = DynamicsResult.load(tmp_path / "d.json")
    assert back.steps == res.steps and back.intersection[-1] == pytest.approx(1.0)
    assert res.plot().data


def test_dynamics_cli(run_dir, tmp_path, capsys):
    out = tmp_path / "dyn.json"
    rc = _cli(["dynamics", "--checkpoints", str(run_dir), "--task", "arith:+-:0-9", "--top-k", "8", "--n-per-op", "6",
               "--knockout-per-layer", "2", "--steps", "100,150", "--out", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["steps"] == [100, 150] and d["type"] == "neuron_dynamics"
    assert "2 checkpoints" in capsys.readouterr().out


def test_neurons_cli(run_dir, tmp_path, capsys):
    out = tmp_path / "neurons.json"
    rc = _cli(["neurons", "--model", str(run_dir), "--task", "arith:+-*/:0-9", "--top-k", "8", "--n-per-op", "6",
               "--threshold", "0.55", "--min-neurons", "2", "--knockout-prompts", "6", "--n-random", "1",
               "--out", str(out), "--plot", str(tmp_path / "n.html")])
    assert rc == 0
    d = json.loads(out.read_text())
    assert {"neurons", "classified_fraction", "class_knockout", "prompt_knockout", "seconds"} <= set(d)
    assert d["classifier"]["threshold"] == 0.55 and len(d["neurons"]) == 4 * 2 * 8
    assert (tmp_path / "n.html").exists() and "classified" in capsys.readouterr().out
    # bad input is a clean error (exit 2), not a traceback
    assert _cli(["neurons", "--model", str(run_dir), "--task", "arith:+:0-9", "--top-k", "65",
                 "--out", str(tmp_path / "x.json")]) == 2
    assert _cli(["neurons", "--model", str(run_dir), "--task", "arith:+:0-9", "--threshold", "1.5",
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "(0, 1]" in capsys.readouterr().err


def test_missing_checkpoints(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        list_checkpoints(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="checkpoint-every"):
        list_checkpoints(tmp_path)
