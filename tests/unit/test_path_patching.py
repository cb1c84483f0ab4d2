"""Path patching against independent constructions: activation patching (last layer), a residual-stream delta
(frozen MLPs) and a hand-built receiver run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import random_pairs, tiny_bridge

from interp.errors import ShapeError, UnknownNameError
from interp.metrics import MetricContext, make_metric
from interp.patching.path import parse_receivers, path_patch


@pytest.fixture(scope="module")
def model64():
    m = tiny_bridge()
    m.to(torch.float64)
    return m


@pytest.fixture(scope="module")
def pairs(model64):
    return random_pairs(model64, batch=4, seq=5, seed=1)


def _metric(model, p, logits):  # path_patch scores in float32, hence abs=1e-6 below
    with torch.inference_mode():
        lb, ls = model(p.clean_tokens)[:, -1], model(p.corrupt_tokens)[:, -1]
    ctx = MetricContext(lb, ls, p.clean_answers, p.corrupt_answers)
    return make_metric("logit_diff", ctx)(logits[:, -1].detach()).mean()


def _z(model, tokens, layer):
    name = f"blocks.{layer}.attn.hook_z"
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n == name)
    return cache[name]


def test_last_layer_sender_to_logits_is_activation_patching(model64, pairs):
    res = path_patch(model64, pairs, layers=[2], metric="logit_diff", progress=False)
    src = _z(model64, pairs.corrupt_tokens, 2)
    for h in range(4):
        def hook(z, hook, h=h):
            z = z.clone()
            z[:, :, h] = src[:, :, h]
            return z

        logits = model64.run_with_hooks(pairs.clean_tokens, fwd_hooks=[("blocks.2.attn.hook_z", hook)])
        assert res.effects[0, h] == pytest.approx(float(_metric(model64, pairs, logits)), abs=1e-6)


def test_frozen_mlps_leave_only_the_senders_own_write(model64, pairs):
    """With every other head and every MLP frozen, the final residual is the base one plus z_delta @ W_O."""
    res = path_patch(model64, pairs, layers=[0], metric="logit_diff", freeze_mlps=True, progress=False)
    dz = _z(model64, pairs.corrupt_tokens, 0) - _z(model64, pairs.clean_tokens, 0)
    for h in range(4):
        delta = torch.einsum("bpd,dm->bpm", dz[:, :, h], model64.W_O[0, h])
        logits = model64.run_with_hooks(pairs.clean_tokens,
                                        fwd_hooks=[("blocks.2.hook_resid_post", lambda x, hook, d=delta: x + d)])
        assert res.effects[0, h] == pytest.approx(float(_metric(model64, pairs, logits)), abs=1e-6)
    # without freezing, the MLPs (and later heads) carry more of the sender's effect: the numbers differ
    free = path_patch(model64, pairs, layers=[0], metric="logit_diff", progress=False)
    assert not np.allclose(free.effects, res.effects)


def test_receiver_heads_see_only_the_senders_path(model64, pairs):
    """Sender L0Hh -> receivers = every head of layer 1, MLPs frozen: layer 1's heads recompute from
    resid_pre1 + the sender's write, then only their outputs are patched into a clean run."""
    res = path_patch(model64, pairs, receivers="L1H0,L1H1,L1H2,L1H3", layers=[0], metric="logit_diff",
                     freeze_mlps=True, progress=False, engine="full")
    assert res.n_forward_passes == 2 + 2 * 4 and res.meta["receivers"] == ["L1H0", "L1H1", "L1H2", "L1H3"]
    dz = _z(model64, pairs.corrupt_tokens, 0) - _z(model64, pairs.clean_tokens, 0)
    for h in range(4):
        delta = torch.einsum("bpd,dm->bpm", dz[:, :, h], model64.W_O[0, h])
        with model64.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, hook, d=delta: x + d)]):
            _, cache = model64.run_with_cache(pairs.clean_tokens, names_filter=lambda n: n == "blocks.1.attn.hook_z")
        z1 = cache["blocks.1.attn.hook_z"]
        logits = model64.run_with_hooks(pairs.clean_tokens,
                                        fwd_hooks=[("blocks.1.attn.hook_z", lambda z, hook, z1=z1: z1)])
        assert res.effects[0, h] == pytest.approx(float(_metric(model64, pairs, logits)), abs=1e-6)
    # a subset of receivers carries a different (here: partial) effect
    one = path_patch(model64, pairs, receivers=[(1, 0)], layers=[0], metric="logit_diff", freeze_mlps=True,
                     progress=False)
    assert not np.allclose(one.effects, res.effects)


def test_result_roundtrip_and_plot(model64, pairs, tmp_path):
    res = path_patch(model64, pairs, metric="logit_diff", progress=False)
    assert res.axes == ("layer", "head") and res.effects.shape == (3, 4)
    res.save(tmp_path / "p.json")
    d = json.loads((tmp_path / "p.json").read_text())
    assert d["meta"]["method"] == "path_patching" and np.allclose(d["effects"], res.effects)
    assert res.plot().data


def test_bad_input(model64, pairs):
    assert parse_receivers(" logits ") == "logits" and parse_receivers("L2H1,l1h0") == [(1, 0), (2, 1)]
    with pytest.raises(ShapeError, match="L9H6"):
        parse_receivers("heads")
    with pytest.raises(ShapeError, match="do not exist"):
        path_patch(model64, pairs, receivers="L7H0", progress=False)
    with pytest.raises(ShapeError, match="after the senders"):
        path_patch(model64, pairs, receivers="L1H0", layers=[1, 2], progress=False)
    with pytest.raises(UnknownNameError):
        path_patch(model64, pairs, metric="accuracy", progress=False)


def test_patch_cli_path_to(tmp_path, capsys):
    from interp.cli import main

    out = tmp_path / "pp.json"
    assert main(["patch", "--model", "toy-arith", "--task", "arith:+", "--n-per-op", "12", "--path-to", "L3H0,L3H2",
                 "--freeze-mlps", "--metric", "logit_diff", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["axes"] == ["layer", "head"] and d["meta"]["receivers"] == ["L3H0", "L3H2"] and d["meta"]["freeze_mlps"]
    # through the cone engine: one batched pass per sender layer (2 hooked passes per sender with engine="full")
    assert len(d["effects"]) == 4 and d["meta"]["engine"] == "cone" and d["n_forward_passes"] == 2 + 4
    # senders in the receivers' layer have no path to them: exactly the unpatched value
    assert d["effects"][3] == pytest.approx([d["baseline"]["base"]] * 4, abs=1e-4)
    assert "path patching to L3H0,L3H2" in capsys.readouterr().out
    assert main(["patch", "--model", "toy-arith", "--task", "arith:+", "--path-to", "logits", "--site", "mlps",
                 "--out", str(out)]) == 2
    assert "--site heads" in capsys.readouterr().err
