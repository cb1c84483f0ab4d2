"""K maps, value-vector logit lens and KV maps: against a plain cache, streamed in blocks, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.errors import ShapeError, TaskError
from interp.neurons import NeuronMap, OperandGrid, iter_maps, neuron_map, neuron_maps, top_value_tokens, value_logits
from interp.neurons.maps import blocks_needed
from interp.tasks import parse_task


def _tiny_toy(tmp_path_factory, steps=150):
    """A 2-layer toy-arith on operands 0..9, trained for a moment: some prompts right, some wrong."""
    from interp.models.toy import ToyArithConfig, load_toy, save_toy, train_toy

    cfg = ToyArithConfig(n_numbers=100, operand_max=9, n_layers=2, d_model=32, n_heads=2, d_mlp=64, steps=steps,
                         batch_size=128, lr=3e-3, held_out_frac=0.0)
    path = tmp_path_factory.mktemp("tinytoy")
    save_toy(cfg, train_toy(cfg, progress=False).state_dict, path)
    return load_toy(path)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _tiny_toy(tmp_path_factory)


@pytest.fixture(scope="module")
def task():
    return parse_task("arith:+-*/:0-9")


def test_synthetic_grids_follow_the_task_rules():
    sizes = {op: OperandGrid.synthetic(op).n for op in "+-*/"}
    assert sizes["+"] == 10_000 and sizes["-"] == 5050 and sizes["/"] == 9900
    g = OperandGrid.synthetic("*")
    assert g.result.max() <= 999 and g.factor == pytest.approx(g.n / 100**2)
    assert (g.operand_width, g.result_width, g.span) == (2, 3, 100)
    m = OperandGrid.synthetic("-", hi=9).to_matrix(np.arange(55))
    assert m.shape == (10, 10) and np.isnan(m[0, 1]) and m[9, 9] == 54


def test_grid_from_task_matches_the_synthetic_grid(model, task):
    for op in "+-*/":
        g, s = OperandGrid.from_task(model, task, op), OperandGrid.synthetic(op, hi=9, max_result=99)
        assert np.array_equal(g.a, s.a) and np.array_equal(g.b, s.b) and np.array_equal(g.result, s.result)
        assert g.tokens.shape == (g.n, 5) and np.array_equal(g.answer_tokens, g.result)  # toy: token id == number


def test_maps_match_a_plain_cache_and_the_logit_lens(model, task):
    g = OperandGrid.from_task(model, task, "+")
    neurons = {0: [3, 7], 1: [0, 63]}
    block = neuron_maps(model, g, neurons)
    _, cache = model.run_with_cache(g.tokens, names_filter=lambda n: n.endswith("mlp.hook_post"))
    lens = {l: value_logits(model, l, idx) for l, idx in neurons.items()}
    for j, (l, n) in enumerate(zip(block.layers, block.neurons)):
        k = cache[f"blocks.{l}.mlp.hook_post"][:, -1, n].numpy()
        np.testing.assert_allclose(block.k[:, j], k, rtol=1e-5, atol=1e-6)
        logit = lens[l][neurons[l].index(n)][torch.as_tensor(g.answer_tokens)].numpy()
        np.testing.assert_allclose(block.kv[:, j], k * logit, rtol=1e-4, atol=1e-6)
    w = model.blocks[1].mlp.W_out[5] @ model.W_U
    torch.testing.assert_close(value_logits(model, 1, [5])[0], w.float(), rtol=1e-5, atol=1e-6)


def test_streaming_in_blocks_equals_one_pass(model, task):
    g = OperandGrid.from_task(model, task, "/")
    neurons = {0: list(range(0, 64, 3)), 1: list(range(1, 64, 5))}
    whole = neuron_maps(model, g, neurons)
    budget = 3 * g.n * 8 / 2**20  # three neurons per block
    blocks = list(iter_maps(model, g, neurons, budget_mb=budget))
    assert len(blocks) == blocks_needed(g, whole.size, budget_mb=budget) == -(-whole.size // 3)
    assert max(b.size for b in blocks) == 3
    # blocks stop at different layers (the last one only at the last position): float32 rounding apart
    np.testing.assert_allclose(np.concatenate([b.k for b in blocks], 1), whole.k, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([b.kv for b in blocks], 1), whole.kv, rtol=1e-4, atol=1e-6)
    assert np.concatenate([b.neurons for b in blocks]).tolist() == whole.neurons.tolist()
    assert [b.kv for b in iter_maps(model, g, {0: [1]}, kv=False)] == [None]


def test_engine_maps_equal_bridge_maps_and_skip_the_bridge(model, task, monkeypatch):
    """The maps run on the cone engine (shared ``BOS a op`` prefixes once, layers up to the last needed one): the
    same values as the bridge's hooked passes, without calling the bridge; an attached hook falls back to it."""
    from interp.neurons.maps import _run_block

    block = [(0, 3), (0, 60), (1, 0), (1, 17), (1, 63)]
    for op in "+-":  # '+': every prefix shared by 10 rows; '-': unequal groups (b <= a), no shared prefix
        g = OperandGrid.from_task(model, task, op)
        ref = _run_block(model, g, block, kv=True, batch_size=7, engine=False)
        with monkeypatch.context() as m:
            m.setattr(type(model), "run_with_hooks", lambda *a, **k: pytest.fail("the bridge ran"))
            got = _run_block(model, g, block, kv=True, batch_size=7)
            only0 = _run_block(model, g, block[:2], kv=False, batch_size=4096)  # stops after layer 0
        scale = float(np.abs(ref.k).max())
        assert float(np.abs(got.k - ref.k).max()) <= 1e-5 * scale
        assert float(np.abs(got.kv - ref.kv).max()) <= 1e-5 * float(np.abs(ref.kv).max())
        assert float(np.abs(only0.k - ref.k[:, :2]).max()) <= 1e-5 * scale
    model.blocks[0].mlp.hook_post.add_hook(lambda act, hook: act * 2.0)
    try:
        doubled = _run_block(model, g, block[:2], kv=False, batch_size=4096)
    finally:
        model.reset_hooks()
    np.testing.assert_allclose(doubled.k, 2.0 * ref.k[:, :2], rtol=1e-5, atol=1e-6)


