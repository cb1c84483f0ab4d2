"""IOI prompts/pairs/metric and induction sequences, with a small word-level tokenizer and tiny models."""

from __future__ import annotations

import types

import pytest
import torch
from conftest import tiny_bridge

from interp.errors import InterpError, TaskError, UnknownNameError
from interp.tasks.base import PromptPairs
from interp.tasks.induction import InductionTask
from interp.tasks.ioi import IOITask, ioi_logit_diff

WORDS = ["<bos>", "<eos>", "<unk>", "When", "and", "went", "to", "the", "store", "park", ",", "gave", "a", "drink",
         "ball", "Mary", "John", "Tom", "Anna", "Paul", "Then", "had", "long", "talk", "."]


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    path = tmp_path_factory.mktemp("wordtok") / "tokenizer.json"
    tk.save(str(path))
    return PreTrainedTokenizerFast(tokenizer_file=str(path), bos_token="<bos>", eos_token="<eos>", unk_token="<unk>")


class Wrapped:
    """A tiny bridge with a tokenizer attached (text tasks only read ``tokenizer`` and ``cfg``)."""

    def __init__(self, bridge, tokenizer):
        self.bridge, self.tokenizer, self.cfg = bridge, tokenizer, bridge.cfg

    def __call__(self, tokens):
        return self.bridge(tokens)


@pytest.fixture(scope="module")
def model(word_tokenizer):
    return Wrapped(tiny_bridge(d_vocab=len(WORDS), n_ctx=20), word_tokenizer)


TEMPLATES = ("When {A} and {B} went to the store, {S} gave a drink to",
             "When {A} and {B} went to the park, {S} gave a ball to",
             "Then {A} and {B} had a long talk, and {S} gave a ball to")  # another layout: left out


def task(**kw):
    kw = {"templates": TEMPLATES, "names": ("Mary", "John", "Tom", "Anna", "Paul"), "n_prompts": 12, **kw}
    return IOITask(**kw)


def test_pairs_are_aligned_abba_baba_with_io_and_s_answers(model, word_tokenizer):
    t = task()
    pairs = t.pairs(model)
    assert isinstance(pairs, PromptPairs) and pairs.n >= 6
    assert pairs.position_labels[0] == "BOS" and pairs.position_labels[-1] == "end"
    assert pairs.position_labels[2] == "A" and pairs.position_labels[4] == "B"
    s2 = pairs.position_labels.index("S2")
    assert pairs.position_labels[1] == "When" and pairs.position_labels[3] == "and"
    for c, k, io_tok, s_tok in zip(pairs.clean, pairs.corrupt, pairs.clean_answers, pairs.corrupt_answers):
        assert c.template in (0, 1)  # template 2 has another token layout
        words = word_tokenizer.convert_ids_to_tokens(list(c.tokens))
        assert word_tokenizer.convert_ids_to_tokens([int(io_tok)]) == [c.io]
        assert word_tokenizer.convert_ids_to_tokens([int(s_tok)]) == [c.s]
        assert words[s2] == c.s and c.io != c.s
        first, second = words[2], words[4]
        assert (first, second) == ((c.io, c.s) if c.order == "ABBA" else (c.s, c.io))
        # ABC corruption: only S2 changes, to a third name
        diff = [i for i, (a, b) in enumerate(zip(c.tokens, k.tokens)) if a != b]
        assert diff == [s2] and k.s2 not in (c.io, c.s)
    assert set(pairs.groups) == {"ABBA", "BABA"}


def test_swap_corruption_repeats_the_io(model, word_tokenizer):
    pairs = task(corruption="swap").pairs(model)
    s2 = pairs.position_labels.index("S2")
    for c, k in zip(pairs.clean, pairs.corrupt):
        assert word_tokenizer.convert_ids_to_tokens([k.tokens[s2]]) == [c.io]


