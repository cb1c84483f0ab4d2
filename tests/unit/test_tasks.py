"""Arithmetic task: grids, tokenization modes, correctness filter, clean/corrupt pairs, specs, bad input."""

from __future__ import annotations

import pytest
from conftest import CalculatorModel

from interp.errors import ShapeError, TaskError, UnknownNameError
from interp.tasks import ArithTask, parse_task, single_token_limit
from interp.tasks.arith import apply_op


def test_spec_parsing():
    assert parse_task("arith").operators == ("+", "-", "*", "/")
    t = parse_task("arith:+-:3-20")
    assert (t.operators, t.lo, t.hi) == (("+", "-"), 3, 20)
    assert parse_task("arith:*").name == "arith:*:0-99"
    for bad in ("arith:+:9-x", "arith:%", "ioix", "arith:+:1-2:3", "arith:++", "ioi:x", "ioi:8:nope",
                "induction:a", "induction:5:6:7"):
        with pytest.raises((TaskError, KeyError)):  # KeyError: UnknownNameError (a bad operator or corruption)
            parse_task(bad)


def test_spec_parsing_other_families():
    from interp.tasks.induction import InductionTask
    from interp.tasks.ioi import IOITask

    ioi = parse_task("ioi:24:swap")
    assert isinstance(ioi, IOITask) and (ioi.n_prompts, ioi.corruption) == (24, "swap")
    ind = parse_task("induction:7:9")
    assert isinstance(ind, InductionTask) and (ind.seq_len, ind.n_prompts) == (7, 9)
    with pytest.raises(TaskError, match="arithmetic tasks only"):
        parse_task("ioi", prefix="Q: ")


def test_legal_grid_follows_paper_rules():
    t = ArithTask(lo=0, hi=9)
    assert len(t.legal_pairs("+", None)) == 100
    assert all(b <= a for a, b in t.legal_pairs("-", None))
    assert len(t.legal_pairs("-", None)) == 55
    assert all(b >= 1 for _, b in t.legal_pairs("/", None))
    assert all(a * b <= 20 for a, b in t.legal_pairs("*", 20))
    assert apply_op(45, "/", 4) == 11


def test_single_token_prompts(toy_tokenizer):
    model = CalculatorModel(toy_tokenizer)
    assert single_token_limit(toy_tokenizer) == 199
    t = ArithTask(operators=("+",), lo=0, hi=20)
    ps = t.prompts(model, "+")
    p = next(q for q in ps if (q.a, q.b) == (12, 7))
    bos = toy_tokenizer.bos_token_id
    assert p.tokens == (bos, 12, 200, 7, 204) and p.answer_tokens == (19,)
    assert p.roles == ("BOS", "op1", "op", "op2", "lit")


def test_single_mode_rejects_multi_token_numbers(toy_tokenizer):
    model = CalculatorModel(toy_tokenizer)
    with pytest.raises(TaskError, match="multi-token mode"):
        ArithTask(operators=("+",), lo=0, hi=250, number_mode="single").prompts(model, "+")


def test_multi_token_mode_and_teacher_forced_correctness(digit_tokenizer):
    model = CalculatorModel(digit_tokenizer)
    t = ArithTask(operators=("+",), lo=10, hi=30)  # auto -> multi (only 0..9 are single tokens)
    ps = t.prompts(model, "+")
    p = next(q for q in ps if (q.a, q.b) == (12, 19))
    assert len(p.answer_tokens) == 2  # "31"
    assert p.roles == ("BOS", "op1", "op1", "op", "op2", "op2", "lit")
    assert all(t._is_correct(model, ps))
    wrong = CalculatorModel(digit_tokenizer, wrong_ops={"+"})
    assert not any(t._is_correct(wrong, ps))
    pairs = t.pairs(model, n_per_op=5, seed=0)
    # all pairs share one layout (same token length, aligned positions)
    assert pairs.clean_tokens.shape == pairs.corrupt_tokens.shape
    assert len({q.layout for q in pairs.clean + pairs.corrupt}) == 1
    assert "op1[0]" in pairs.position_labels


def test_pairs_are_correct_seeded_and_differ_in_answer(toy_tokenizer):
    model = CalculatorModel(toy_tokenizer)
    t = ArithTask(operators=("+", "-"), lo=0, hi=15)
    a = t.pairs(model, n_per_op=6, seed=1)
    b = t.pairs(model, n_per_op=6, seed=1)
    c = t.pairs(model, n_per_op=6, seed=2)
    assert a.clean_tokens.tolist() == b.clean_tokens.tolist() and a.corrupt_tokens.tolist() == b.corrupt_tokens.tolist()
    assert a.clean_tokens.tolist() == c.clean_tokens.tolist()  # seed only changes the corrupt sample
    assert a.corrupt_tokens.tolist() != c.corrupt_tokens.tolist()
    assert (a.clean_answers != a.corrupt_answers).all()
    assert a.groups == ("+",) * 6 + ("-",) * 6
    assert {q.op for q in a.corrupt} <= {"+", "-"}
    same = t.pairs(model, n_per_op=6, seed=1, corrupt_from="same")
    assert all(c.op == k.op for c, k in zip(same.clean, same.corrupt))
    ev = t.pairs(model, n_per_op=6, split="evaluation")
    assert not set(map(str, ev.clean)) & set(map(str, a.clean))  # held-out from discovery


def test_correctness_filter_and_accuracy(toy_tokenizer):
    model = CalculatorModel(toy_tokenizer, wrong_ops={"-"})
    t = ArithTask(operators=("+", "-"), lo=0, hi=9)
    acc = t.accuracy(model)
    assert acc.accuracy == {"+": 1.0, "-": 0.0}
    with pytest.raises(TaskError, match="accuracy 0.0"):
        t.pairs(model, n_per_op=3)
    with pytest.raises(UnknownNameError, match="same"):
        t.pairs(model, n_per_op=3, corrupt_from="other")


def test_prompt_pairs_validation(toy_tokenizer):
    import torch

    from interp.tasks import PromptPairs

    with pytest.raises(ShapeError, match="equal token length"):
        PromptPairs(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 6, dtype=torch.long),
                    torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), ("a",) * 5, "x")


def test_correct_prompts_cache_never_returns_a_partial_list(toy_tokenizer):
    model = CalculatorModel(toy_tokenizer)
    t = ArithTask(operators=("+",), lo=0, hi=40)
    few = t.correct_prompts(model, "+", limit=5)
    every = t.correct_prompts(model, "+")
    assert len(few) == 5 and len(every) == 41 * 41
    assert every[:5] == few  # same seeded order


def test_prompts_are_built_once_per_tokenizer(toy_tokenizer, monkeypatch):
    """The grid's prompts are cached per tokenizer: later calls (mean cache, correctness, pairs) reuse them."""
    from interp.tasks import arith

    model = CalculatorModel(toy_tokenizer)
    t = ArithTask(operators=("+", "*"), lo=0, hi=12)
    first = {op: t.prompts(model, op) for op in "+*"}
    calls = []
    monkeypatch.setattr(arith, "_roles", lambda *a: calls.append(a) or ())
    assert all(t.prompts(model, op) is first[op] for op in "+*")
    t.mean_ablation_tokens(model)
    t.correct_prompts(model, "+")
    assert calls == []  # nothing re-tokenized
    roles = {p.roles for p in first["+"]}
    assert roles == {("BOS", "op1", "op", "op2", "lit")}  # the layout memo gives every prompt its own roles
