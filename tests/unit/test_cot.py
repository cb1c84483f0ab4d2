"""Chain-of-thought data, answer extraction, KV-cached batched generation (checked against the plain loop),
concept-activation counting and neuron corruption, on a tiny random Llama with a word-level tokenizer."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_bridge

from interp.errors import InterpError, UnknownNameError
from interp.sites import hook_name
from interp.vocab.cot import (
    VARIANTS,
    ConceptActivation,
    CotError,
    CotResult,
    DominantCollector,
    answer_complete,
    build_prefix,
    build_query,
    concept_neuron_sets,
    correlation,
    corrupt_neurons,
    corruption_experiment,
    evaluate_variant,
    extract_answer,
    greedy_generate,
    load_problems,
    load_variants,
    random_like,
    run_cot,
)
from interp.vocab.cot.generate import GenerationError

WORDS = ["<bos>", "<eos>", "<unk>", "Question", ":", "The", "answer", "is", ".", "\n"] + [str(i) for i in range(20)] + \
        ["Let's", "think", "step", "by", "First", "Then", "So", "+", "-", "*", "/", "="]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """A tiny random HF Llama bridge (KV cache supported) with a word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformer_lens import TransformerBridge
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("llama_tok")
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tk.save(str(d / "tokenizer.json"))
    PreTrainedTokenizerFast(tokenizer_file=str(d / "tokenizer.json"), bos_token="<bos>", eos_token="<eos>",
                            unk_token="<unk>").save_pretrained(str(d))
    tok = AutoTokenizer.from_pretrained(str(d))
    cfg = LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=0,
                      eos_token_id=1, pad_token_id=1)
    torch.manual_seed(0)
    hf = LlamaForCausalLM(cfg).eval()
    b = TransformerBridge.boot_transformers("tiny-llama", hf_model=hf, tokenizer=tok, device="cpu")
    b.enable_compatibility_mode()
    b.eval()
    return b


def test_builtin_data():
    probs = load_problems()
    assert len(probs) >= 60
    assert {p.steps for p in probs} == {1, 2}
    assert {op for p in probs for op in p.operators} == {"+", "-", "*", "/"}
    first8 = load_problems(n=8)
    assert len({(p.steps, p.operators[0]) for p in first8}) == 8  # balanced prefix
    variants = load_variants()
    assert tuple(variants) == VARIANTS
    assert all(len(v.exemplars) == 8 for v in variants.values())
    full, eq, text = variants["full_cot"], variants["equation_only"], variants["text_only"]
    assert "7 + 5 = 12" in build_prefix(full) and "=" not in build_prefix(text).replace("==", "")
    assert build_prefix(eq).count("Let's think") == 0
    assert all(e.reasoning == () for e in variants["no_cot"].exemplars)
    assert "15" in build_prefix(variants["incorrect_label"])
    assert "Mabel" in build_prefix(variants["incorrect_ood_label"])
    ops_add = {c for e in variants["add_only"].exemplars for line in e.reasoning for c in line if c in "+-*/"}
    assert ops_add == {"+"}
    assert build_query(full, "Q?") == "\n\nQuestion: Q?\nLet's think step by step\n"
    assert build_query(eq, "Q?") == "\n\nQuestion: Q?\n"