def test_logit_diff_metric_is_io_minus_s(model):
    pairs = task().pairs(model)
    ld = ioi_logit_diff(model, pairs.clean_tokens, pairs.clean_answers, pairs.corrupt_answers)
    logits = model(pairs.clean_tokens)[:, -1]
    for i in range(pairs.n):
        want = (logits[i, pairs.clean_answers[i]] - logits[i, pairs.corrupt_answers[i]]).detach()
        assert ld[i] == pytest.approx(float(want), abs=1e-5)
    from interp.metrics import MetricContext, make_metric

    fn = make_metric("logit_diff", MetricContext(logits, logits, pairs.clean_answers, pairs.corrupt_answers))
    torch.testing.assert_close(fn(logits), ld.double())  # metrics are float64
    summary = task().logit_diff(model)
    assert summary["clean"] == pytest.approx(float(ld.mean()), abs=1e-5)
    assert set(summary) == {"clean", "corrupt", "io_beats_s", "io_top1", "n_prompts"}


def test_patching_runs_on_ioi_pairs(model):
    from interp.patching import patch

    res = patch(model.bridge, task().pairs(model), site="heads", positions="last", metric="logit_diff",
                progress=False)
    assert res.effects.shape == (3, 1, 4)


def test_n_per_op_split_and_spec(model):
    t = task()
    capped = t.pairs(model, n_per_op=2)
    assert capped.n == 4 and sorted(capped.groups) == ["ABBA", "ABBA", "BABA", "BABA"]
    ev = t.pairs(model, split="evaluation")
    disc = t.pairs(model, split="discovery")
    assert ev.n == t.pairs(model).n - t.pairs(model).n // 2 and disc.n == t.pairs(model).n // 2
    assert not {p.text for p in ev.clean} & {p.text for p in disc.clean}  # disjoint halves
    texts = [p.text for p in task(n_prompts=40).pairs(model).clean]
    assert len(texts) == len(set(texts))  # no clean prompt drawn twice
    with pytest.raises(TaskError, match="distinct IOI prompts"):
        task(n_prompts=1000).pairs(model)
    spec = IOITask.from_spec("ioi:40:swap", number_mode="auto", prefix="")
    assert (spec.n_prompts, spec.corruption, spec.name) == (40, "swap", "ioi:40:swap")


def test_non_single_token_names_are_named(model):
    t = task(names=("Mary", "John", "Bartholomew", "Tom", "Zebediah"))
    with pytest.raises(TaskError, match="not: Bartholomew, Zebediah"):
        t.pairs(model)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(templates=("When {A} went, {S} gave to",)), TaskError, "exactly once"),
        (dict(names=("Mary", "John")), TaskError, "at least 3 distinct names"),
        (dict(corruption="random"), UnknownNameError, "abc"),
        (dict(orders=("ABAB",)), UnknownNameError, "ABBA"),
        (dict(n_prompts=0), TaskError, "n_prompts"),
    ],
)
def test_bad_task_settings(kwargs, err, match):
    with pytest.raises(err, match=match):
        task(**kwargs)
    assert issubclass(err, InterpError)


def test_bad_specs_and_model_without_tokenizer():
    with pytest.raises(TaskError, match="must be an integer"):
        IOITask.from_spec("ioi:x")
    with pytest.raises(TaskError, match="ioi\\[:N"):
        IOITask.from_spec("ioi:1:abc:2")
    with pytest.raises(TaskError, match="arithmetic tasks only"):
        IOITask.from_spec("ioi", prefix="1+1=2\n")
    with pytest.raises(TaskError, match="no tokenizer"):
        task().pairs(tiny_bridge())
    with pytest.raises(TaskError, match="induction\\[:SEQ_LEN"):
        InductionTask.from_spec("induction:abc")


# --------------------------------------------------------------------------------------------------- induction


