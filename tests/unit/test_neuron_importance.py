"""Neuron importance: exact and AtP scores against their references, top-k, verification, faithfulness curve."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import random_pairs, tiny_bridge

from interp.errors import ShapeError, UnknownNameError
from interp.neurons import NeuronImportance
from interp.neurons._common import NeuronError
from interp.neurons.importance import faithfulness_curve, neuron_importance, verify_top_neurons
from interp.patching import patch


@pytest.fixture(scope="module")
def model():
    return tiny_bridge()


@pytest.fixture(scope="module")
def pairs(model):
    return random_pairs(model, batch=6, seq=5, seed=3)


def test_exact_importance_is_patching_mean_plus_std(model, pairs):
    imp = neuron_importance(model, pairs, method="exact")
    ref = patch(model, pairs, site="neurons", positions="last", metric="ie", progress=False)
    np.testing.assert_allclose(imp.mean, ref.effects[:, 0, :])
    np.testing.assert_allclose(imp.std, ref.stderr[:, 0, :] * math.sqrt(pairs.n))
    np.testing.assert_allclose(imp.score, imp.mean + imp.std)
    assert imp.layers == [0, 1, 2] and imp.mean.shape == (3, 64)


def test_atp_importance_and_top(model, pairs):
    from interp.patching.attribution import attribution_scores

    imp = neuron_importance(model, pairs, method="atp", layers=[1, 2])
    s = attribution_scores(model, pairs, site="neurons", positions="last", layers=[1, 2])[:, :, 0, :].numpy()
    np.testing.assert_allclose(imp.mean, s.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(imp.std, s.std(0, ddof=1), rtol=1e-6, atol=1e-9)
    top = imp.top(k=5)
    assert list(top) == [1, 2]
    for layer, idx in top.items():
        sc = imp.layer_scores(layer)
        assert idx == np.argsort(-sc, kind="stable")[:5].tolist()
    assert len(imp.top(frac=0.25)[1]) == 16
    with pytest.raises(NeuronError, match="outside 1..d_mlp=64"):
        imp.top(k=65)
    with pytest.raises(NeuronError, match="exactly one"):
        imp.top(k=3, frac=0.1)
    with pytest.raises(ShapeError, match="not scored"):
        imp.top(k=3, layers=[0])


def test_verify_top_neurons_is_exact_patching(model, pairs):
    imp = neuron_importance(model, pairs, method="atp")
    top = imp.top(k=4)
    check = verify_top_neurons(model, pairs, imp, top)
    ref = patch(model, pairs, site="neurons", positions="last", progress=False)
    for l, n, e in zip(check.layers, check.neurons, check.exact):
        assert e == pytest.approx(ref.effects[l, 0, n])
    assert len(check.exact) == 12 and -1 <= check.spearman <= 1
    assert check.plot().data


def test_roundtrip_and_plot(model, pairs, tmp_path):
    imp = neuron_importance(model, pairs, method="exact", layers=[0])
    imp.save(tmp_path / "imp.json")
    back = NeuronImportance.load(tmp_path / "imp.json")
    np.testing.assert_allclose(back.score, imp.score)
    assert back.layers == [0] and len(imp.plot().data) == 1


def test_faithfulness_curve_ends_at_one(tmp_path_factory):
    from interp.models.toy import ToyArithConfig, load_toy, save_toy, train_toy
    from interp.neurons.importance import importance_by_operator
    from interp.tasks import parse_task

    cfg = ToyArithConfig(n_numbers=100, operand_max=9, n_layers=2, d_model=32, n_heads=2, d_mlp=64, steps=150,
                         batch_size=128, lr=3e-3, held_out_frac=0.0)
    path = tmp_path_factory.mktemp("tinytoy")
    save_toy(cfg, train_toy(cfg, progress=False).state_dict, path)
    toy, task = load_toy(path), parse_task("arith:*/:0-9")
    imp = importance_by_operator(toy, task, n_per_op=8, method="atp")
    curve = faithfulness_curve(toy, task, imp, ks=[0, 8, 64], n_per_op=8)
    for op, v in curve.values.items():
        assert v[-1] == pytest.approx(1.0), op  # every neuron and head kept: the full model
    assert curve.plot().data


def test_bad_input(model, pairs):
    with pytest.raises(UnknownNameError, match="atp"):
        neuron_importance(model, pairs, method="fast")
    with pytest.raises(ShapeError, match="hook_post"):
        neuron_importance(tiny_bridge(attn_only=True), pairs)
    with pytest.raises(ShapeError, match="layers 0..2"):
        neuron_importance(model, pairs, layers=[3])
