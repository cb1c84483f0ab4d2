"""Circuit discovery on the shipped `toy-arith`: faithful per-operator circuits, attribution vs exact, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # small batches on a shared 2-core machine run several times faster on one thread
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def setup():
    import interp
    from interp.circuits import mean_cache
    from interp.tasks import parse_task

    model = interp.load_model("toy-arith")
    task = parse_task("arith")
    return model, task, mean_cache(model, task)


def test_every_operator_has_a_faithful_circuit_with_all_mlps(setup):
    from interp.circuits import find_circuit

    model, task, mean = setup
    for op in task.operators:
        c = find_circuit(model, task, operator=op, mean=mean, seeds=(42,), n_per_op=50, n_eval=50)
        assert c.faithfulness >= 0.9, (op, c.faithfulness)
        assert c.mlps == (0, 1, 2, 3) and len(c.heads) < 16, (op, c.heads)
        assert c.curve[-1]["faithfulness"] == pytest.approx(1.0, abs=1e-9)
        assert set(c.sensitivity) == {"mean", "zero", "resample"}
        assert c.meta["n_eval"] == 50


def test_effects_by_operator_equal_one_sweep_per_operator(setup):
    """One pooled sweep per seed gives every operator's effects: equal to `component_effects(operator=op)`."""
    import numpy as np

    from interp.circuits.effects import component_effects, component_effects_by_operator

    model, task, _ = setup
    both = component_effects_by_operator(model, task, seeds=(42, 7), n_per_op=20)
    assert list(both) == [None, *task.operators]
    for op in [None, *task.operators]:
        ref = component_effects(model, task, operator=op, seeds=(42, 7), n_per_op=20)
        got = both[op]
        assert got.operator == op and got.rank_positions == ref.rank_positions and got.seeds == ref.seeds
        for a, b in ((got.heads, ref.heads), (got.mlps, ref.mlps)):
            scale = float(np.abs(b.effects).max())
            assert float(np.abs(a.effects - b.effects).max()) <= 1e-6 * scale, op
            assert float(np.abs(a.stderr - b.stderr).max()) <= 1e-6 * float(np.abs(b.stderr).max()), op
            assert a.n_prompts == b.n_prompts == (80 if op is None else 20)
        assert float(np.abs(got.heads_per_seed - ref.heads_per_seed).max()) <= 1e-6 * scale
        assert [c[:3] for c in got.ranking()[:10]] == [c[:3] for c in ref.ranking()[:10]], op


def test_attribution_agrees_with_exact_patching_on_neurons(setup):
    from interp.patching import patch
    from interp.patching.attribution import agreement, attribution_patch

    model, task, _ = setup
    pairs = task.pairs(model, n_per_op=50, seed=42).by_group()["+"]
    atp = attribution_patch(model, pairs, site="neurons", positions="last", layers=[2, 3])
    exact = patch(model, pairs, site="neurons", positions="last", layers=[2, 3], progress=False)
    agr = agreement(atp, exact, k=50)
    assert agr.spearman > 0.6 and agr.top_k_overlap > 0.4, agr


def test_cli_writes_the_circuit_json(tmp_path, capsys):
    from interp.cli import main

    out = tmp_path / "circuit.json"
    rc = main(["circuit", "--model", "toy-arith", "--task", "arith:+", "--out", str(out), "--seeds", "42",
               "--n-per-op", "30", "--n-eval", "30", "--operand-max", "49"])
    assert rc == 0, capsys.readouterr().err
    d = json.loads(out.read_text())
    for key in ("model", "task", "heads", "mlps", "ablation", "faithfulness", "curve", "sensitivity", "seconds"):
        assert key in d
    assert d["model"] == "toy-arith" and d["task"] == "arith:+:0-99" and d["ablation"] == "mean"
    assert all(len(h) == 2 for h in d["heads"]) and d["faithfulness"] >= 0.9
    assert {"n_heads", "faithfulness"} <= set(d["curve"][0]) and set(d["sensitivity"]) == {"mean", "zero", "resample"}
    assert "wrote" in capsys.readouterr().out


def test_cli_per_operator_circuits_equal_find_circuit_per_operator(setup, tmp_path, capsys):
    """`interp circuit` measures every operator's effects in the pooled sweep (`component_effects_by_operator`):
    its per-operator circuits are the ones `find_circuit(operator=op)` finds with its own sweep."""
    from interp.circuits import find_circuit
    from interp.cli import main

    model, task, mean = setup
    out = tmp_path / "circuit.json"
    rc = main(["circuit", "--model", "toy-arith", "--task", "arith:+*", "--out", str(out), "--seeds", "42,7",
               "--n-per-op", "20", "--n-eval", "20"])
    assert rc == 0, capsys.readouterr().err
    d = json.loads(out.read_text())
    from interp.tasks import parse_task

    two = parse_task("arith:+*")
    for op in ("+", "*"):
        ref = find_circuit(model, two, operator=op, mean=mean, seeds=(42, 7), n_per_op=20, n_eval=20)
        got = d["per_operator"][op]
        assert [tuple(h) for h in got["heads"]] == [tuple(h) for h in ref.heads], op
        assert got["faithfulness"] == pytest.approx(ref.faithfulness, rel=1e-6), op
