"""Reading vectors, probes and steering on tiny bridges and synthetic activations."""

from __future__ import annotations

import pytest
import torch

from interp.explain.data import Labelled, load_sentiment, load_statements
from interp.explain.repe import activations, fit_probe, reading_vector
from interp.explain.steering import dose_response, steer
from interp.sites import hook_name
from tests.conftest import tiny_bridge


@pytest.fixture(scope="module")
def tb():
    return tiny_bridge()


def test_shipped_sets_are_balanced_and_large():
    sent = load_sentiment()
    assert len(sent) >= 200
    assert sum(r.label == "positive" for r in sent) == sum(r.label == "negative" for r in sent)
    for fam in ("cities", "animals"):
        rows = load_statements(fam)
        assert len(rows) >= 200
        assert sum(r.label for r in rows) == sum(not r.label for r in rows)
        assert {r.split for r in rows} == {"train", "test"}
        # a held-out pair never straddles the split
        assert len({(r.pair, r.split) for r in rows}) == len({r.pair for r in rows})


@pytest.mark.parametrize("layers", [(0, 2), (0, 1), (1,)])  # (0, 1), (1,): the pass stops after block 1
def test_activations_batched_equal_one_at_a_time(tb, layers):
    texts = [[1, 2, 3], [4, 5, 6, 7], [8, 9, 10], [11, 12]]
    acts = activations(tb, texts, list(layers))
    for i, t in enumerate(texts):
        _, cache = tb.run_with_cache(torch.tensor([t]))
        for j, layer in enumerate(layers):
            torch.testing.assert_close(acts[i, j], cache[hook_name("resid_pre", layer)][0, -1].double(),
                                       atol=1e-5, rtol=1e-5)


def test_reading_vector_recovers_planted_direction(tb):
    g = torch.Generator().manual_seed(0)
    d = int(tb.cfg.d_model)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    u /= u.norm()
    base = torch.randn(40, d, generator=g, dtype=torch.float64)
    pos = base + 3 * u + 0.05 * torch.randn(40, d, generator=g, dtype=torch.float64)
    neg = base - 1 * u
    rv = reading_vector(tb, pos, neg, layer=1, method="pca")
    assert float(rv.direction @ u) > 0.99  # oriented: positives project higher
    assert rv.explained > 0.9
    md = reading_vector(tb, pos, neg, layer=1, method="mean_diff")
    torch.testing.assert_close(md.mean_diff, pos.mean(0) - neg.mean(0))
    assert float(md.direction @ u) > 0.99
    assert bool((rv.score(pos) > rv.score(neg)).all())  # paired reading accuracy 1
    assert rv.threshold == pytest.approx(float((pos.mean(0) + neg.mean(0)) @ rv.direction) / 2)


def test_probe_held_out_accuracy():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 20, generator=g, dtype=torch.float64)
    w = torch.randn(20, generator=g, dtype=torch.float64)
    y = (x @ w) > 0
    p = fit_probe(x[:200], y[:200])
    assert p.accuracy(x[200:], y[200:]) > 0.9
    noise = torch.rand(300, generator=g) > 0.5
    q = fit_probe(x[:200], noise[:200])
    assert q.accuracy(x[200:], noise[200:]) < 0.7  # labels unrelated to x: near chance held out


def test_steer_adds_vector_and_cleans_up(tb):
    toks = torch.tensor([[1, 2, 3, 4]])
    v = torch.randn(int(tb.cfg.d_model), dtype=torch.float64)
    with torch.inference_mode():
        before, c0 = tb.run_with_cache(toks, names_filter=lambda n: n == hook_name("resid_pre", 1))
    with steer(tb, v, layers=1, alpha=2.5, start=1):
        with torch.inference_mode():
            _, c1 = tb.run_with_cache(toks, names_filter=lambda n: n == hook_name("resid_pre", 1))
    delta = c1[hook_name("resid_pre", 1)] - c0[hook_name("resid_pre", 1)]
    torch.testing.assert_close(delta[0, 1:], (2.5 * v).float().expand(3, -1), atol=1e-5, rtol=1e-5)
    assert delta[0, 0].abs().max() < 1e-6  # positions before start untouched
    with torch.inference_mode():
        after = tb(toks)
    torch.testing.assert_close(after, before)  # hooks removed


def test_unembedding_direction_beats_random_vector(tb):
    # steering the last layer's input along W_U[:, a] - W_U[:, b] raises logit(a) - logit(b) far more than a random
    # vector of the same norm
    a, b = 3, 7
    v = (tb.W_U[:, a] - tb.W_U[:, b]).detach().double()
    v = v / v.norm() * 2.0
    prompts = [[1, 2, 3], [5, 6, 7, 8], [9, 10, 11]]
    dr = dose_response(tb, prompts, v, layers=2, alphas=(-1, 0, 1), labels=(a, b), n_random=4)
    assert dr.slope > 0
    assert dr.ratio > 3
    assert dr.concept[1] == pytest.approx(dr.random[0][1])  # alpha 0: identical runs


def test_labelled_rows_are_plain_data():
    r = Labelled("x", True)
    assert r.split == "train" and r.pair == -1
