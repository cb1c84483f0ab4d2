"""ICL prompt variants and the labelled-set loader."""

from __future__ import annotations

import pytest

from interp.errors import InterpError
from interp.explain.data import Labelled, load_sentiment
from interp.explain.icl import build_prompt

WORDS = {"negative": " negative", "positive": " positive"}
DEMOS = [Labelled("The soup was warm and delicious.", "positive", "delicious"),
         Labelled("The room was dirty and cramped.", "negative", "dirty")]


def test_gold_and_flipped_labels():
    gold = build_prompt(DEMOS, "A test.", WORDS, variant="gold")
    flip = build_prompt(DEMOS, "A test.", WORDS, variant="flipped")
    assert len(gold) == 3 and gold[-1] == "Review: A test.\nSentiment:"
    assert gold[0].endswith("Sentiment: positive\n\n") and gold[1].endswith("Sentiment: negative\n\n")
    assert flip[0].endswith("Sentiment: negative\n\n") and flip[1].endswith("Sentiment: positive\n\n")
    assert flip[0].split("\n")[0] == gold[0].split("\n")[0]  # same text, only the label changes


def test_perturbed_keeps_words_and_labels():
    pert = build_prompt(DEMOS, "A test.", WORDS, variant="perturbed", seed=3)
    for d, seg in zip(DEMOS, pert):
        text = seg.split("\n")[0].removeprefix("Review: ")
        assert sorted(text.split()) == sorted(d.text.split())
    assert pert[0].endswith("Sentiment: positive\n\n")


def test_explained_names_the_cue():
    ex = build_prompt(DEMOS, "A test.", WORDS, variant="explained")
    assert 'the word "delicious" sounds positive.' in ex[0]
    assert 'the word "dirty" sounds negative.' in ex[1]


def test_user_jsonl(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n')
    rows = load_sentiment(p)
    assert [r.label for r in rows] == [1, 0]
    p.write_text('{"text": "good", "label": 1}\n{"text": "fine", "label": 1}\n')
    with pytest.raises(InterpError, match="only one class"):
        load_sentiment(p)
    p.write_text('{"txt": "good"}\n')
    with pytest.raises(InterpError, match="line 1"):
        load_sentiment(p)
