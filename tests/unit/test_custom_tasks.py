"""Every pipeline on a user-supplied model and task (issue 12): a hand-set bridge with a known mechanism
(tests/handset.py) whose heads and neurons must be recovered exactly, `PairsTask`/`OperandTask`, `from_text` /
`from_tokens`, ``file:`` task specs through the CLI, and `load_model` on an existing bridge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interp.circuits import component_effects, find_circuit
from interp.neurons.importance import importance_by_operator
from interp.neurons.knockout import class_knockout, failure_analysis, prompt_knockout
from interp.neurons.pipeline import analyze_neurons, classify_neurons
from interp.patching import patch
from interp.tasks import GridTask, PromptPairs, Task
from interp.tasks.custom import OperandTask, PairsTask
from tests.handset import DISTRACTOR, EQ, grid_rows, handset_bridge

ZERO = 1e-6


@pytest.fixture(scope="module")
def hand():
    return handset_bridge()


@pytest.fixture(scope="module")
def grid_task():
    return OperandTask({"copy": grid_rows()}, name="copy")


@pytest.fixture(scope="module")
def analysis(hand, grid_task):
    return analyze_neurons(hand, grid_task, top_k=10, n_per_op=30, min_neurons=1, knockout_prompts=20,
                           per_layer=[0, 1])


def test_the_hand_set_model_does_what_it_was_built_for(hand, grid_task):
    assert isinstance(grid_task, Task) and isinstance(grid_task, GridTask)
    toks = torch.tensor([r[3] for r in grid_rows()])
    assert (hand(toks)[:, -1].argmax(-1) == toks[:, 0]).all()
    assert len(grid_task.correct_prompts(hand, "copy")) == 100


def test_patch_recovers_the_copy_head_and_zero_effects(hand, grid_task):
    pairs = grid_task.pairs(hand, n_per_op=20)
    heads = patch(hand, pairs, site="heads", positions="last")
    e = heads.effects.reshape(-1)  # [L0H0, L0H1]
    assert e[0] > 1.0 and abs(e[1]) <= ZERO
    neurons = patch(hand, pairs, site="neurons", positions="last")
    n = neurons.effects.reshape(-1)
    assert abs(n[DISTRACTOR]) <= ZERO
    assert (np.abs(n[:10]) > 0.1).sum() >= 8  # the digit neurons of the sampled answers matter


def test_find_circuit_selects_exactly_the_copy_head(hand, grid_task):
    c = find_circuit(hand, grid_task, n_per_op=20, n_eval=20, seeds=(0,))
    assert c.heads == ((0, 0),) and c.mlps == (0,)
    assert c.faithfulness == pytest.approx(1.0, abs=1e-6)
    assert c.curve[0]["faithfulness"] < 0.1  # no head: the digit is lost
    assert c.meta["head_scores"][0][1] == pytest.approx(0.0, abs=ZERO)


def test_component_effects_zero_for_the_silent_head(hand, grid_task):
    ce = component_effects(hand, grid_task, n_per_op=20, seeds=(0, 1))
    s = ce.head_scores()
    assert s[0, 0] > 1.0 and abs(s[0, 1]) <= ZERO
    assert [(l, h) for l, h in ce.head_ranking()][0] == (0, 0)


def test_importance_never_selects_the_distractor(hand, grid_task):
    imp = importance_by_operator(hand, grid_task, n_per_op=30)["copy"]
    assert abs(imp.importance_of(0, DISTRACTOR)) <= ZERO
    assert sorted(imp.top(k=10)[0]) == list(range(10))


def test_classify_neurons_names_each_digit_neuron(hand, grid_task):
    cls = classify_neurons(hand, grid_task, {0: list(range(11))})
    oc = cls.ops["copy"]
    for n in oc.neurons:
        names = {h.name for h in n.heuristics}
        if n.index == DISTRACTOR:
            assert not any(x.startswith(("op1_value", "result_value")) for x in names)
            continue
        assert {f"op1_value_{n.index}", f"result_value_{n.index}"} <= names
        assert not {f"op1_value_{d}" for d in range(10) if d != n.index} & names
    # operand ranges of the standard lengths cover > 50% of a 0-9 grid: said, not silent
    assert "more than 50%" in oc.skipped_families["op1_range"]
    assert set(oc.skipped_families) == {"op1_range", "op2_range", "both_operands_range", "result_range"}
    again = type(cls).from_dict(json.loads(json.dumps(cls.to_dict())))
    assert again.ops["copy"].skipped_families == oc.skipped_families


def test_analyze_neurons_end_to_end(analysis, tmp_path):
    top = analysis.classification.ops["copy"].top_neurons()
    assert sorted(top[0]) == list(range(10))  # the distractor is never selected
    analysis.save(tmp_path / "n.json")
    again = type(analysis).load(tmp_path / "n.json")
    assert again.classification.ops["copy"].skipped_families == analysis.classification.ops["copy"].skipped_families
    assert "op1_range" in again.classification.ops["copy"].skipped_families


def test_small_code_k_is_skipped_and_said():
    from interp.neurons.heuristics import ClassifierConfig, HeuristicScorer
    from interp.neurons.maps import OperandGrid

    g = OperandGrid.synthetic("+", lo=0, hi=9, max_result=18)
    sc = HeuristicScorer(g, ClassifierConfig.code())
    # code k-rule, op mod 9: (10 // 9) * 10 * factor = 10 prompts; mod 15 on a span of 10: k = 0 < min_prompts
    assert all(c.k >= 3 for c in sc.candidates if c.report)
    assert "op1_range" in sc.skipped_families and "more than 50%" in sc.skipped_families["op1_range"]
    tiny = OperandGrid.synthetic("+", lo=0, hi=2, max_result=4)
    sc2 = HeuristicScorer(tiny, ClassifierConfig.code())
    assert "below min_prompts" in sc2.skipped_families["both_operands_mod"]


def test_class_knockout_breaks_exactly_the_related_prompts(hand, grid_task, analysis):
    ck = class_knockout(hand, grid_task, analysis.classification, min_neurons=1)
    rows = {r.heuristic: r for r in ck.rows}
    for d in range(10):
        r = rows[f"op1_value_{d}"]
        assert r.n_neurons == 1 and r.related_accuracy == 0.0 and r.unrelated_accuracy == 1.0


def test_prompt_knockout_heuristic_vs_random(hand, grid_task, analysis):
    pk = prompt_knockout(hand, grid_task, analysis.classification, op="copy", per_layer=[0, 1], n_prompts=20)
    assert pk.heuristic_accuracy == [1.0, 0.0]  # zeroing the prompt's own digit neuron breaks it
    assert pk.random_accuracy == [1.0, 1.0]  # another digit neuron does not


def test_failure_analysis_logit_is_the_digit_neurons_write(hand, grid_task, analysis):
    fa = failure_analysis(hand, grid_task, analysis.classification, op="copy", n=10)
    assert fa.incorrect_counts == [] and len(fa.correct_logit) == 10
    w_u = hand.W_U.detach()
    want = 0.5 * float(w_u[3, 3])  # neuron a writes dim a with act 0.5; W_U[a, a] is its logit (centred)
    assert fa.correct_logit == pytest.approx([want] * 10, abs=1e-5)


# ------------------------------------------------------------------------------------------- pairs tasks


def _copy_pairs():
    rows = grid_rows()
    clean = [r[3] for r in rows[::7]]
    corrupt = [[(c[0] + 3) % 10, c[1], EQ] for c in clean]
    return clean, corrupt, [c[0] for c in clean], [k[0] for k in corrupt]


def test_pairs_task_equals_from_tokens_and_runs_every_circuit_pipeline(hand):
    clean, corrupt, ans, cans = _copy_pairs()
    pp = PromptPairs.from_tokens(hand, clean, corrupt, np.array(ans), torch.tensor(cans))
    task = PairsTask(clean, corrupt, ans, cans, name="copy-pairs")
    assert torch.equal(task.pairs(hand).clean_tokens, pp.clean_tokens)
    assert pp.position_labels == ("pos 0", "pos 1", "pos 2")
    a = patch(hand, pp, site="heads").effects
    b = patch(hand, task.pairs(hand), site="heads").effects
    assert np.array_equal(a, b)
    disc, ev = task.pairs(hand, split="discovery"), task.pairs(hand, split="evaluation")
    assert disc.n + ev.n == task.n and not {tuple(x) for x in disc.clean} & {tuple(x) for x in ev.clean}
    c = find_circuit(hand, task, n_per_op=50, n_eval=50, seeds=(0,))
    assert c.heads == ((0, 0),) and c.faithfulness == pytest.approx(1.0, abs=1e-6)
    # corrupt_answers=None: the model's own top-1 on each corrupt prompt
    auto = PromptPairs.from_tokens(hand, clean, corrupt, ans)
    assert auto.corrupt_answers.tolist() == cans


def test_grouped_pairs_give_one_circuit_per_group(hand):
    clean, corrupt, ans, cans = _copy_pairs()
    groups = ["low" if c[0] < 5 else "high" for c in clean]
    task = PairsTask(clean, corrupt, ans, cans, groups=groups)
    assert task.operators == ("low", "high") or task.operators == ("high", "low")
    for g in task.operators:
        c = find_circuit(hand, task, operator=g, n_per_op=50, n_eval=50, seeds=(0,))
        assert c.heads == ((0, 0),)


def test_report_on_a_file_task(tmp_path):
    from interp.models import load_model
    from interp.report.build import build_report

    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"clean": c, "corrupt": k, "answer": a, "corrupt_answer": b})
                              for c, k, a, b in PAIRS) + "\n")
    html = build_report(load_model("toy-arith"), tmp_path / "r.html", model_name="toy-arith",
                        task_spec=f"file:{path}", quick=True, progress=False).read_text()
    assert "8 clean/corrupt pairs of 5 tokens" in html and "<b>Circuit</b>" in html


def test_from_text_uses_the_to_tokens_bos_rule():
    from interp.models import load_model
    from interp.tasks import parse_task

    toy = load_model("toy-arith")
    pp = PromptPairs.from_text(toy, ["3+4=", "5-1="], ["6+4=", "2-1="], ["7", "4"], ("10", 1))
    want = [p.tokens for p in parse_task("arith:+-:0-9").prompts(toy, "+") if (p.a, p.b) == (3, 4)][0]
    assert tuple(pp.clean_tokens[0].tolist()) == want == tuple(toy.to_tokens("3+4=")[0].tolist())
    assert pp.clean_answers.tolist() == [7, 4] and pp.corrupt_answers.tolist() == [10, 1]
    assert pp.position_labels == ("BOS", "pos 1", "pos 2", "pos 3", "=")


def test_built_in_tasks_follow_the_protocol():
    from interp.tasks import parse_task
    from interp.tasks.induction import InductionTask
    from interp.tasks.ioi import IOITask

    assert isinstance(parse_task("arith"), GridTask)
    for t in (IOITask(), InductionTask()):
        assert isinstance(t, Task) and not isinstance(t, GridTask) and t.operators == ()
    assert isinstance(PairsTask(["a"], ["b"], ["c"]), Task)
    assert not isinstance(PairsTask(["a"], ["b"], ["c"]), GridTask)


def test_prompt_pairs_accept_lists_and_arrays():
    p = PromptPairs([[1, 2, 10]], np.array([[4, 2, 10]]), [1], (4,), ["a", "b", "="], "t")
    assert p.clean_tokens.dtype == torch.long and p.corrupt_answers.tolist() == [4]
    assert p.position_labels == ("a", "b", "=")
    from interp.errors import ShapeError

    with pytest.raises(ShapeError, match="clean_answers must be integer token ids"):
        PromptPairs([[1, 2, 10]], [[4, 2, 10]], [1.5], [4], ["a", "b", "="], "t")


def test_load_model_accepts_a_bridge():
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    from interp.models import load_model

    b = TransformerBridge.boot_native(TransformerBridgeConfig(d_model=16, d_head=4, n_heads=4, n_layers=1, d_mlp=32,
                                                              d_vocab=20, n_ctx=8, act_fn="relu", seed=0))
    assert not b.compatibility_mode
    assert load_model(b) is b and b.compatibility_mode
    assert load_model(b) is b


# ------------------------------------------------------------------------------------------------ the CLI

PAIRS = [("3+4=", "6+4=", "7", "10"), ("2+5=", "2+1=", "7", "3"), ("8-3=", "9-3=", "5", "6"),
         ("4+4=", "4+2=", "8", "6"), ("9-2=", "9-7=", "7", "2"), ("1+6=", "1+3=", "7", "4"),
         ("7-1=", "5-1=", "6", "4"), ("5+2=", "5+0=", "7", "5")]


def test_cli_file_task_matches_python(tmp_path, capsys):
    from interp.cli import main
    from interp.models import load_model

    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"clean": c, "corrupt": k, "answer": a, "corrupt_answer": b})
                              for c, k, a, b in PAIRS) + "\n")
    model = load_model("toy-arith")
    task = PairsTask([p[0] for p in PAIRS], [p[1] for p in PAIRS], [p[2] for p in PAIRS], [p[3] for p in PAIRS])
    out = tmp_path / "patch.json"
    assert main(["patch", "--model", "toy-arith", "--task", f"file:{path}", "--out", str(out)]) == 0
    from interp.patching import PatchResult

    cli = PatchResult.load(out)
    py = patch(model, task.pairs(model, n_per_op=50), site="heads", positions="all")
    assert cli.effects.shape == py.effects.shape == (4, 5, 4) and cli.labels == py.labels
    assert np.allclose(cli.effects, py.effects, atol=1e-6)
    out2 = tmp_path / "circuit.json"
    assert main(["circuit", "--model", "toy-arith", "--task", f"file:{path}", "--out", str(out2), "--seeds", "42",
                 "--ablation", "zero"]) == 0
    cli_c = json.loads(out2.read_text())
    py_c = find_circuit(model, task, ablation="zero", seeds=(42,), n_per_op=50, n_eval=50, eval_seed=0)
    assert [tuple(h) for h in cli_c["heads"]] == list(py_c.heads)
    assert cli_c["faithfulness"] == pytest.approx(py_c.faithfulness, abs=1e-9)
    assert "file:" in cli_c["task"]
