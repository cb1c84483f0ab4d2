"""Zero-ablation knockouts against a hand check, the three experiments' invariants, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_bridge

from interp.errors import InterpError, ShapeError, TaskError
from interp.neurons import ClassifierConfig, NeuronAnalysis
from interp.neurons._common import NeuronError
from interp.neurons.knockout import (
    class_knockout,
    failure_analysis,
    greedy_correct,
    knockout_accuracy,
    prompt_knockout,
    zero_hooks,
)
from interp.neurons.pipeline import analyze_neurons, classify_neurons
from interp.neurons.results import ClassKnockout, NeuronClassification, PromptKnockout
from interp.tasks import parse_task


@pytest.fixture(scope="module")
def bridge():
    return tiny_bridge()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from interp.models.toy import ToyArithConfig, load_toy, save_toy, train_toy

    cfg = ToyArithConfig(n_numbers=100, operand_max=9, n_layers=2, d_model=32, n_heads=2, d_mlp=64, steps=150,
                         batch_size=128, lr=3e-3, held_out_frac=0.0)
    path = tmp_path_factory.mktemp("tinytoy")
    save_toy(cfg, train_toy(cfg, progress=False).state_dict, path)
    return load_toy(path)


@pytest.fixture(scope="module")
def task():
    return parse_task("arith:+-*/:0-9")


@pytest.fixture(scope="module")
def classification(toy, task):
    # every neuron of both layers, so the prompt knockout has associated neurons and a random pool
    return classify_neurons(toy, task, {0: range(64), 1: range(64)}, config=ClassifierConfig(threshold=0.5))


def test_zeroing_matches_a_hand_written_hook(bridge):
    tokens = torch.randint(0, 50, (8, 6), generator=torch.Generator().manual_seed(0))
    zero = {0: [1, 5, 9], 2: [0, 63]}

    def manual(act, hook, idx):
        act = act.clone()
        act[:, :, idx] = 0.0
        return act

    hooks = [(f"blocks.{l}.mlp.hook_post", lambda a, hook, idx=idx: manual(a, hook, idx)) for l, idx in zero.items()]
    want = bridge.run_with_hooks(tokens, fwd_hooks=hooks)[:, -1, :]
    got = bridge.run_with_hooks(tokens, fwd_hooks=zero_hooks(bridge, zero))[:, -1, :]
    torch.testing.assert_close(got, want)
    answers = bridge(tokens)[:, -1, :].argmax(-1)
    assert greedy_correct(bridge, tokens, answers).all()
    assert knockout_accuracy(bridge, tokens, answers, zero) == pytest.approx(
        float((want.argmax(-1) == answers).float().mean()))
    # a different set per row equals one run per row with that set
    rows = [{0: [i, i + 1]} for i in range(8)]
    per_row = greedy_correct(bridge, tokens, answers, row_zero=rows)
    one_by_one = [greedy_correct(bridge, tokens[i : i + 1], answers[i : i + 1], zero=rows[i])[0] for i in range(8)]
    assert per_row.tolist() == one_by_one


def test_class_knockout(toy, task, classification):
    ck = class_knockout(toy, task, classification, min_neurons=3, max_prompts=20)
    assert ck.rows, "some heuristic class has >= 3 neurons"
    for r in ck.rows:
        assert 0 <= r.related_accuracy <= 1 and 0 <= r.unrelated_accuracy <= 1
        assert r.n_neurons >= 3 and 1 <= r.n_prompts <= 20
    assert set(ck.means()) <= set("+-*/")
    assert ck.plot().data


def test_prompt_knockout(toy, task, classification):
    pk = prompt_knockout(toy, task, classification, op="/", per_layer=[0, 1, 4], n_prompts=10, n_random=2)
    assert pk.per_layer == [0, 1, 4]
    assert pk.heuristic_accuracy[0] == 1.0 and pk.random_accuracy[0] == 1.0  # correct prompts, nothing zeroed
    assert pk.mean_ablated[0] == 0 and all(x <= 4 * 2 for x in pk.mean_ablated)  # <= L per layer, 2 layers
    assert pk.mean_random_ablated == pytest.approx(pk.mean_ablated)  # the pool (64 per layer) is large enough
    fig = PromptKnockout.figure({"/": pk})
    assert len(fig.data) == 2


def test_failure_analysis(toy, task, classification):
    fa = failure_analysis(toy, task, classification, op="+", n=10)
    assert len(fa.correct_counts) == 10 and len(fa.incorrect_counts) == 10  # the tiny toy gets some + wrong
    assert set(fa.summary()) == {"correct_mean_neurons", "incorrect_mean_neurons", "correct_mean_logit",
                                 "incorrect_mean_logit"}


def test_analysis_roundtrip_and_json_layout(toy, task, tmp_path):
    res = analyze_neurons(toy, task, top_k=16, method="exact", n_per_op=8, min_neurons=2, knockout_prompts=8,
                          n_random=1)
    res.save(tmp_path / "n.json")
    d = res.to_dict()
    assert {"neurons", "classified_fraction", "class_knockout", "prompt_knockout", "seconds"} <= set(d)
    assert {"layer", "index", "importance", "heuristics"} <= set(d["neurons"][0])
    assert len(d["neurons"]) == 4 * 2 * 16
    assert {"per_layer", "heuristic_accuracy", "random_accuracy"} <= set(d["prompt_knockout"])
    assert max(d["prompt_knockout"]["per_layer"]) <= 8  # the default curve stops at k/2
    back = NeuronAnalysis.load(tmp_path / "n.json")
    assert back.to_dict() == d
    c = res.classification
    c.save(tmp_path / "c.json")
    assert NeuronClassification.load(tmp_path / "c.json").fractions() == c.fractions()
    res.class_knockout.save(tmp_path / "k.json")
    assert ClassKnockout.load(tmp_path / "k.json") == res.class_knockout


def test_bad_input(toy, task, classification):
    attn_only = tiny_bridge(attn_only=True)
    with pytest.raises(ShapeError, match="hook_post"):
        greedy_correct(attn_only, torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ShapeError, match="hook_post"):
        classify_neurons(attn_only, task, {0: [1]})
    with pytest.raises(ShapeError, match="hook_post"):
        analyze_neurons(attn_only, task, top_k=1)
    with pytest.raises(NeuronError, match="outside 1..d_mlp=64"):
        analyze_neurons(toy, task, top_k=65)
    with pytest.raises(NeuronError, match=r"\(0, 1\]"):
        analyze_neurons(toy, task, top_frac=1.5)
    for t in (0.0, 1.2):
        with pytest.raises(NeuronError, match=r"\(0, 1\]"):
            classify_neurons(toy, task, {0: [1]}, config=ClassifierConfig(threshold=t))
    plus_only = parse_task("arith:+:0-9")
    with pytest.raises(TaskError, match=r"operator '\*' is not in the task"):
        prompt_knockout(toy, plus_only, classification, op="*")
    with pytest.raises(TaskError, match="not in the task"):
        classify_neurons(toy, plus_only, {0: [1]}, ops=["/"])
    with pytest.raises(TaskError, match="not in the task"):
        class_knockout(toy, plus_only, classification)
    with pytest.raises(ShapeError, match="d_mlp is 64"):
        greedy_correct(toy, torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, dtype=torch.long), zero={0: [64]})
    with pytest.raises(InterpError, match="rank_by"):
        prompt_knockout(toy, task, classification, op="+", rank_by="size")
    with pytest.raises(NeuronError, match="one neuron set per prompt"):
        greedy_correct(toy, torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, dtype=torch.long), row_zero=[{}])
    assert np.isnan(knockout_accuracy(toy, torch.zeros(0, 5, dtype=torch.long), torch.zeros(0, dtype=torch.long),
                                      {0: [1]}))


def test_report_section(toy):
    from interp.report import ReportContext
    from interp.report.neurons import neuron_section

    ctx = ReportContext(model_name="tiny", task_spec="arith:+-*/:0-9", n_per_op=8, quick=True, progress=False)
    sec = neuron_section(toy, ctx)
    assert sec.title == "Neurons as heuristics" and sec.figures and "classified" in " ".join(sec.paragraphs)
    assert ctx.results["neurons"].classification.ops.keys() == {"+", "-", "*", "/"}
    skipped = neuron_section(tiny_bridge(attn_only=True), ReportContext(model_name="attn", task_spec="arith:+:0-9"))
    assert "Skipped" in skipped.paragraphs[0] and "hook_post" in skipped.paragraphs[0]


def test_random_pool_is_an_option_and_recorded(toy, task, classification):
    """Issue 13: the random control's pool - the layer's classified top neurons (paper), the whole layer, or the
    layer's neurons active on the knockout prompts - is chosen and recorded in the result."""
    from interp.neurons.knockout import evaluation_prompts

    kw = dict(op="+", per_layer=[0, 2], n_prompts=8, n_random=1)
    top = prompt_knockout(toy, task, classification, **kw)
    assert top.random_pool == "top" and top.pool_sizes == {"0": 64, "1": 64}
    layer = prompt_knockout(toy, task, classification, random_pool="layer", **kw)
    assert layer.random_pool == "layer" and layer.pool_sizes == {"0": 64, "1": 64}
    active = prompt_knockout(toy, task, classification, random_pool="active", **kw)
    toks = torch.tensor([p.tokens for p in evaluation_prompts(toy, task, "+", 8)])
    with torch.no_grad():
        _, cache = toy.run_with_cache(toks)
    want = {str(lyr): int((cache[f"blocks.{lyr}.mlp.hook_post"][:, -1] > 0).any(0).sum()) for lyr in (0, 1)}
    assert active.random_pool == "active" and active.pool_sizes == want and min(want.values()) < 64
    custom = prompt_knockout(toy, task, classification, random_pool={0: [1, 2, 3]}, **kw)
    assert custom.random_pool == "custom" and custom.pool_sizes == {"0": 3}
    assert PromptKnockout.from_dict(active.to_dict()).pool_sizes == want
    with pytest.raises(NeuronError, match="top, layer, active"):
        prompt_knockout(toy, task, classification, random_pool="everything", **kw)


def test_never_active_neurons_are_not_classified(toy, task):
    """A neuron whose activation is exactly 0 on the whole grid is listed as inactive, outside the classified
    fraction; its importance is exactly 0, so it is never a top neuron."""
    from interp.neurons.importance import importance_by_operator

    p = dict(toy.named_parameters())
    w = p["layers.0._original_component.mlp._original_component.fc_in._original_component.weight"]
    b = p["layers.0._original_component.mlp._original_component.fc_in._original_component.bias"]
    saved = (w[7].clone(), b[7].clone())
    try:
        with torch.no_grad():
            w[7], b[7] = 0.0, -100.0  # GELU(-100) is exactly 0 in float32
        c = classify_neurons(toy, task, {0: [3, 7]}, ops=["+"])
        assert c.ops["+"].inactive == ((0, 7),) and [n.index for n in c.ops["+"].neurons] == [3]
        imp = importance_by_operator(toy, task, ops=["+"], n_per_op=8, layers=[0])["+"]
        assert imp.mean[0, 7] == 0 and 7 in imp.zero_importance()[0]
        assert 7 not in imp.top(k=64)[0]
    finally:
        with torch.no_grad():
            w[7], b[7] = saved