def test_neuron_map_plot_and_roundtrip(model, task, tmp_path):
    nm = neuron_map(model, task, "-", 1, 4, n_tokens=5)
    assert nm.k_map.shape == (10, 10) and np.isnan(nm.k_map[0, 5]) and len(nm.top_tokens) == 5
    logits = [v for _, v in nm.top_tokens]
    assert logits == sorted(logits, reverse=True)
    assert top_value_tokens(model, 1, 4, k=5) == list(nm.top_tokens)
    fig = nm.plot()
    assert "top value-vector tokens" in fig.layout.title.text
    nm.save(tmp_path / "m.json")
    back = NeuronMap.load(tmp_path / "m.json")
    np.testing.assert_allclose(back.kv_map, nm.kv_map)
    assert back.top_tokens == nm.top_tokens


def test_bad_input(model, task):
    from conftest import tiny_bridge

    g = OperandGrid.from_task(model, task, "+")
    with pytest.raises(ShapeError, match="d_mlp is 64"):
        neuron_maps(model, g, {0: [64]})
    with pytest.raises(ShapeError, match="layers 0..1"):
        neuron_maps(model, g, {2: [0]})
    with pytest.raises(TaskError, match="not in the task"):
        OperandGrid.from_task(model, parse_task("arith:+:0-9"), "*")
    with pytest.raises(TaskError, match="synthetic"):
        list(iter_maps(model, OperandGrid.synthetic("+", hi=9), {0: [1]}))
    with pytest.raises(ShapeError, match="hook_post"):
        neuron_maps(tiny_bridge(attn_only=True), g, {0: [1]})
    with pytest.raises(ShapeError, match="budget"):
        list(iter_maps(model, g, {0: [1]}, budget_mb=0))
