"""interp.explain on the built-in models (small samples): IG completeness on toy-arith, the CLI, and on SmolLM2 a
truth probe above chance on held-out statements and steering that beats a random vector of the same norm."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import interp
from interp.explain import dose_response, load_sentiment, load_statements, probe_layers, reading_vector, saliency
from interp.explain.data import split

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smol():
    return interp.load_model("smollm2-135m")


def test_toy_ig_completeness():
    toy = interp.load_model("toy-arith")
    ps = interp.parse_task("arith:+").correct_prompts(toy, "+", seed=0, limit=6)
    res = saliency(toy, [list(p.tokens) for p in ps], target=[p.answer_token for p in ps], steps=64)
    assert res.completeness()["mean_relative"] < 0.05
    # both operands matter more than the operator and '=' on average
    import numpy as np

    v = np.array([it.values("integrated_gradients") for it in res.items])
    assert v[:, [1, 3]].mean() > abs(v[:, [2, 4]].mean())


def test_cli_saliency_and_uncertainty(tmp_path):
    out = tmp_path / "s.json"
    cmd = [sys.executable, "-c", "import sys; from interp.cli import main; sys.exit(main())", "explain"]
    r = subprocess.run(cmd + ["saliency", "--model", "toy-arith", "--prompt", "5+7=", "--target", "12", "--steps",
                              "8", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["settings"]["steps"] == 8 and d["command"]["what"] == "saliency"
    r = subprocess.run(cmd + ["uncertainty", "--model", "toy-arith", "--source", "arith:*", "--k", "1", "--out",
                              str(tmp_path / "u.json")], capture_output=True, text=True)
    assert r.returncode == 2 and "k >= 2" in r.stderr


def test_smollm_truth_probe_and_steering(smol):
    cities = load_statements("cities")
    probes = probe_layers(smol, split(cities, "train"), split(cities, "test"), layers=[12])
    assert probes.test_accuracy[0] > 0.8  # measured 0.96; chance 0.5
    sent = load_sentiment()

    def fmt(r):
        return f"Review: {r.text}\nSentiment:"

    tr = split(sent, "train")
    rv = reading_vector(smol, [fmt(r) for r in tr if r.label == "positive"],
                        [fmt(r) for r in tr if r.label == "negative"], layer=18, method="mean_diff")
    dr = dose_response(smol, [fmt(r) for r in split(sent, "test")][:8], rv, layers=18, alphas=(-2, 0, 2),
                       n_random=2)
    assert dr.slope > 0 and dr.ratio > 3  # measured ~15-30x


def test_report_section_toy():
    from interp.report import ReportContext, Section
    from interp.report.explain import explain_section as section

    toy = interp.load_model("toy-arith")
    ctx = ReportContext("toy-arith", quick=True)
    sec = section(toy, ctx)
    assert isinstance(sec, Section) and "Skipped" not in " ".join(sec.paragraphs)
    assert "<table>" in sec.paragraphs[0] and len(sec.figures) == 1
    assert ctx.results["explain_uncertainty"].summary()["n"] == 40
