"""SmolLM2-135M: concept neurons, an LM-Debugger intervention, CoT generation, IOI patching, head classes vs
TransformerLens's head_detector, and multi-token arithmetic patching on prompts the model gets right.

One model load for the module; small sample sizes (the full measurements are scripts/cot_smollm.py and
docs/pretrained.md). Runs in about 75 s on one CPU thread (2026-12-03).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model():
    from interp.models import load_model

    # one thread: on small shared CPUs two threads competing with another process slow every matmul down ~50x
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield load_model("smollm2-135m")
    finally:
        torch.set_num_threads(old)


# four of the 24 layers a default scan covers (all 24 are a minute of float32 matmuls against the 49,152-token
# unembedding; scripts/cot_smollm.py runs them): each holds neurons of every concept asserted below
SCANNED = (8, 14, 20, 26)


@pytest.fixture(scope="module")
def concepts(model):
    from interp.vocab.concepts import find_concept_neurons

    return find_concept_neurons(model, skip_layers=[x for x in range(30) if x not in SCANNED])


def test_concept_neurons(concepts):
    from interp.vocab.concepts import default_skip_layers

    counts = concepts.counts()
    assert concepts.layers == SCANNED and concepts.n_scanned == len(SCANNED) * 1536
    assert default_skip_layers(30) == tuple(range(6))  # what a default scan of SmolLM2 skips
    assert all(counts[c] > 0 for c in ("connections", "add", "subtract", "multiply", "division", "equals_to"))
    add = concepts["add"][0]
    assert len(add.matches) >= 2 and all(t.strip().lower() in {"add", "addition", "+", "sum", "plus"}
                                          for t in add.matches)


def test_promote_an_add_neuron_raises_its_tokens(model, concepts):
    from interp.vocab import compare_generation, top_tokens

    n = concepts["add"][0]
    best = top_tokens(model, n.layer, n.neuron, k=1)[0]
    res = compare_generation(model, "Three and four make", {n.layer: [n.neuron]}, mode="set", value=50.0,
                             max_new_tokens=3)
    before = {t.token_id: t.logit for t in res.top_before}
    assert best.token_id in {t.token_id for t in res.top_after} or res.before != res.after
    assert res.top_after != res.top_before and before is not None


def test_cot_generation_solves_an_easy_problem(model, concepts):
    from interp.vocab.cot import evaluate_variant, load_problems

    probs = load_problems(ids=["wp01"])  # Mia: 4 + 3
    res = evaluate_variant(model, "full_cot", probs, concept_neurons=concepts, max_new_tokens=48)
    assert res.outcomes[0].correct, res.outcomes[0].text
    assert "4 + 3 = 7" in res.outcomes[0].text
    assert res.activation["all"]["hits_per_token"] > 0


def test_ioi_logit_diff_and_head_patching(model):
    from interp.patching import patch
    from interp.tasks.ioi import IOITask

    task = IOITask(n_prompts=8)
    ld = task.logit_diff(model)
    assert ld["clean"] > 2.0 and ld["io_beats_s"] >= 0.875 and ld["corrupt"] < ld["clean"] - 2.0
    pairs = task.pairs(model)
    res = patch(model, pairs.select(range(6)), site="heads", positions="last", metric="logit_diff_change",
                layers=range(12, 30), progress=False)
    label, effect = res.top(1)[0]
    assert effect < -0.3, res.top(5)  # some late head's clean output carries the IO preference (name movers)


def test_head_classes_agree_with_head_detector(model):
    from interp.circuits.heads import agreement, head_scores
    from interp.report.pretrained import AGREEMENT_TEXTS

    hs = head_scores(model, seq_len=16, n_sequences=4)
    assert hs.top("induction", 1)[0][1] > 0.5 and hs.top("previous_token", 1)[0][1] > 0.5
    ag = agreement(model, AGREEMENT_TEXTS[:2], k=5)
    assert all(v < 1e-4 for v in ag.max_abs_diff.values()), ag.max_abs_diff
    assert all(v > 0.95 for v in ag.spearman.values()), ag.spearman


def test_multi_token_arithmetic_patching_on_correct_prompts(model):
    from interp.patching import patch
    from interp.tasks import ArithTask

    task = ArithTask(operators=("+",), lo=0, hi=9, prefix="2+3=5\n4+4=8\n1+6=7\n", number_mode="multi")
    correct = task.correct_prompts(model, "+", limit=8)
    assert len(correct) >= 4
    pairs = task.pairs(model, n_per_op=4, corrupt_from="same")
    assert pairs.position_labels[-1] == "=" and pairs.n == 4
    res = patch(model, pairs, site="mlps", positions="last", metric="logit_diff", progress=False)
    assert res.effects.shape == (30, 1)
    assert res.baseline["base"] > res.effects.min()  # some MLP carries the answer
