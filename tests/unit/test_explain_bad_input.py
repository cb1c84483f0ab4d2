"""Bad input to `interp.explain`: one row per case the issue lists, each a clear `InterpError` naming what was wrong."""

from __future__ import annotations

import math

import pytest
import torch

from interp.errors import InterpError
from interp.explain import activations, dose_response, fit_probe, probe_layers, reading_vector, saliency, steer
from interp.explain.data import Labelled, check_two_classes
from interp.explain.uncertainty import Question, sample_answers, uncertainty
from tests.conftest import tiny_bridge


@pytest.fixture(scope="module")
def tb():
    return tiny_bridge()


@pytest.fixture(scope="module")
def toy(toy_tokenizer):
    """A tiny bridge with the toy-arith tokenizer (numbers 0..199 are single tokens, "12+3" is three)."""
    m = tiny_bridge(d_vocab=len(toy_tokenizer))
    m.tokenizer = toy_tokenizer
    return m


def _acts(n, d=32, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _q():
    return Question((1, 2, 3), 1.0, "q", lambda s: None, lambda s: True, lambda s: None, 1)


def _steer(m, v, layers, alpha):
    with steer(m, v, layers, alpha):
        pass


CASES = [
    # (id, uses toy model, call, message fragment)
    ("target not a single token", True, lambda m: saliency(m, [5, 7], target="12+3"),
     "not a single token"),
    ("contrast not a single token", True, lambda m: saliency(m, [5, 7], target=("12", "3+4")),
     "not a single token"),
    ("target id outside vocab", False, lambda m: saliency(m, [1, 2], target=10_000), "outside the vocabulary"),
    ("IG steps 0", False, lambda m: saliency(m, [1, 2, 3], target=4, steps=0), "steps must be an integer >= 1"),
    ("IG steps negative", False, lambda m: saliency(m, [1, 2, 3], target=4, steps=-3), "steps must be"),
    ("unknown method", False, lambda m: saliency(m, [1, 2], target=4, method="lime"), "unknown saliency method"),
    ("pair metric without contrast", False, lambda m: saliency(m, [1, 2], target=4, metric="logit_diff"),
     "compares two tokens"),
    ("reading layer out of range", False, lambda m: reading_vector(m, _acts(4), _acts(4, seed=1), layer=7),
     "out of range"),
    ("steer layer out of range", False, lambda m: _steer(m, torch.zeros(32), [0, 3], 1.0), "out of range"),
    ("probe layer out of range", False, lambda m: probe_layers(m, [Labelled("a", 0)], [Labelled("b", 1)],
                                                               layers=[-1]), "out of range"),
    ("empty positive set", False, lambda m: reading_vector(m, [], _acts(3), layer=0), "both classes"),
    ("one-class probe set", False, lambda m: fit_probe(_acts(6), torch.ones(6)), "only one class"),
    ("empty stimulus set", False, lambda m: check_two_classes([]), "is empty"),
    ("one-class probe_layers", False, lambda m: probe_layers(m, [Labelled("a", 1), Labelled("b", 1)],
                                                             [Labelled("c", 0)]), "only one class"),
    ("unequal pairs for pca", False, lambda m: reading_vector(m, _acts(3), _acts(2), layer=0, method="pca"),
     "counts must be equal"),
    ("steering vector wrong width", False, lambda m: _steer(m, torch.zeros(33), 0, 1.0), "shape (32,)"),
    ("steering vector 2-D", False, lambda m: _steer(m, torch.zeros(2, 32), 0, 1.0), "shape (32,)"),
    ("alpha NaN", False, lambda m: _steer(m, torch.zeros(32), 0, math.nan), "alpha must be a finite number"),
    ("alpha inf in sweep", False, lambda m: dose_response(m, [[1, 2]], torch.ones(32), layers=0,
                                                          alphas=(0, math.inf), labels=(1, 2)), "finite"),
    ("alpha not a number", False, lambda m: _steer(m, torch.zeros(32), 0, "big"), "finite number"),
    ("consistency k=1", False, lambda m: uncertainty(m, [_q()], k=1), "k >= 2"),
    ("sampling k=1", False, lambda m: sample_answers(m, [], [1, 2], k=1, temperature=1.0, max_new_tokens=1,
                                                     stop=lambda s: True), "k >= 2"),
    ("consistency without k", False, lambda m: uncertainty(m, [_q()], measures=["consistency"]), "k >= 2"),
    ("stimulus longer than the context", False,
     lambda m: activations(m, [list(range(1, 20)), [1, 2, 3]], layers=[0]), "more than the model's context of 12"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, tb, request):
    _, uses_toy, call, msg = case
    model = request.getfixturevalue("toy") if uses_toy else tb
    with pytest.raises(InterpError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        call(model)
