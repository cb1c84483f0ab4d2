"""Uncertainty: calibration metrics by hand, token measures, and the pipeline on a tiny bridge against direct runs."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from interp.explain.calibration import auroc, ece, reliability
from interp.explain.uncertainty import Question, UncertaintyResult, token_uncertainty, uncertainty
from tests.conftest import tiny_bridge


def test_auroc_by_hand():
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)  # ties count half
    assert math.isnan(auroc([0.2, 0.3], [1, 1]))  # one class: undefined, not 0.5


def test_ece_by_hand():
    conf = [0.05, 0.15, 0.95, 0.92]
    y = [0, 1, 1, 0]
    # bins: [0,.1): conf .05 acc 0; [.1,.2): conf .15 acc 1; [.9,1]: conf .935 acc .5
    want = 0.25 * 0.05 + 0.25 * 0.85 + 0.5 * abs(0.5 - 0.935)
    assert ece(conf, y) == pytest.approx(want)
    r = reliability(conf, y)
    assert r["count"][9] == 2 and r["accuracy"][0] == 0.0 and sum(r["count"]) == 4


def test_token_uncertainty_uniform_and_peaked():
    logits = torch.zeros(2, 8)
    logits[1, 3] = 100.0
    tu = token_uncertainty(logits, torch.tensor([0, 3]))
    assert float(tu["entropy"][0]) == pytest.approx(math.log(8))
    assert float(tu["logprob"][0]) == pytest.approx(-math.log(8))
    assert float(tu["margin"][0]) == pytest.approx(0.0)
    assert float(tu["margin"][1]) == pytest.approx(1.0)
    assert float(tu["entropy"][1]) == pytest.approx(0.0, abs=1e-9)


def _q(ids):
    def extract(text):
        m = re.match(r"<(\d+)>", text)
        return float(m.group(1)) if m else None

    def span(text):
        m = re.match(r"<(\d+)>", text)
        return (m.start(), m.end()) if m else None

    return Question(tuple(ids), 7.0, "q", extract, lambda s: False, span, 1)


def test_pipeline_matches_direct_forward(tmp_path):
    m = tiny_bridge()
    qs = [_q([1, 2, 3]), _q([4, 5, 6, 7]), _q([9, 8])]
    res = uncertainty(m, qs, k=3, temperature=1e-3, source="tiny")
    for q, it in zip(qs, res.items):
        with torch.inference_mode():
            logits = m(torch.tensor([q.ids]))[0, -1].double()
        top = int(logits.argmax())
        assert it.predicted == float(top)
        assert it.confidence["prob_mean"] == pytest.approx(float(logits.softmax(-1)[top]), rel=1e-5)
        assert it.confidence["consistency"] == 1.0  # near-zero temperature: every sample is the greedy answer
        assert 0 <= it.lens_layer <= int(m.cfg.n_layers)
    assert res.items[0].correct == (res.items[0].predicted == 7.0)
    back = UncertaintyResult.load(res.save(tmp_path / "u.json"))
    assert back.summary()["measures"].keys() == res.summary()["measures"].keys()
    assert back.plot() is not None


def test_lens_layer_final_layer_oracle():
    m = tiny_bridge()
    res = uncertainty(m, [_q([1, 2, 3])], measures=["prob_mean"])
    it = res.items[0]
    from interp.sites import hook_name

    with torch.inference_mode():
        _, cache = m.run_with_cache(torch.tensor([[1, 2, 3]]))
    tops = [int(m.unembed(m.ln_final(cache[hook_name("resid_pre", lyr)][:, -1:]))[0, -1].argmax())
            for lyr in range(m.cfg.n_layers)]
    want = m.cfg.n_layers
    for lyr in range(m.cfg.n_layers - 1, -1, -1):
        if tops[lyr] != int(it.predicted):
            break
        want = lyr
    assert it.lens_layer == want
    assert np.isfinite(res.summary()["measures"]["prob_mean"]["ece"])
