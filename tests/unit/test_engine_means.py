"""Mean caches through the engine's explicit forward (`interp.patching.engine.means`) equal the bridge's
``run_with_cache`` means, with and without shared prefixes, on every architecture the engine supports."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_bridge

from interp.circuits.ablation import mean_cache
from interp.patching.engine import ConeEngine
from interp.patching.engine.means import activation_sums, plan_prefix

ARCHS = {
    "ln-learned-gelu": {},
    "llama-like": dict(normalization_type="RMS", positional_embedding_type="rotary", gated_mlp=True, act_fn="silu",
                       n_key_value_heads=2),
}


def grid_tokens(v: int = 50) -> torch.Tensor:
    """``[BOS a op b =]`` over a small grid: every ``BOS a op`` prefix is shared by the same number of rows."""
    rows = [[1, a, op, b, 7] for op in (3, 4) for a in range(10, 16) for b in range(20, 25)]
    return torch.tensor(rows) % v


def test_plan_prefix_picks_the_cheapest_equal_group_split():
    tok = grid_tokens()
    p, pre, members = plan_prefix(tok)
    assert p == 3 and pre.shape == (12, 3) and members.shape == (5, 12)  # 2 ops x 6 a; 5 b each
    for u in range(12):  # every member row starts with its prefix; every row appears once
        assert torch.equal(tok[members[:, u], :3], pre[u].expand(5, 3))
    assert sorted(members.flatten().tolist()) == list(range(tok.shape[0]))
    # one duplicated row: groups by (BOS a) and (BOS a op) are no longer of equal size; only the BOS split is left
    assert plan_prefix(torch.cat([tok, tok[:1]]))[0] == 1
    rand = torch.randint(0, 50, (40, 5), generator=torch.Generator().manual_seed(0))
    assert plan_prefix(rand)[0] == 0  # nothing shared
    # the prefixes are torch.unique(dim=0)'s, in its lexicographic order, on grids with repeated tokens too
    planned = 0
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        heads = torch.randint(0, 3, (6, 3), generator=g)
        tok = torch.cat([heads.repeat_interleave(4, 0), torch.randint(0, 9, (24, 2), generator=g)], 1)
        p, pre, members = plan_prefix(tok)
        if p:
            assert torch.equal(pre, torch.unique(tok[:, :p], dim=0))
            assert torch.equal(tok[members, :p], pre.expand(members.shape[0], -1, -1))
            planned += 1
    assert planned >= 2


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("shared", [True, False])
def test_engine_mean_cache_equals_run_with_cache(arch, shared):
    model = tiny_bridge(n_layers=2, **ARCHS[arch])
    tok = grid_tokens() if shared else torch.randint(0, 50, (37, 5), generator=torch.Generator().manual_seed(1))
    ref = mean_cache(model, None, tokens=tok, engine=False, kinds=("head", "mlp", "attn_out", "resid"))
    got = mean_cache(model, None, tokens=tok, batch_size=16, kinds=("head", "mlp", "attn_out", "resid"))
    assert set(got) == set(ref)
    for name in ref:
        assert got[name].shape == ref[name].shape, name
        scale = float(ref[name].abs().max())
        assert float((got[name] - ref[name]).abs().max()) <= 1e-5 * scale, name
    # small max_rows: a prefix's rows split over several passes, prefixes over several blocks
    eng = ConeEngine.for_model(model)
    eng.verify(tok)
    a = activation_sums(eng, tok, {("z", 1), ("post", 0)}, max_rows=3)
    b = activation_sums(eng, tok, {("z", 1), ("post", 0)}, max_rows=1000)
    for k in a:  # equal up to float32 rounding of differently shaped matrix products
        assert float((a[k] - b[k]).abs().max()) <= 1e-5 * float(b[k].abs().max()), k


def test_on_logits_sees_every_row_once_with_its_last_logits():
    model = tiny_bridge(n_layers=2)
    tok = grid_tokens()
    seen = torch.zeros(tok.shape[0], dtype=torch.long)
    pred = torch.empty(tok.shape[0], dtype=torch.long)

    def keep(rows, last):
        seen[rows] += 1
        pred[rows] = last.argmax(-1)

    mean_cache(model, None, tokens=tok, on_logits=keep, batch_size=8)
    assert torch.all(seen == 1)
    with torch.inference_mode():
        assert torch.equal(pred, model(tok)[:, -1].argmax(-1))


def test_hooked_model_falls_back_to_the_bridge(monkeypatch):
    """An attached hook makes the engine unusable: the bridge path runs (and the hook sees every batch)."""
    model = tiny_bridge(n_layers=2)
    tok = grid_tokens()
    calls = []
    handle = model.blocks[0].attn.hook_z.add_hook(lambda act, hook: calls.append(act.shape[0]))
    try:
        got = mean_cache(model, None, tokens=tok, batch_size=16)
    finally:
        model.reset_hooks()
    assert sum(calls) >= tok.shape[0]
    ref = mean_cache(model, None, tokens=tok, engine=False)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name])
    del handle


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("shared", [True, False])
def test_last_position_acts_equal_the_cache_at_the_last_position(arch, shared):
    from interp.patching.engine.means import last_position_acts

    model = tiny_bridge(n_layers=3, **ARCHS[arch])
    tok = grid_tokens() if shared else torch.randint(0, 50, (37, 5), generator=torch.Generator().manual_seed(1))
    _, cache = model.run_with_cache(tok)
    eng = ConeEngine.for_model(model)
    eng.verify(tok)
    pick = torch.tensor([5, 0, 2])
    want = {("post", 0), ("z", 1), ("resid_pre", 1), ("post", 1)}
    got = last_position_acts(eng, tok, want, max_rows=7, select={("post", 1): pick})
    ref = {("post", 0): cache["blocks.0.mlp.hook_post"][:, -1], ("z", 1): cache["blocks.1.attn.hook_z"][:, -1],
           ("resid_pre", 1): cache["blocks.1.hook_resid_pre"][:, -1],
           ("post", 1): cache["blocks.1.mlp.hook_post"][:, -1][:, pick]}
    assert set(got) == want
    for key, r in ref.items():
        assert got[key].shape == r.shape, key
        assert float((got[key] - r).abs().max()) <= 1e-5 * float(r.abs().max()), key