def test_induction_tokens_repeat_and_avoid_special_tokens(model):
    t = InductionTask(seq_len=6, n_prompts=5, seed=3)
    toks = t.tokens(model)
    assert toks.shape == (5, 13)
    assert (toks[:, 0] == model.tokenizer.bos_token_id).all()
    assert torch.equal(toks[:, 1:7], toks[:, 7:])
    specials = set(model.tokenizer.all_special_ids)
    assert not any(int(x) in specials for x in toks[:, 1:].reshape(-1))
    assert all(len(set(r.tolist())) == 6 for r in toks[:, 1:7])  # no repeats inside a segment
    assert torch.equal(t.tokens(model), toks)  # seeded


def test_induction_without_tokenizer_and_pairs():
    m = tiny_bridge(n_ctx=24)
    t = InductionTask(seq_len=8, n_prompts=4, prepend_bos=False)
    assert t.tokens(m).shape == (4, 16)
    pairs = t.pairs(m, seed=1)
    assert pairs.clean_tokens.shape == (4, 12) and pairs.position_labels[-1] == "end"
    diff = (pairs.clean_tokens != pairs.corrupt_tokens).nonzero()[:, 1].unique().tolist()
    assert diff == [4]  # only A[m] differs, m = seq_len // 2
    assert torch.equal(pairs.clean_answers, pairs.clean_tokens[:, 4])
    assert torch.equal(pairs.corrupt_answers, pairs.corrupt_tokens[:, 4])
    loss = t.loss(m)
    assert set(loss) == {"first_copy", "second_copy", "induction_gain"}
    with pytest.raises(TaskError, match="BOS"):
        InductionTask(prepend_bos=True).tokens(m)
    with pytest.raises(TaskError, match="seq_len"):
        InductionTask(seq_len=1)
    with pytest.raises(TaskError, match="usable token ids"):
        InductionTask(seq_len=10, prepend_bos=False, token_range=(0, 5)).tokens(m)
    with pytest.raises(TaskError, match=r"exceed the model's context of 24 tokens; use seq_len <= 12"):
        InductionTask(seq_len=13, prepend_bos=False).tokens(m)
    assert InductionTask(seq_len=12, n_prompts=2, prepend_bos=False).tokens(m).shape == (2, 24)


def test_task_objects_quack_like_arith_for_the_cli():
    for t in (IOITask.from_spec("ioi"), InductionTask.from_spec("induction:10:8")):
        assert isinstance(t.name, str) and callable(t.pairs)
    assert InductionTask.from_spec("induction:10:8").n_prompts == 8
    ns = types.SimpleNamespace(tokenizer=None)
    assert ns.tokenizer is None


@pytest.fixture(scope="module")
def word_bridge(word_tokenizer):
    b = tiny_bridge(d_vocab=len(WORDS), n_ctx=20)
    b.tokenizer = word_tokenizer
    return b


def test_circuit_search_runs_on_ioi_with_abc_mean_ablation(word_bridge):
    from interp.circuits.ablation import mean_cache
    from interp.circuits.search import find_circuit
    from interp.sites import hook_name

    t = task(n_prompts=24)
    ref = t.mean_ablation_tokens(word_bridge)
    assert torch.equal(ref, t.pairs(word_bridge).corrupt_tokens)  # abc corruption: the ABC prompts themselves
    swap = task(n_prompts=24, corruption="swap")
    assert torch.equal(swap.mean_ablation_tokens(word_bridge), ref)  # the reference set does not follow corruption
    mean = mean_cache(word_bridge, t)
    _, cache = word_bridge.run_with_cache(ref)
    name = hook_name("head", 1)
    torch.testing.assert_close(mean[name], cache[name].double().mean(0).float())

    c = find_circuit(word_bridge, t, metric="logit_diff_change", seeds=(0,), n_per_op=6, n_eval=6)
    assert c.curve[-1]["n_heads"] == 3 * 4
    assert c.curve[-1]["faithfulness"] == pytest.approx(1.0, abs=1e-5)  # every head kept = the clean run
    assert c.meta["n_eval"] == t.pairs(word_bridge, split="evaluation", n_per_op=6).n
    with pytest.raises(TaskError, match="has no operators"):
        find_circuit(word_bridge, t, operator="+", seeds=(0,), n_per_op=6, n_eval=6)
