"""Bad input to user-supplied tasks (issue 12), table-driven: each case must raise an `InterpError` (exit 2 on the
CLI) whose message names what was wrong and what is valid, before any forward pass, leaving no output behind."""

from __future__ import annotations

import types

import pytest

from interp.errors import InterpError
from interp.tasks import PromptPairs
from interp.tasks.custom import OperandTask, PairsTask
from tests.handset import grid_rows, handset_bridge


class NoForward:
    """A model stand-in with a vocabulary but no forward pass: any call fails the test."""

    cfg = types.SimpleNamespace(d_vocab=12, n_layers=1)
    tokenizer = None

    def __call__(self, *a, **k):  # pragma: no cover - reaching it is the failure
        raise AssertionError("a forward pass ran before the input was checked")


class OnlyPairs:
    """A duck-typed task with pairs but no mean_ablation_tokens."""

    name, operators = "only-pairs", ()

    def pairs(self, model, **kw):
        return PromptPairs.from_tokens(model, [[1, 2, 10]] * 4, [[4, 2, 10]] * 4, [1] * 4, [4] * 4)


@pytest.fixture(scope="module")
def hand():
    return handset_bridge()


@pytest.fixture(scope="module")
def toy():
    from interp.models import load_model

    return load_model("toy-arith")


def _circuit(model, task):
    from interp.circuits import find_circuit

    return find_circuit(model, task, n_per_op=2, n_eval=2, seeds=(0,))


def _classify(model, task):
    from interp.neurons.pipeline import classify_neurons

    return classify_neurons(model, task, {0: [0]})


def _knockout(model, task):
    from interp.neurons.knockout import prompt_knockout

    return prompt_knockout(model, task, None, op="x")  # type: ignore[arg-type]


def _load(obj):
    from interp.models import load_model

    return load_model(obj)


