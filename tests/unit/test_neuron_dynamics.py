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
    # Fig. 10b: at the final step every heuristic neuron is a mutual one, so the two circuits coincide
    final = [op for op, f in res.faithfulness_heuristic.items() if not math.isnan(f[-1])]
    assert final, res.faithfulness_heuristic
    for op in final:
        assert res.faithfulness_mutual[op][-1] == pytest.approx(res.faithfulness_heuristic[op][-1])
    assert res.mutual_share()[-1] == pytest.approx(1.0) or math.isnan(res.mutual_share()[-1])
    res.save(tmp_path / "d.json")
    back = DynamicsResult.load(tmp_path / "d.json")
    assert back.steps == res.steps and back.intersection[-1] == pytest.approx(1.0)
    for op, f in res.faithfulness_mutual.items():  # NaN (no correct prompts at a step) survives the JSON round trip
        assert back.faithfulness_mutual[op] == pytest.approx(f, nan_ok=True)
    assert res.plot().data


def test_mutual_faithfulness_bounds(run_dir):
    """Keeping every neuron of every layer is the full model (F = 1); keeping no neuron is the heads-only circuit."""
    from interp.circuits.ablation import mean_cache
    from interp.circuits.faithfulness import FaithfulnessEvaluator
    from interp.models import load_model
    from interp.neurons.dynamics import mutual_faithfulness

    model = load_model(str(run_dir))
    task = parse_task("arith:+:0-9")
    every = {("+", "range", lyr, n) for lyr in range(2) for n in range(64)}
    f_all, f_mut = mutual_faithfulness(model, task, ["+"], every, set(), n_per_op=8)
    assert f_all["+"] == pytest.approx(1.0, abs=1e-5)
    sub = task.pairs(model, n_per_op=8, split="evaluation", corrupt_from="same")
    ev = FaithfulnessEvaluator(model, sub.clean_tokens, sub.clean_answers, mean=mean_cache(model, task))
    heads_only = ev.score(keep_heads=[(lyr, h) for lyr in range(2) for h in range(2)], keep_mlps=[]).faithfulness
    assert f_mut["+"] == pytest.approx(heads_only, abs=1e-5) and f_mut["+"] < 0.99
    # layers outside `layers` keep their whole MLP: only layer 1 reduced -> between the two
    _, f_l1 = mutual_faithfulness(model, task, ["+"], every, set(), layers=[1], n_per_op=8)
    assert f_l1["+"] != pytest.approx(f_mut["+"])


def test_dynamics_cli(run_dir, tmp_path, capsys):
    out = tmp_path / "dyn.json"
    rc = _cli(["dynamics", "--checkpoints", str(run_dir), "--task", "arith:+-:0-9", "--top-k", "8", "--n-per-op", "6",
               "--knockout-per-layer", "2", "--steps", "100,150", "--out", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["steps"] == [100, 150] and d["type"] == "neuron_dynamics"
    assert "2 checkpoints" in capsys.readouterr().out
    assert _cli(["dynamics", "--checkpoints", str(run_dir), "--task", "arith:+:0-9", "--faithfulness-layers", "5",
                 "--out", str(tmp_path / "bad.json")]) == 2
    assert "layer 5 is out of range" in capsys.readouterr().err and not (tmp_path / "bad.json").exists()


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
