"""Head classification from attention patterns: hand-made patterns with known scores, and agreement with
`transformer_lens.head_detector` on a tiny bridge."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from conftest import tiny_bridge

from interp.circuits.heads import HeadError, HeadScores, agreement, head_scores, target_masks
from interp.errors import InterpError, ShapeError, TaskError, UnknownNameError

SEQ = torch.tensor([[0, 5, 6, 7, 5, 6, 7]])  # BOS, A = (5, 6, 7), A again


def test_target_masks_by_hand():
    prev = target_masks(SEQ, "previous_token")[0]
    assert prev[3, 2] == 1 and prev.sum() == 6 and prev[0].sum() == 0
    dup = target_masks(SEQ, "duplicate_token")[0]
    assert dup.nonzero().tolist() == [[4, 1], [5, 2], [6, 3]]
    ind = target_masks(SEQ, "induction")[0]
    assert ind.nonzero().tolist() == [[4, 2], [5, 3], [6, 4]]  # the token after the previous occurrence


class PatternModel:
    """One layer, three heads with hand-made patterns on SEQ: previous-token, induction, uniform."""

    def __init__(self):
        n = SEQ.shape[1]
        prev = torch.zeros(n, n)
        prev[0, 0] = 1
        for q in range(1, n):
            prev[q, q - 1] = 1
        ind = torch.zeros(n, n)
        targets = target_masks(SEQ, "induction")[0]
        for q in range(n):
            if targets[q].any():
                ind[q] = targets[q] / targets[q].sum()
            else:
                ind[q, 0] = 1  # rest on BOS
        uni = torch.tril(torch.ones(n, n))
        uni = uni / uni.sum(-1, keepdim=True)
        self.pattern = torch.stack([prev, ind, uni])[None]  # [1 head q k]
        self.cfg = types.SimpleNamespace(n_layers=1, n_heads=3, d_vocab=10)
        self.hook_dict = None
        self.tokenizer = None

    def run_with_cache(self, tokens, names_filter=None):
        return None, {"blocks.0.attn.hook_pattern": self.pattern.expand(tokens.shape[0], -1, -1, -1)}


def test_scores_of_hand_made_patterns():
    hs = head_scores(PatternModel(), SEQ)
    # previous-token: head 0 always; head 1 only at q=1, where resting on BOS is attending to the previous token
    assert hs.of("previous_token")[0, :2].tolist() == pytest.approx([1.0, 1 / 6])
    assert hs.of("induction")[0, 1] == pytest.approx(1.0)
    assert hs.of("induction")[0, 0] == pytest.approx(0.0)
    # uniform head: attention 1/(q+1) on the single target, averaged over rows with a target
    rows = [q for q in range(7) if target_masks(SEQ, "induction")[0, q].any()]
    assert hs.of("induction")[0, 2] == pytest.approx(np.mean([1 / (q + 1) for q in rows]))
    assert hs.classify() == {"previous_token": [(0, 0)], "duplicate_token": [], "induction": [(0, 1)]}
    assert hs.top("induction", 1) == [("L0H1", pytest.approx(1.0))]
    tl = head_scores(PatternModel(), SEQ, measure="tl")
    # TL's "mul" score divides by all rows: 3 of the 7 rows have an induction target
    assert tl.of("induction")[0, 1] == pytest.approx(3 / 7)


class IntTextModel:
    """A tiny bridge whose 'text' is space-separated token ids, so TL's head_detector can run on it."""

    def __init__(self, bridge):
        self.bridge, self.cfg, self.hook_dict = bridge, bridge.cfg, bridge.hook_dict
        self.tokenizer = types.SimpleNamespace(bos_token_id=None)

    def to_tokens(self, text, **kwargs):
        text = text[0] if isinstance(text, list) else text  # detect_head tokenizes a list once before looping
        return torch.tensor([[int(x) for x in text.split()]])

    def run_with_cache(self, tokens, **kwargs):
        return self.bridge.run_with_cache(tokens, **kwargs)


@pytest.fixture(scope="module")
def int_model():
    return IntTextModel(tiny_bridge(n_ctx=24))


TEXTS = ["3 9 4 7 1 3 9 4 7 1", "10 20 30 40 11 10 20 30 40 11", "5 6 7 8 5 6 7 8"]


def test_tl_measure_reproduces_head_detector(int_model):
    from transformer_lens.head_detector import detect_head

    for exclude_bos in (False, True):
        ours = head_scores(int_model, [TEXTS[0]], measure="tl", exclude_bos=exclude_bos)
        for kind, tl_name in (("previous_token", "previous_token_head"), ("duplicate_token", "duplicate_token_head"),
                              ("induction", "induction_head")):
            ref = detect_head(int_model, TEXTS[0], tl_name, exclude_bos=exclude_bos).numpy()
            np.testing.assert_allclose(ours.of(kind), ref, rtol=1e-5, atol=1e-6)


def test_agreement_with_head_detector(int_model):
    a = agreement(int_model, TEXTS, k=3)
    assert all(v < 1e-5 for v in a.max_abs_diff.values())
    assert all(v > 0.9 for v in a.spearman.values())
    assert set(a.top_overlap) == {"previous_token", "duplicate_token", "induction"}
    assert a.to_dict()["k"] == 3


def test_default_sequences_and_roundtrip(tmp_path):
    m = tiny_bridge(n_ctx=24)
    hs = head_scores(m, seq_len=8, n_sequences=3)  # no tokenizer: repeated random tokens without BOS
    assert hs.scores.shape == (3, 3, 4) and hs.seq_len == 16
    assert np.all((hs.scores >= 0) & (hs.scores <= 1))
    back = HeadScores.load(hs.save(tmp_path / "h.json"))
    np.testing.assert_allclose(back.scores, hs.scores)
    assert back.plot() is not None


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(kinds=("copy",)), UnknownNameError, "induction"),
        (dict(kinds=()), HeadError, "no head kinds"),
        (dict(measure="abs"), UnknownNameError, "targeted"),
        (dict(tokens=torch.tensor([[1, 2]])), HeadError, "at least 3 positions"),
        (dict(tokens=torch.tensor([[1, 2, 99]])), ShapeError, "token ids"),
        (dict(tokens=["some text"]), TaskError, "tokenizer"),
    ],
)
def test_bad_input(kwargs, err, match):
    with pytest.raises(err, match=match):
        head_scores(tiny_bridge(n_ctx=24), **kwargs)
    assert issubclass(err, InterpError)


def test_bad_thresholds_and_agreement_without_tokenizer():
    hs = head_scores(PatternModel(), SEQ)
    with pytest.raises(HeadError, match="threshold"):
        hs.classify({"induction": 1.5})
    with pytest.raises(UnknownNameError):
        hs.of("copy")
    with pytest.raises(TaskError, match="tokenizer"):
        agreement(tiny_bridge(), ["1 2 3"])
