"""The cone-aware patching engine equals one-at-a-time patching and transformer_lens.patching, for every site.

Random tiny bridges cover learned and rotary positions, LayerNorm and RMSNorm, plain and gated MLPs and grouped-query
attention (native bridges), plus a tiny Hugging Face Llama booted through ``boot_transformers`` (the adapter path
SmolLM2 uses). "Relative difference" is measured against the sweep's scale: the largest reference effect or the
distance between the unpatched base and source metric values, whichever is larger.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import transformer_lens.patching as tlp
from conftest import random_pairs, tiny_bridge

import interp.patching.engine.core as engine_mod
from interp.errors import ShapeError, UnknownNameError
from interp.metrics import MetricContext, make_metric
from interp.patching import patch
from interp.patching.engine import ConeEngine, Unsupported, parse_bytes, top_neurons_per_layer

RTOL = 1e-5
SITES = ["resid", "attn_out", "mlp_out", "heads", "mlps", "neurons"]
NEURONS = [0, 31, 63]
ARCHS = {
    "ln-learned-gelu": {},
    "rotary": dict(positional_embedding_type="rotary"),
    "rms": dict(normalization_type="RMS"),
    "gated-silu": dict(gated_mlp=True, act_fn="silu"),
    "gqa": dict(n_key_value_heads=2),
    "llama-like": dict(normalization_type="RMS", positional_embedding_type="rotary", gated_mlp=True, act_fn="silu",
                       n_key_value_heads=2),
}


def _scale(res, ref) -> float:
    ref = torch.as_tensor(ref, dtype=torch.float64)
    return max(float(ref.abs().max()), abs(res.baseline["source"] - res.baseline["base"]), 1e-12)


def assert_rel(res, ref, *, rtol: float = RTOL) -> None:
    ours = torch.as_tensor(res.effects, dtype=torch.float64).reshape(-1)
    ref_t = torch.as_tensor(ref, dtype=torch.float64).reshape(-1)
    err = float((ours - ref_t).abs().max()) / _scale(res, ref_t)
    assert err <= rtol, f"relative difference {err:.2e} > {rtol}"


def _neuron_setter(corrupted, index, clean):
    _, pos, n = index
    corrupted[:, pos, n] = clean[:, pos, n]
    return corrupted


def transformer_lens_sweep(model, pairs, site, metric):
    """The same sweep with transformer_lens.patching (base = clean run, corrupt activations patched in)."""
    with torch.no_grad():
        base = model(pairs.clean_tokens)[:, -1].float()
        src, cache = model.run_with_cache(pairs.corrupt_tokens)
    f = make_metric(metric, MetricContext(base, src[:, -1].float(), pairs.clean_answers, pairs.corrupt_answers))

    def tl_metric(logits):
        return f(logits[:, -1].float()).mean()

    toks = pairs.clean_tokens
    if site == "resid":
        return tlp.get_act_patch_resid_pre(model, toks, cache, tl_metric)
    if site == "attn_out":
        return tlp.get_act_patch_attn_out(model, toks, cache, tl_metric)
    if site == "mlp_out":
        return tlp.get_act_patch_mlp_out(model, toks, cache, tl_metric)
    if site == "heads":
        return tlp.get_act_patch_attn_head_out_by_pos(model, toks, cache, tl_metric)
    if site == "mlps":
        return tlp.generic_activation_patch(model, toks, cache, tl_metric, tlp.layer_pos_patch_setter, "post",
                                            index_axis_names=["layer", "pos"])
    rows = [(lyr, p, n) for lyr in range(int(model.cfg.n_layers)) for p in range(pairs.seq_len) for n in NEURONS]
    df = pd.DataFrame(rows, columns=["layer", "pos", "neuron"])
    return tlp.generic_activation_patch(model, toks, cache, tl_metric, _neuron_setter, "post", index_df=df)


def _kw(site):
    return dict(neurons=NEURONS) if site == "neurons" else {}


@pytest.fixture(scope="module", params=list(ARCHS), ids=list(ARCHS))
def arch_model(request):
    return tiny_bridge(n_layers=2, **ARCHS[request.param])


@pytest.mark.parametrize("site", SITES)
def test_engine_equals_one_at_a_time_and_transformer_lens(arch_model, site):
    model = arch_model
    pairs = random_pairs(model, batch=3, seq=4, seed=11)
    cone = patch(model, pairs, site=site, positions="all", metric="logit_diff", engine="cone", progress=False,
                 **_kw(site))
    assert cone.meta["engine"] == "cone"
    one = patch(model, pairs, site=site, positions="all", metric="logit_diff", engine="full", max_rows=pairs.n,
                progress=False, **_kw(site))
    n_variants = cone.effects.size
    assert one.n_forward_passes == 2 + n_variants  # one patch per forward
    assert_rel(cone, one.effects)
    assert_rel(cone, transformer_lens_sweep(model, pairs, site, "logit_diff"))
    assert float(abs(cone.effects).max()) > 1e-3  # not trivially zero
    assert cone.meta["flops"] <= 1.2 * cone.meta["flops_cone"]  # runs at the cone's limit


@pytest.mark.parametrize("metric", ["ie", "prob_norm", "logit_diff_norm"])
def test_other_metrics_match_transformer_lens(metric):
    model = tiny_bridge(n_layers=2, **ARCHS["llama-like"])
    pairs = random_pairs(model, batch=4, seq=5, seed=3)
    for site in ("heads", "neurons"):
        res = patch(model, pairs, site=site, positions="all", metric=metric, engine="cone", progress=False,
                    **_kw(site))
        assert_rel(res, transformer_lens_sweep(model, pairs, site, metric), rtol=2e-5)


def _tiny_llama(tok_dir):
    from tokenizers import Tokenizer, models
    from transformer_lens import TransformerBridge
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(64)}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")),
                                  bos_token="t1", eos_token="t2", unk_token="t0")
    tok.save_pretrained(tok_dir)  # an in-memory tokenizer crashes the bridge (and it reloads from this path)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                      rope_theta=100000.0, tie_word_embeddings=True)
    torch.manual_seed(0)
    hf = LlamaForCausalLM(cfg).eval()
    model = TransformerBridge.boot_transformers("tiny-llama", hf_model=hf, tokenizer=tok, device="cpu")
    model.enable_compatibility_mode()
    model.eval()
    return model


def test_hf_llama_adapter_matches_transformer_lens(tmp_path):
    """The Llama adapter path (SmolLM2's): HF RMSNorm module, HF rotary tables (rope_theta != cfg.rotary_base)."""
    model = _tiny_llama(tmp_path)
    pairs = random_pairs(model, batch=3, seq=6, seed=5)
    for site in SITES:
        res = patch(model, pairs, site=site, positions="all", metric="logit_diff", engine="cone", progress=False,
                    **_kw(site))
        assert res.meta["engine"] == "cone"
        assert_rel(res, transformer_lens_sweep(model, pairs, site, "logit_diff"))


def test_explicit_forward_reproduces_the_bridge_bit_for_bit():
    for overrides in (ARCHS["ln-learned-gelu"], ARCHS["llama-like"]):
        model = tiny_bridge(**overrides)
        tokens = random_pairs(model, batch=4, seq=6).clean_tokens
        eng = ConeEngine.for_model(model)
        eng._rope_tables(6)
        with torch.no_grad():
            got, _ = eng.forward(tokens, set())
            assert torch.equal(got, model(tokens)[:, -1])


def test_last_position_and_layer_subset_match_slices_of_the_full_sweep(tiny):
    pairs = random_pairs(tiny, batch=4, seq=6, seed=8)
    full = patch(tiny, pairs, site="heads", positions="all", engine="full", progress=False)
    last = patch(tiny, pairs, site="heads", positions="last", layers=[1, 2], engine="cone", progress=False)
    assert last.index["layer"] == [1, 2] and last.index["pos"] == [5]
    torch.testing.assert_close(torch.tensor(last.effects[:, 0]), torch.tensor(full.effects[1:, 5]),
                               rtol=1e-5, atol=1e-5 * _scale(full, full.effects))


def test_denoising_matches_transformer_lens_convention(tiny):
    pairs = random_pairs(tiny, batch=4, seq=5, seed=9)
    res = patch(tiny, pairs, site="resid", positions="all", metric="logit_diff", direction="denoising",
                engine="cone", progress=False)
    from interp.patching.variants import oriented_pairs

    assert_rel(res, transformer_lens_sweep(tiny, oriented_pairs(pairs, "denoising"), "resid", "logit_diff"))


def test_memory_budget_splits_passes_without_changing_results(tiny):
    pairs = random_pairs(tiny, batch=4, seq=6, seed=10)
    big = patch(tiny, pairs, site="heads", positions="all", engine="cone", progress=False)
    small = patch(tiny, pairs, site="heads", positions="all", engine="cone", progress=False, max_memory="300KB")
    assert small.n_forward_passes > big.n_forward_passes + 5
    assert small.meta["peak_bytes_estimate"] <= parse_bytes("300KB")
    torch.testing.assert_close(torch.tensor(small.effects), torch.tensor(big.effects), rtol=1e-6, atol=1e-7)


def test_identical_activations_are_skipped_exactly(tiny):
    """A shared first token (BOS) makes position-0 patches no-ops: no recomputation, exact unpatched value."""
    pairs = random_pairs(tiny, batch=4, seq=5, seed=12)
    bos = torch.full((pairs.n, 1), 3)
    same = type(pairs)(torch.cat([bos, pairs.clean_tokens[:, 1:]], 1), torch.cat([bos, pairs.corrupt_tokens[:, 1:]], 1),
                       pairs.clean_answers, pairs.corrupt_answers, pairs.position_labels, "bos")
    res = patch(tiny, same, site="resid", positions="all", metric="ie", engine="cone", progress=False)
    assert res.meta["skipped_noop_patches"] >= 3
    assert (res.effects[:, 0] == 0.0).all()  # ie of the unpatched run is exactly 0
    assert_rel(res, transformer_lens_sweep(tiny, same, "resid", "ie"))


def test_per_layer_neuron_lists_and_top_k(tiny):
    pairs = random_pairs(tiny, batch=4, seq=5, seed=13)
    allr = patch(tiny, pairs, site="neurons", positions="last", engine="cone", progress=False)
    top = top_neurons_per_layer(allr, 3)
    assert set(top) == {0, 1, 2} and all(len(v) == 3 for v in top.values())
    res = patch(tiny, pairs, site="neurons", positions="all", neurons=top, engine="cone", progress=False)
    assert res.axes == ("layer", "pos", "rank") and res.effects.shape == (3, 5, 3)
    assert res.meta["neurons"] == {str(k): v for k, v in top.items()}
    for lyr in range(3):
        for r, n in enumerate(top[lyr]):
            assert res.effects[lyr, 4, r] == pytest.approx(allr.effects[lyr, 0, n], rel=1e-5, abs=1e-7)
    with pytest.raises(ShapeError, match="equal length"):
        patch(tiny, pairs, site="neurons", neurons={0: [1, 2], 1: [3]}, progress=False)
    with pytest.raises(ShapeError, match="no list for layers"):
        patch(tiny, pairs, site="neurons", neurons={0: [1]}, layers=[0, 1], progress=False)


def test_unsupported_architecture_falls_back_to_full_passes():
    model = tiny_bridge(attn_scores_soft_cap=5.0)
    pairs = random_pairs(model, batch=3, seq=5, seed=14)
    with pytest.raises(Unsupported, match="soft_cap"):
        patch(model, pairs, site="heads", engine="cone", progress=False)
    res = patch(model, pairs, site="heads", positions="all", metric="logit_diff", progress=False)
    assert res.meta["engine"] == "full" and "soft_cap" in res.meta["engine_note"]
    assert_rel(res, transformer_lens_sweep(model, pairs, "heads", "logit_diff"))


def test_failed_check_against_the_bridge_falls_back(monkeypatch):
    model = tiny_bridge(seed=3)
    pairs = random_pairs(model, batch=3, seq=5, seed=15)
    monkeypatch.setattr(engine_mod, "CHECK_RTOL", -1.0)
    engine_mod._VERIFIED.pop(model, None)
    res = patch(model, pairs, site="mlp_out", positions="all", metric="logit_diff", progress=False)
    assert res.meta["engine"] == "full" and "differs from the bridge" in res.meta["engine_note"]
    assert_rel(res, transformer_lens_sweep(model, pairs, "mlp_out", "logit_diff"))


def test_attached_hooks_disable_the_engine(tiny):
    pairs = random_pairs(tiny, batch=3, seq=5, seed=16)
    tiny.blocks[0].hook_resid_pre.add_hook(lambda act, hook: act)
    try:
        res = patch(tiny, pairs, site="resid", progress=False)
    finally:
        tiny.reset_hooks()
    assert res.meta["engine"] == "full" and "forward hook" in res.meta["engine_note"]


def test_bad_input(tiny):
    pairs = random_pairs(tiny, batch=4, seq=5)
    with pytest.raises(ShapeError, match=r"max_memory=1\.0 KB is too small for one patch.*caches take .* at least"):
        patch(tiny, pairs, site="heads", positions="all", max_memory=1000, progress=False)
    with pytest.raises(ShapeError, match="too small"):
        patch(tiny, pairs, site="heads", engine="full", max_memory="1KB", progress=False)
    with pytest.raises(ShapeError, match="not a size"):
        patch(tiny, pairs, site="heads", max_memory="lots", progress=False)

    with pytest.raises(UnknownNameError, match="valid: .*heads"):
        patch(tiny, pairs, site="head_z", progress=False)
    with pytest.raises(UnknownNameError, match="engine"):
        patch(tiny, pairs, site="heads", engine="fast", progress=False)
    with pytest.raises(ShapeError, match=r"position 5 is out of range .* 0\.\.4"):
        patch(tiny, pairs, site="heads", positions=[5], progress=False)
    with pytest.raises(ShapeError, match="neurons"):
        patch(tiny, pairs, site="neurons", neurons=[64], progress=False)
    with pytest.raises(ShapeError, match="only applies to site='neurons'"):
        patch(tiny, pairs, site="heads", neurons={0: [1]}, progress=False)
    assert parse_bytes("2GB") == 2 * 10**9 and parse_bytes("1 GiB") == 2**30 and parse_bytes(512) == 512


def test_a_variant_does_not_depend_on_what_shares_its_batch(tiny):
    """Sub-sweeps (other layers, other neurons, other budgets) give the same numbers as the whole sweep."""
    pairs = random_pairs(tiny, batch=6, seq=5, seed=3)
    whole = patch(tiny, pairs, site="neurons", positions="last", engine="cone", progress=False)
    for lyr in range(3):
        idx = [1, 5, 9, 60]
        part = patch(tiny, pairs, site="neurons", positions="last", layers=[lyr], neurons=idx, engine="cone",
                     progress=False, max_memory="2MB")
        torch.testing.assert_close(torch.tensor(part.effects[0, 0]), torch.tensor(whole.effects[lyr, 0, idx]),
                                   rtol=1e-6, atol=0)


def test_auto_budget_is_a_fraction_of_free_memory(monkeypatch):
    from interp.patching.engine import budget as eng

    monkeypatch.setattr(eng, "available_bytes", lambda device="cpu": 10 * 10**9)
    assert eng.parse_bytes("auto") == 4 * 10**9
    monkeypatch.setattr(eng, "available_bytes", lambda device="cpu": 10**9)
    assert eng.parse_bytes("auto") == eng.AUTO_MIN_BYTES  # never below 1 GB
    monkeypatch.setattr(eng, "available_bytes", lambda device="cpu": None)
    assert eng.parse_bytes(" AUTO ") == eng.AUTO_MIN_BYTES
    assert eng.parse_bytes("2GB") == 2 * 10**9


@pytest.mark.parametrize("arch", ["ln", "rotary"])
def test_forward_from_a_start_position_equals_the_full_forward(arch):
    """``forward(start=p)`` computes positions p.. from the key/value cache of a base run sharing the first p
    tokens: the same last-position logits and activations as a full forward of those tokens."""
    m = tiny_bridge() if arch == "ln" else tiny_bridge(positional_embedding_type="rotary", normalization_type="RMS",
                                                       n_key_value_heads=2)
    g = torch.Generator().manual_seed(5)
    base = torch.randint(0, 50, (3, 7), generator=g)
    other = base.clone()
    other[:, 4:] = torch.randint(0, 50, (3, 3), generator=g)
    eng = ConeEngine.for_model(m)
    with torch.inference_mode():
        eng.verify(base)
        kv = {(c, i) for i in range(eng.n_layers) for c in ("k", "v")}
        _, acts = eng.forward(base, kv)
        eng.acts, eng.batch, eng.seq_len = acts, 3, 7
        want = {("z", 1), ("resid_pre", 2), ("mlp_out", 2)}
        part_logits, part = eng.forward(other, want, start=4)
        eng.release()
        full_logits, full = eng.forward(other, want)
    assert torch.allclose(part_logits, full_logits, atol=1e-5)
    assert not torch.allclose(part_logits, eng.forward(base, set())[0], atol=1e-3)
    for key in want:
        assert part[key].shape[1] == 3 and torch.allclose(part[key], full[key][:, 4:], atol=1e-5)
