"""The neuron pipeline on the shipped toy-arith: heuristics are found, and knocking them out matters (< 90 s)."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def toy():
    from interp.models import load_model

    return load_model("toy-arith")


@pytest.fixture(scope="module")
def task():
    from interp.tasks import parse_task

    return parse_task("arith")


@pytest.fixture(scope="module")
def analysis(toy, task):
    from interp.neurons.pipeline import analyze_neurons

    t0 = time.time()
    res = analyze_neurons(toy, task, top_k=50, n_random=2, per_layer=[0, 5, 10, 25])
    return res, time.time() - t0


def test_top_neurons_are_mostly_classified(analysis):
    res, _ = analysis
    fractions = res.classification.fractions()
    assert res.classification.classified_fraction >= 0.6, fractions
    assert min(fractions.values()) >= 0.35, fractions
    kinds = {h.kind for oc in res.classification.ops.values() for n in oc.neurons for h in n.heuristics}
    assert kinds == {"direct", "indirect"}
    # speed is measured by scripts/bench_neurons.py (docs/benchmarks-neurons.md), not asserted here


def test_heuristic_knockout_beats_random_knockout(analysis):
    res, _ = analysis
    d = res.to_dict()["prompt_knockout"]
    assert d["per_layer"][-1] == 25
    assert d["heuristic_accuracy"][0] == d["random_accuracy"][0] == 1.0
    # Fig. 8: zeroing a prompt's own heuristic neurons hurts far more than as many random top neurons
    assert d["heuristic_accuracy"][-1] < d["random_accuracy"][-1] - 0.25, d
    for op in "+-":
        pk = res.prompt_knockout[op]
        assert pk.heuristic_accuracy[-1] < 0.7 and pk.random_accuracy[-1] > 0.8, (op, pk)
        assert pk.heuristic_accuracy[-1] < pk.random_accuracy[-1] - 0.3, (op, pk)


def test_class_knockout_hurts_related_prompts_more(analysis):
    res, _ = analysis
    means = res.class_knockout.means()
    assert means["+"][0] < means["+"][1] - 0.05, means
    related = np.mean([r.related_accuracy for r in res.class_knockout.rows])
    unrelated = np.mean([r.unrelated_accuracy for r in res.class_knockout.rows])
    assert related < unrelated


def test_atp_ranking_agrees_with_exact_patching(toy, task):
    from interp.neurons.importance import neuron_importance

    pairs = task.pairs(toy, n_per_op=50, corrupt_from="all").by_group()["+"]
    atp = neuron_importance(toy, pairs, method="atp")
    exact = neuron_importance(toy, pairs, method="exact")
    overlap = np.mean([len(set(atp.top(k=50)[l]) & set(exact.top(k=50)[l])) / 50 for l in atp.layers])
    assert overlap >= 0.7, overlap