@pytest.mark.parametrize("text, answer", [
    ("So 3 + 4 = 7 apples.\nThe answer is 7.", 7.0),
    ("The answer is $1,200.\n\nQuestion: next", 1200.0),
    ("The answer is -3.", -3.0),
    ("The answer is Mabel.", None),
    ("So he has 12 apples.\n\nQuestion: The answer is 5.", None),
    ("no answer here 42", None),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_extract_answer_fallback_and_completion():
    assert extract_answer("so 4 + 5 = 9", fallback="last_number") == 9.0
    with pytest.raises(UnknownNameError):
        extract_answer("x", fallback="first")
    assert answer_complete("The answer is 12.") and answer_complete("abc\n\nQ") and answer_complete("Question:")
    assert not answer_complete("The answer is 12") and not answer_complete("First there are 3")


def test_cached_batched_generation_matches_the_plain_loop(llama):
    from interp.vocab.cot.generate import _supports_cache

    # the cached path must really be taken (fails when the installed transformers breaks the bridge's KV cache)
    assert _supports_cache(llama)
    prompts = [[3, 4, 12, 28, 13], [3, 4, 15], [5, 6, 7, 20, 21, 22, 23], [10]]
    prefix = [0, 3, 4, 11, 8, 9]
    cached = greedy_generate(llama, prompts, prefix=prefix, max_new_tokens=6, batch_size=3)
    plain = greedy_generate(llama, prompts, prefix=prefix, max_new_tokens=6, use_cache=False)
    assert [g.tokens for g in cached] == [g.tokens for g in plain]
    no_prefix = greedy_generate(llama, prompts, max_new_tokens=4, batch_size=4)
    assert [g.tokens for g in no_prefix] == [g.tokens for g in greedy_generate(llama, prompts, max_new_tokens=4,
                                                                               use_cache=False)]


def test_generation_observes_the_predicting_positions(llama):
    seen: list = []
    prompts = [[3, 4, 12], [5, 6, 7, 8, 9]]
    gens = greedy_generate(llama, prompts, prefix=[0, 3], max_new_tokens=3, batch_size=2,
                           observe=lambda layer, act, rows: seen.append((layer, act.clone(), rows.tolist())))
    # 3 steps x 2 layers; every row generates 3 tokens (no stop condition)
    assert len(seen) == 6 and all(len(g.tokens) == 3 for g in gens)
    # the first observation of row 1 equals hook_post at the last prompt position of prefix + prompt
    _, cache = llama.run_with_cache(torch.tensor([[0, 3, 5, 6, 7, 8, 9]]), names_filter=hook_name("neuron", 0))
    layer, act, rows = seen[0]
    assert layer == 0 and rows == [1, 0]  # longest prompt first
    torch.testing.assert_close(act[0], cache[hook_name("neuron", 0)][0, -1], rtol=1e-4, atol=1e-5)


def test_stop_condition_and_bad_settings(llama):
    gens = greedy_generate(llama, [[3, 4]], max_new_tokens=5, stop=lambda text: True)
    assert gens[0].stopped == "stop" and len(gens[0].tokens) == 1
    with pytest.raises(GenerationError, match="no prompts"):
        greedy_generate(llama, [])
    with pytest.raises(GenerationError, match="exceeds"):
        greedy_generate(llama, [[3] * 1020], max_new_tokens=10)
    with pytest.raises(GenerationError, match="at least one token"):
        greedy_generate(llama, [[]])


def test_plain_loop_on_a_native_bridge():
    m = tiny_bridge(n_ctx=24)  # returns no KV cache: the plain loop is used
    gens = greedy_generate(m, [[1, 2, 3], [4, 5]], prefix=[7], max_new_tokens=3)
    ref = m.generate(torch.tensor([[7, 1, 2, 3]]), max_new_tokens=3, do_sample=False, stop_at_eos=False,
                     verbose=False)[0, 4:]
    assert gens[0].tokens == tuple(ref.tolist()) and gens[0].text == "".join(f"<{t}>" for t in ref.tolist())
    with pytest.raises(GenerationError, match="no KV cache"):
        greedy_generate(m, [[1]], prefix=[2], max_new_tokens=2, use_cache=True)


def test_concept_activation_counts_by_hand(llama):
    obs = ConceptActivation(llama, {"a": {0: [1, 2]}, "b": {1: [5]}, "a@x": {0: [1]}}, top_k=2, n_prompts=2)
    norms = obs.norms
    act = torch.zeros(2, 48)
    act[0, 1], act[0, 7] = 10 / norms[0, 1], 5 / norms[0, 7]  # row 0: neurons 1 and 7 dominate
    act[1, 3], act[1, 4] = 10 / norms[0, 3], 9 / norms[0, 4]  # row 1: no concept neuron
    obs(0, act, torch.tensor([0, 1]))
    act1 = torch.zeros(1, 48)
    act1[0, 5] = 1 / norms[1, 5]
    obs(1, act1, torch.tensor([1]))
    s = obs.summary()
    assert s["a"]["hits_per_token"] == pytest.approx(0.5)  # one hit over 2 tokens
    assert s["a"]["strength_per_token"] == pytest.approx(5.0, rel=1e-4)
    assert s["a"]["activated"] == 1 and s["a"]["fraction_activated"] == 0.5
    assert s["b"]["hits_per_token"] == pytest.approx(0.5)
    assert s["all"]["hits_per_token"] == pytest.approx(1.0) and s["all"]["n_neurons"] == 3
    assert s["all@x"]["hits_per_token"] == pytest.approx(0.5) and s["all@x"]["n_neurons"] == 1


def test_dominant_collector(llama):
    col = DominantCollector(llama, top_k=3, by_row=True)
    obs = ConceptActivation(llama, {"x": {0: [0, 1, 2, 3, 4, 5]}}, top_k=3, n_prompts=2)

    def both(layer, act, rows):
        col(layer, act, rows)
        obs(layer, act, rows)

    greedy_generate(llama, [[3, 4, 5], [6, 7]], max_new_tokens=2, observe=both)
    assert col.n_tokens == 4 and col.row_tokens == {0: 2, 1: 2}
    neurons = col.neurons()
    assert set(neurons) == {0, 1} and all(len(v) >= 3 for v in neurons.values())
    assert set(col.neurons(rows=[0])[0]) <= set(neurons[0])
    # the totals reproduce ConceptActivation's measures for any neuron set
    a, b = col.activation({0: [0, 1, 2, 3, 4, 5]}), obs.summary()["x"]
    assert a["hits_per_token"] == pytest.approx(b["hits_per_token"])
    assert a["strength_per_token"] == pytest.approx(b["strength_per_token"], rel=1e-5)
    assert a["activated"] == b["activated"]
    with pytest.raises(CotError, match="by_row"):
        DominantCollector(llama).neurons(rows=[0])
    with pytest.raises(CotError, match="top_k"):
        ConceptActivation(llama, {"x": {0: [1]}}, top_k=0, n_prompts=1)


def test_zero_and_noise_corruption(llama):
    toks = torch.tensor([[0, 3, 4, 12, 13]])
    base = llama(toks).detach()
    with corrupt_neurons(llama, {0: [2, 5]}, mode="zero"):
        _, cache = llama.run_with_cache(toks, names_filter=hook_name("neuron", 0))
        assert cache[hook_name("neuron", 0)][0, :, [2, 5]].abs().max() == 0
    torch.testing.assert_close(llama(toks).detach(), base)
    # noise added once to the value vectors == the same noise added to W_out rows
    import numpy as np

    noise = torch.from_numpy(np.random.RandomState(1).normal(-1.0, 1.0, size=(2, 32))).float()
    with corrupt_neurons(llama, {1: [3, 9]}, mode="noise", seed=1):
        hooked = llama(toks).detach()
    w = llama.blocks[1].mlp.W_out
    with torch.no_grad():
        w[[3, 9]] += noise
    try:
        edited = llama(toks).detach()
    finally:
        with torch.no_grad():
            w[[3, 9]] -= noise
    torch.testing.assert_close(hooked, edited, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(llama(toks).detach(), base, rtol=1e-5, atol=1e-5)
    with pytest.raises(UnknownNameError, match="noise"):
        corrupt_neurons(llama, {0: [1]}, mode="scramble").__enter__()


def test_random_like_same_layers_disjoint(llama):
    chosen = {0: [1, 2, 3], 1: [4]}
    rnd = random_like(llama, chosen, seed=0)
    assert {k: len(v) for k, v in rnd.items()} == {0: 3, 1: 1}
    assert not set(rnd[0]) & {1, 2, 3} and 4 not in rnd[1]
    assert random_like(llama, chosen, seed=0) == rnd and random_like(llama, chosen, seed=1) != rnd


def test_run_cot_and_corruption_end_to_end(llama, tmp_path):
    # the random model answers nothing; the pipeline, tokenization and result objects are what is checked
    probs = load_problems(n=2)
    res = run_cot(llama, variants=["no_cot", "equation_only", "full_cot"], problems=probs,
                  concept_neurons={"add": {0: [1, 2]}, "sub": {1: [3]}}, max_new_tokens=3)
    assert list(res.variants) == ["no_cot", "equation_only", "full_cot"]
    v = res["no_cot"]
    assert v.n_problems == 2 and 0 <= v.accuracy <= 1 and v.n_tokens <= 6
    assert set(v.activation) == {"add", "sub", "all"}
    assert set(res.correlation) >= {"all", "add", "sub"}
    back = CotResult.load(res.save(tmp_path / "cot.json"))
    assert back["full_cot"].outcomes == res["full_cot"].outcomes
    assert len(res.to_frame()) == 3 and res.plot() is not None
    cr = corruption_experiment(llama, {0: [1, 2]}, variant="no_cot", problems=probs, mode="zero", n_random=2,
                               max_new_tokens=2)
    assert cr.n_neurons == 2 and len(cr.random) == 2 and cr.to_dict()["mode"] == "zero"
    single = evaluate_variant(llama, "no_cot", probs[:1], max_new_tokens=2)
    assert single.activation == {}


def test_correlation_and_bad_input(llama):
    c = correlation([0.1, 0.2, 0.3, 0.4], [1, 2, 3, 5])
    assert c["pearson"] > 0.9 and c["spearman"] == pytest.approx(1.0)
    assert correlation([1, 1, 1], [1, 2, 3])["pearson"] != correlation([1, 1, 1], [1, 2, 3])["pearson"]  # nan
    with pytest.raises(UnknownNameError, match="full_cot"):
        load_variants(names=["full"])
    with pytest.raises(CotError, match="no variants"):
        load_variants(names=[])
    with pytest.raises(CotError, match="positive"):
        load_problems(n=0)
    with pytest.raises(CotError, match="unknown problem ids"):
        load_problems(ids=["nope"])
    with pytest.raises(CotError, match="ConceptNeurons"):
        concept_neuron_sets(["add"])
    with pytest.raises(CotError, match="no word problems"):
        evaluate_variant(llama, "no_cot", [])
    with pytest.raises(InterpError, match="tokenizer"):
        evaluate_variant(tiny_bridge(), "no_cot", load_problems(n=1))


def test_cot_cli(llama, tmp_path, monkeypatch, capsys):
    import json

    import interp.cli.cot_cmd as cot_cmd
    from interp.cli import main

    monkeypatch.setattr(cot_cmd, "load", lambda args: llama)
    out = tmp_path / "cot.json"
    assert main(["cot", "--model", "tiny", "--out", str(out), "--variants", "no_cot,equation_only",
                 "--n-problems", "2", "--max-new-tokens", "2"]) == 0
    data = json.loads(out.read_text())
    assert list(data["variants"]) == ["no_cot", "equation_only"]
    v = data["variants"]["no_cot"]
    assert v["n_problems"] == 2 and 0 <= v["accuracy"] <= 1 and "all" in v["concept_activation"]
    assert "outcomes" not in v
    assert "accuracy" in capsys.readouterr().out
    assert main(["cot", "--model", "tiny", "--out", str(out), "--variants", "cot_full"]) == 2
    assert "unknown CoT variant 'cot_full'" in capsys.readouterr().err


class _CacheIgnoringModel:
    """Wraps a bridge so that ``past_key_values`` is ignored and an empty cache comes back (the transformers 5.24
    failure): decoding from it would silently produce wrong tokens."""

    def __init__(self, bridge):
        self._b = bridge

    def __getattr__(self, name):
        return getattr(self._b, name)

    def __call__(self, tokens, return_type="logits", past_key_values=None, **kwargs):
        from transformers import DynamicCache

        kwargs.pop("attention_mask", None)
        kwargs.pop("position_ids", None)
        logits = self._b(tokens)
        return (logits, DynamicCache()) if return_type == "logits_and_cache" else logits


def test_a_cache_that_does_not_reproduce_the_full_pass_is_never_used(llama):
    from interp.vocab.cot.generate import GenerationError, _check_cache

    broken = _CacheIgnoringModel(llama)
    assert not _check_cache(broken)
    prompts = [[3, 4, 12, 28, 13], [3, 4, 15]]
    prefix = [0, 3, 4, 11, 8, 9]
    want = [g.tokens for g in greedy_generate(llama, prompts, prefix=prefix, max_new_tokens=5, use_cache=False)]
    assert [g.tokens for g in greedy_generate(broken, prompts, prefix=prefix, max_new_tokens=5)] == want
    with pytest.raises(GenerationError, match="reproduces"):
        greedy_generate(broken, prompts, prefix=prefix, max_new_tokens=5, use_cache=True)