def _file(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


# (id, model fixture or None, call(model, tmp_path), regex the message must match)
CASES = [
    ("unequal-lengths-tokens", "hand",
     lambda m, t: PromptPairs.from_tokens(m, [[1, 2, 3], [1, 2, 3]], [[1, 2, 3], [1, 2]], [1, 1]),
     r"pair 1: the clean prompt is 3 tokens \[1, 2, 3\] but the corrupt prompt is 2 tokens \[1, 2\]; .*equal token"),
    ("unequal-lengths-text", "toy",
     lambda m, t: PromptPairs.from_text(m, ["3+4="], ["3+4+1="], ["7"]),
     r"pair 0: the clean prompt is 5 tokens .* but the corrupt prompt is 7 tokens"),
    ("pairs-of-different-lengths", "hand",
     lambda m, t: PromptPairs.from_tokens(m, [[1, 2, 3], [1, 2]], [[1, 2, 3], [1, 3]], [1, 1]),
     r"pair 1 is 2 tokens .* most pairs are 3 tokens; every pair must have the same length"),
    ("answer-not-single-token", "toy",
     lambda m, t: PromptPairs.from_text(m, ["3+4="], ["6+4="], ["+7"]),
     r"answer of pair 0, '\+7', is 2 tokens .*single-token answer.*multi_token='first'"),
    ("answer-id-outside-vocab", "hand",
     lambda m, t: PromptPairs.from_tokens(m, [[1, 2, 10]], [[4, 2, 10]], [99], [4]),
     r"answer of pair 0 is token id 99, outside the vocabulary \[0, 12\)"),
    ("prompt-id-outside-vocab-before-forward", None,
     lambda m, t: PromptPairs.from_tokens(NoForward(), [[1, 2, 50]], [[1, 2, 3]], [1]),
     r"clean prompt of pair 0 holds token id\(s\) \[50\] outside the vocabulary \[0, 12\)"),
    ("empty-token-lists", "hand", lambda m, t: PromptPairs.from_tokens(m, [], [], []),
     r"no clean prompts: the list is empty"),
    ("empty-text-lists", "toy", lambda m, t: PromptPairs.from_text(m, [], [], []),
     r"no clean prompts: the list is empty"),
    ("empty-pairs-task", None, lambda m, t: PairsTask([], [], []), r"no prompt pairs: the clean list is empty"),
    ("mismatched-list-lengths", None, lambda m, t: PairsTask(["a", "b"], ["c"], ["x", "y"]),
     r"1 corrupt prompts for 2 clean prompts; give exactly one per pair"),
    ("mismatched-answers", "hand", lambda m, t: PromptPairs.from_tokens(m, [[1, 2, 10]], [[4, 2, 10]], [1, 2]),
     r"2 answers for 1 prompt pairs; give exactly one per pair"),
    ("answers-as-a-string", "hand", lambda m, t: PromptPairs.from_tokens(m, [[1, 2, 10]], [[4, 2, 10]], "1"),
     r"answers must be a list, tuple, array or tensor"),
    ("non-bridge-model", None, lambda m, t: _load(object()),
     r"expected a model spec .* or a transformer_lens TransformerBridge; got a builtins.object"),
    ("non-bridge-model-in-pairs", None, lambda m, t: PromptPairs.from_tokens(object(), [[1]], [[2]], [1]),
     r"expected a model with cfg.d_vocab \(a TransformerBridge\); got object"),
    ("text-on-a-tokenizer-free-model", "hand", lambda m, t: PairsTask(["a b"], ["c d"], ["e"]).pairs(m),
     r"this model has no tokenizer"),
    ("grid-with-2-prompts", None, lambda m, t: OperandTask({"copy": grid_rows()[:2]}),
     r"the 'copy' grid has 2 prompt\(s\); the neuron heuristics need at least 3"),
    ("grid-row-shape", None, lambda m, t: OperandTask({"copy": [(1, 2, 3)] * 3}),
     r"'copy' row 0 must be \(a, b, result, tokens, answer_token\)"),
    ("task-missing-mean-ablation", "hand", lambda m, t: _circuit(m, OnlyPairs()),
     r"find_circuit \(mean ablation.*needs the task method/attribute 'mean_ablation_tokens', which OnlyPairs"),
    ("task-missing-grid", "hand", lambda m, t: _classify(m, PairsTask([[1, 2, 10]], [[4, 2, 10]], [1])),
     r"classify_neurons needs the task method/attribute 'lo', which PairsTask does not have \(also missing: hi, "
     r"prompts\)"),
    ("task-missing-knockout", "hand", lambda m, t: _knockout(m, PairsTask([[1, 2, 10]], [[4, 2, 10]], [1])),
     r"neuron knockouts needs the task method/attribute 'prompts'"),
    ("task-as-a-string", "hand", lambda m, t: _circuit(m, "arith"),
     r"needs a task object, not the string 'arith'; build one with interp.tasks.parse_task"),
    ("evaluation-overlaps-discovery", "hand",
     lambda m, t: _circuit(m, PairsTask([[1, 2, 10], [1, 2, 10]], [[4, 2, 10], [5, 2, 10]], [1, 1], [4, 5])),
     r"evaluation prompts overlap its discovery prompts .* must be disjoint"),
    ("evaluation-split-empty", "hand", lambda m, t: _circuit(m, PairsTask([[1, 2, 10]], [[4, 2, 10]], [1], [4])),
     r"the evaluation split of 'custom' is empty: 1 pairs .*needs >= 2 pairs per group"),
    ("file-missing-column", None,
     lambda m, t: PairsTask.from_file(_file(t, "a.jsonl", '{"clean": "a", "corrupt": "b", "answer": "c"}\n'
                                                            '{"clean": "a", "answer": "c"}\n')),
     r"a.jsonl line 2: missing column\(s\) \['corrupt'\]; every row needs clean, corrupt, answer"),
    ("file-unknown-column", None,
     lambda m, t: PairsTask.from_file(_file(t, "a.jsonl", '{"clean": "a", "corrupt": "b", "answers": "c"}\n')),
     r"line 1: unknown column\(s\) \['answers'\]; valid columns: clean, corrupt, answer"),
    ("file-empty", None, lambda m, t: PairsTask.from_file(_file(t, "e.jsonl", "\n\n")),
     r"e.jsonl is empty: it holds no rows"),
    ("file-bad-json", None, lambda m, t: PairsTask.from_file(_file(t, "b.jsonl", '{"clean": "a"\n')),
     r"b.jsonl line 1: not valid JSON"),
    ("file-wrong-suffix", None, lambda m, t: PairsTask.from_file(_file(t, "b.txt", "x")),
     r"must end in .jsonl or .csv"),
    ("file-csv-missing-cell", None,
     lambda m, t: PairsTask.from_file(_file(t, "c.csv", "clean,corrupt,answer\n3+4=,6+4=,7\n3+4=,6+4=\n")),
     r"c.csv line 3: missing cell\(s\) for \['answer'\]"),
    ("file-unequal-lengths", "toy",
     lambda m, t: PairsTask.from_file(_file(t, "u.csv", "clean,corrupt,answer\n3+4=,6+4=,7\n3+4=,6+4+1=,7\n"))
     .pairs(m),
     r"u.csv line 3: the clean prompt is 5 tokens .* corrupt prompt is 7 tokens"),
    ("file-answer-not-single-token", "toy",
     lambda m, t: PairsTask.from_file(_file(t, "s.jsonl", '{"clean": "3+4=", "corrupt": "6+4=", "answer": "+7"}\n'))
     .pairs(m),
     r"s.jsonl line 1, '\+7', is 2 tokens"),
    ("file-spec-without-path", None, lambda m, t: __import__("interp.tasks").tasks.parse_task("file:"),
     r"names no file; use file:PATH.jsonl or file:PATH.csv"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, request, tmp_path):
    _, fixture, call, pattern = case
    model = request.getfixturevalue(fixture) if fixture else None
    with pytest.raises(InterpError, match=pattern):
        call(model, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.suffix not in (".jsonl", ".csv", ".txt")] == []


@pytest.mark.parametrize("command", ["patch", "circuit"])
def test_cli_bad_file_exits_2_and_writes_nothing(command, tmp_path, capsys):
    from interp.cli import main

    bad = _file(tmp_path, "bad.jsonl", '{"clean": "3+4=", "corrupt": "6+4=", "answer": "7"}\n'
                                       '{"clean": "3+4=", "corrupt": "6+4+1=", "answer": "7"}\n')
    out = tmp_path / "out.json"
    assert main([command, "--model", "toy-arith", "--task", f"file:{bad}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"interp {command}: error: {bad} line 2: the clean prompt is 5 tokens" in err
    assert "equal token length" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl"]
