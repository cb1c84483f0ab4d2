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
