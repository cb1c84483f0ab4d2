"""Component effects, the circuit sweep, the CLI guard and the report section, on a tiny trained arithmetic model."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from interp.circuits import component_effects, evaluation_pairs, find_circuit, mean_cache
from interp.circuits.ablation import ABLATIONS, CircuitError
from interp.circuits.circuit import Circuit
from interp.errors import TaskError, UnknownNameError
from interp.tasks import parse_task

SPEC = "arith:+-*/:0-9"
N = 8  # discovery and evaluation prompts per operator


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A 2-layer, 4-head toy model trained for a few seconds to answer every ``a op b =`` with a, b < 10."""
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    from interp.models.toy import ToyArithConfig, build_toy_tokenizer

    cfg = ToyArithConfig(n_numbers=40, operand_max=9, n_layers=2, d_model=32, n_heads=4, d_mlp=64, seed=0)
    tok = build_toy_tokenizer(cfg.n_numbers, tmp_path_factory.mktemp("tiny_toy"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TransformerBridge.boot_native(TransformerBridgeConfig(**cfg.bridge_config()), tokenizer=tok)
        task = parse_task(SPEC)
        prompts = [p for op in task.operators for p in task.prompts(model, op)]
        x = torch.tensor([p.tokens for p in prompts])
        y = torch.tensor([p.answer_token for p in prompts])
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for _ in range(300):
            idx = torch.randint(0, len(y), (128,))
            loss = torch.nn.functional.cross_entropy(model(x[idx])[:, -1], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.enable_compatibility_mode()
    model.eval()
    return model


@pytest.fixture(scope="module")
def task():
    return parse_task(SPEC)


@pytest.fixture(scope="module")
def mean(toy, task):
    return mean_cache(toy, task)


@pytest.fixture(scope="module")
def circuit(toy, task, mean):
    return find_circuit(toy, task, operator="+", n_per_op=N, n_eval=N, mean=mean, seeds=(42, 412))


def test_component_effects(toy, task):
    eff = component_effects(toy, task, operator="-", seeds=(42, 412), n_per_op=N)
    assert eff.heads.effects.shape == (2, 5, 4) and eff.mlps.effects.shape == (2, 5)
    assert eff.heads_per_seed.shape == (2, 2, 5, 4)
    np.testing.assert_allclose(eff.heads.effects, eff.heads_per_seed.mean(0))
    assert eff.heads.stderr is not None and np.all(eff.heads.stderr >= 0)
    assert eff.rank_positions == (1, 2, 3, 4)  # every position but BOS, as the paper
    scores = eff.head_scores()
    np.testing.assert_allclose(scores, eff.heads.effects[:, 1:, :].mean(1))
    ranked = [scores[l, h] for l, h in eff.head_ranking()]
    assert ranked == sorted(ranked, reverse=True)
    joint = eff.ranking(include_mlps=True)
    assert len(joint) == 10 and [r[3] for r in joint] == sorted((r[3] for r in joint), reverse=True)
    assert eff.plot().data


def test_seeds_with_identical_pairs_run_once_and_count_as_one_sample(toy, task, monkeypatch):
    """A task whose pairs ignore the seed (IOI) gives every seed the same sweep: it runs once, and the standard error
    is that of one sample (not divided by sqrt(n_seeds) as for independent draws)."""
    import interp.circuits.effects as effects_mod

    calls = []
    real = effects_mod.patch

    def counting(*a, **k):
        calls.append(k.get("site"))
        return real(*a, **k)

    monkeypatch.setattr(effects_mod, "patch", counting)
    one = component_effects(toy, task, operator="-", seeds=(42,), n_per_op=N)
    assert len(calls) == 2
    fixed = types.SimpleNamespace(name=task.name, operators=task.operators,
                                  pairs=lambda model, **kw: task.pairs(model, **{**kw, "seed": 42}))
    same = component_effects(toy, fixed, operator="-", seeds=(1, 2, 3), n_per_op=N)
    assert len(calls) == 4  # one heads and one MLP sweep for three seeds
    np.testing.assert_allclose(same.heads.effects, one.heads.effects, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(same.heads.stderr, one.heads.stderr, rtol=1e-12)
    np.testing.assert_allclose(same.mlps.stderr, one.mlps.stderr, rtol=1e-12)
    assert same.meta["n_distinct_draws"] == 1 and same.heads_per_seed.shape[0] == 3
    two = component_effects(toy, task, operator="-", seeds=(42, 412), n_per_op=N)  # distinct draws: independent
    se = np.stack([component_effects(toy, task, operator="-", seeds=(s,), n_per_op=N).heads.stderr
                   for s in (42, 412)])
    np.testing.assert_allclose(two.heads.stderr, np.sqrt((se**2).sum(0)) / 2, rtol=1e-12)
    assert two.meta["n_distinct_draws"] == 2


def test_sweep_is_nested_and_chooses_first_crossing(circuit):
    c = circuit
    curve = c.curve
    assert [row["n_heads"] for row in curve] == list(range(9))  # one head more per step, all 8 heads at the end
    assert all(row["n_mlps"] == 2 for row in curve)  # all MLPs kept by default
    assert curve[-1]["faithfulness"] == pytest.approx(1.0, abs=1e-12)  # everything kept = the model
    order = [row["added"] for row in curve[1:]]
    assert len(set(order)) == 8 and [f"L{l}H{h}" for l, h in c.heads] == order[: len(c.heads)]  # a rank prefix
    k = len(c.heads)
    assert curve[k]["faithfulness"] >= 0.9 and all(row["faithfulness"] < 0.9 for row in curve[:k])
    assert c.faithfulness == pytest.approx(curve[k]["faithfulness"])
    assert set(c.sensitivity) == set(ABLATIONS) and c.sensitivity["mean"] == c.faithfulness
    assert c.mlps == (0, 1) and c.operator == "+" and c.meta["reached_target"]
    assert c.meta["n_eval"] == N


def test_target_one_needs_everything_that_matters(toy, task, mean):
    c = find_circuit(toy, task, operator="+", n_per_op=N, n_eval=N, mean=mean, seeds=(42,), target=1.0,
                     sensitivity=("mean",))
    assert c.faithfulness >= 1.0 and set(c.sensitivity) == {"mean"}


def test_evaluation_is_held_out(toy, task):
    disc = task.pairs(toy, n_per_op=N, split="discovery")
    ev = evaluation_pairs(toy, task, operator="*", n_eval=5, n_discovery=N)
    assert ev.n == 5 and set(ev.groups) == {"*"}
    assert not {str(p) for p in disc.clean} & {str(p) for p in ev.clean}


def test_rank_by_attribution_verified_by_exact(toy, task, mean):
    c = find_circuit(toy, task, operator="/", n_per_op=N, n_eval=N, mean=mean, seeds=(42,), rank="attribution",
                     rank_mlps=True, sensitivity=("mean", "zero"))
    agr = c.meta["agreement"]
    assert -1 <= agr["heads"]["spearman"] <= 1 and 0 <= agr["heads"]["top_k_overlap"] <= 1
    assert c.curve[0]["n_heads"] == 0 and c.curve[0]["n_mlps"] == 0  # MLPs ranked too: start from nothing
    assert c.curve[-1]["n_mlps"] == 2 and c.faithfulness >= 0.9


def test_circuit_io_and_plots(circuit, tmp_path):
    path = circuit.save(tmp_path / "circuit.json")
    back = Circuit.load(path)
    assert back.to_dict() == circuit.to_dict() and back.heads == circuit.heads
    d = back.to_dict()
    for key in ("model", "task", "heads", "mlps", "ablation", "faithfulness", "curve", "sensitivity", "seconds"):
        assert key in d
    assert {"n_heads", "faithfulness"} <= set(d["curve"][0])
    fig = circuit.plot()
    assert len(fig.data) >= 2
    diagram = circuit.diagram()
    kept = next(t for t in diagram.data if t.name == "in circuit")
    assert len(kept.x) == len(circuit.heads) + len(circuit.mlps)


def test_bad_input(toy, task, mean):
    kw = dict(operator="+", n_per_op=N, n_eval=N, mean=mean, seeds=(42,))
    for target in (0, 1.5, -0.1):
        with pytest.raises(CircuitError, match=r"\(0, 1\]"):
            find_circuit(toy, task, target=target, **kw)
    with pytest.raises(CircuitError, match="n_eval must be an integer >= 1"):
        find_circuit(toy, task, **{**kw, "n_eval": 0})
    with pytest.raises(UnknownNameError, match="valid: mean, resample, zero"):
        find_circuit(toy, task, ablation="meen", **kw)
    with pytest.raises(UnknownNameError, match="attribution, exact"):
        find_circuit(toy, task, rank="gradient", **kw)
    with pytest.raises(TaskError, match="not in task"):
        find_circuit(toy, parse_task("arith:+"), **{**kw, "operator": "*"})

    class Wrong:
        """The toy model, but always answering <pad>: no prompt is correct."""

        cfg, tokenizer = toy.cfg, toy.tokenizer

        def __call__(self, tokens):
            out = toy(tokens).clone()
            out[..., toy.tokenizer.pad_token_id] = 1e4
            return out

    with pytest.raises(TaskError, match="none of the"):
        find_circuit(Wrong(), parse_task(SPEC), **kw)


def test_cli_rejects_bad_target_before_loading(capsys):
    from interp.cli import main

    rc = main(["circuit", "--model", "no-such-model", "--out", "x.json", "--target", "1.2"])
    assert rc == 2 and "(0, 1]" in capsys.readouterr().err
    assert main(["circuit", "--model", "m", "--out", "x.json", "--ablation", "mode"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_report_section(toy):
    from interp.report import ReportContext
    from interp.report.circuits import circuit_section

    ctx = ReportContext(model_name="tiny", task_spec="arith:+-:0-9", n_per_op=N, progress=False, quick=True)
    sec = circuit_section(toy, ctx)
    assert set(ctx.results["circuits"]) == {"+", "-"}
    assert len(sec.figures) == 1 + 2 * 2 and "F under zero" in "".join(sec.paragraphs)
    assert types.SimpleNamespace(**sec.data["+"]).ablation == "mean"


def test_search_settings_equal_the_old_keywords(toy, task, mean, circuit):
    """``settings=SearchSettings(...)`` gives the same circuit as the old keyword arguments; keywords override it."""
    from interp.circuits import SearchSettings

    st = SearchSettings(n_per_op=N, n_eval=N, seeds=(42, 412))
    via_settings = find_circuit(toy, task, operator="+", mean=mean, settings=st)
    assert via_settings.heads == circuit.heads and via_settings.mlps == circuit.mlps
    assert via_settings.faithfulness == circuit.faithfulness and via_settings.curve == circuit.curve
    assert via_settings.to_dict().keys() == circuit.to_dict().keys()  # same JSON fields
    assert st.replace(target=0.5).target == 0.5 and st.target == 0.9  # frozen; replace makes a new one
    assert SearchSettings.build(st, seeds=[7]).seeds == (7,) and SearchSettings.from_dict(st.to_dict()) == st
    with pytest.raises(TypeError, match="unexpected keyword argument.*n_prompts.*the search settings are"):
        find_circuit(toy, task, operator="+", mean=mean, n_prompts=3)
    with pytest.raises(CircuitError, match=r"\(0, 1\]"):
        SearchSettings(target=2.0)
    with pytest.raises(UnknownNameError, match="valid: mean, resample, zero"):
        SearchSettings(sensitivity=("mean", "meen"))
