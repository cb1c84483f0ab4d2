"""Concept lexicons, the candidate rule, judges and the result object, on a hand-weighted tiny model."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_bridge

from interp.errors import InterpError, TaskError, UnknownNameError
from interp.vocab.concepts import (
    BUILTIN_CONCEPTS,
    ConceptError,
    ConceptNeurons,
    JudgeError,
    default_skip_layers,
    find_concept_neurons,
    judge_prompt,
    llm_judge,
    load_lexicon,
    parse_verdict,
)

# token strings of the 50-token tiny vocabulary: a few concept tokens, the rest filler
STRINGS = ["+", " plus", "Sum", " then", "So", " =", "total", "x", "*"] + [f"w{i}" for i in range(9, 50)]

# (layer, neuron) -> {token: weight}: value vectors written into W_out (W_U is the identity on tokens 0..31)
PLANTED = {
    (2, 5): {0: 1.0, 1: 1.0, 9: 0.5},  # "+", " plus"        -> add
    (2, 6): {3: 1.0, 4: 1.0},  # " then", "So"               -> connections
    (1, 7): {5: 1.0, 6: 0.9},  # " =", "total"                -> equals_to
    (0, 8): {0: 1.0, 1: 1.0},  # add, but in a skipped layer
    (2, 9): {0: 1.0, 9: 0.9, 10: 0.8},  # one add token only: a candidate only with min_matches=1
    (2, 10): {7: 1.0, 8: 1.0},  # "x", "*"                    -> multiply
}


@pytest.fixture(scope="module")
def model():
    m = tiny_bridge(n_ctx=24)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        m.W_U[:] = 0.0
        m.W_U[:, :32] = torch.eye(32)
        m.W_U[:, 32:] = 0.01 * torch.randn(32, 18, generator=g).abs()  # filler tokens rank next
        for layer in range(3):
            w = m.blocks[layer].mlp.W_out
            w[:] = 0.0
            w[:, 31] = 1.0  # every other neuron promotes filler token w31
        for (layer, n), toks in PLANTED.items():
            w = m.blocks[layer].mlp.W_out
            w[n] = 0.0
            for t, x in toks.items():
                w[n, t] = x
    return m


def found_set(res, concept):
    return {(n.layer, n.neuron) for n in res[concept]}


def test_builtin_lexicon_has_the_seven_paper_concepts():
    lex = load_lexicon()
    assert tuple(lex) == BUILTIN_CONCEPTS
    assert lex["add"].tokens == {"add", "addition", "+", "sum", "plus"}
    assert "then" in lex["connections"].tokens and "x" in lex["multiply"].tokens
    assert lex["equals_to"].question == "Is this neuron promoting equals to from equation?"


def test_candidate_rule_on_planted_neurons(model):
    res = find_concept_neurons(model, top_k=3, token_strings=STRINGS)
    assert res.skip_layers == default_skip_layers(3) == (0,)
    assert found_set(res, "add") == {(2, 5)}
    assert found_set(res, "connections") == {(2, 6)}
    assert found_set(res, "equals_to") == {(1, 7)}
    assert found_set(res, "multiply") == {(2, 10)}
    assert res.counts() == {"connections": 1, "add": 1, "subtract": 0, "multiply": 1, "division": 0,
                            "equals_to": 1, "formula": 0}
    (n,) = res["add"]
    assert n.matches == ("+", " plus") and n.top_tokens == ("+", " plus", "w9") and n.judged is None
    assert res.neurons("add") == {2: [5]} and res.all_neurons() == {1: [7], 2: [5, 6, 10]}
    assert res.n_scanned == 2 * 64


def test_threshold_skip_layers_and_candidates_are_configurable(model):
    loose = find_concept_neurons(model, top_k=3, min_matches=1, token_strings=STRINGS)
    assert found_set(loose, "add") == {(2, 5), (2, 9)}
    all_layers = find_concept_neurons(model, top_k=3, skip_layers=(), token_strings=STRINGS)
    assert found_set(all_layers, "add") == {(0, 8), (2, 5)}
    only = find_concept_neurons(model, top_k=3, skip_layers=(), candidates={0: [8], 2: [6]}, token_strings=STRINGS)
    assert only.all_neurons() == {0: [8], 2: [6]} and only.n_scanned == 2
    sub = find_concept_neurons(model, top_k=3, concepts=["add"], token_strings=STRINGS)
    assert list(sub.concepts) == ["add"]


def test_extended_lexicon_finds_new_concept(model):
    lex = load_lexicon(extra={"fillers": {"question": "Filler?", "tokens": ["w9", "w10"]}, "add": ["w31"]})
    res = find_concept_neurons(model, lexicon=lex, top_k=3, min_matches=2, token_strings=STRINGS)
    assert found_set(res, "fillers") == {(2, 9)}
    assert "w31" in lex["add"].tokens and "+" in lex["add"].tokens


def test_lexicon_from_file(tmp_path, model):
    path = tmp_path / "lex.json"
    path.write_text(json.dumps({"concepts": {"mul": {"question": "Mul?", "tokens": ["X", "*"]}, "eq": ["="]}}))
    lex = load_lexicon(path)
    assert list(lex) == ["mul", "eq"] and lex["mul"].tokens == {"x", "*"}
    res = find_concept_neurons(model, lexicon=lex, top_k=3, token_strings=STRINGS)
    assert found_set(res, "mul") == {(2, 10)} and res["eq"] == ()


def test_judge_filters_candidates(model):
    asked = []

    def judge(tokens, question):
        asked.append((tuple(tokens), question))
        return "No, these are ordering words." if "logical" in question else "Yes, it adds."

    res = find_concept_neurons(model, top_k=3, judge=judge, token_strings=STRINGS)
    assert res["connections"] == () and res.n_candidates["connections"] == 1
    assert found_set(res, "add") == {(2, 5)} and res["add"][0].judged is True
    assert (("+", " plus", "w9"), "Is this neuron promoting arithmetic addition ?") in asked
    assert res.judge == "judge"


def test_llm_judge_uses_the_paper_prompt(model):
    prompts = []

    def complete(prompt):
        prompts.append(prompt)
        return "Yes, clearly."

    res = find_concept_neurons(model, top_k=3, concepts=["add"], judge=llm_judge(complete), token_strings=STRINGS)
    assert found_set(res, "add") == {(2, 5)}
    assert prompts == [judge_prompt(["+", " plus", "w9"], "Is this neuron promoting arithmetic addition ?")]
    assert prompts[0].startswith("A neuron in language model promotes the following set of words: + , plus ,w9.")


@pytest.mark.parametrize("answer, verdict", [("Yes", True), ("no.", False), ("  YES, because", True),
                                             ("No - it is not", False), (True, True), ("maybe", None),
                                             ("I think yes", None), (None, None), ("", None)])
def test_parse_verdict(answer, verdict):
    assert parse_verdict(answer) is verdict


def test_result_roundtrip_and_plot(model, tmp_path):
    res = find_concept_neurons(model, top_k=3, token_strings=STRINGS)
    back = ConceptNeurons.load(res.save(tmp_path / "c.json"))
    assert back.counts() == res.counts() and back["add"] == res["add"] and back.skip_layers == (0,)
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["concepts"]["add"]["neurons"][0] == {"layer": 2, "index": 5, "matches": ["+", " plus"],
                                                     "top_tokens": ["+", " plus", "w9"], "judged": None}
    assert len(res.to_frame()) == 4
    fig = res.plot()
    assert fig.data[0].z.shape == (7, 2)


def test_projection_is_reused(model):
    from interp.vocab import scan_values

    proj = scan_values(model, k=5, token_strings=STRINGS)
    res = find_concept_neurons(model, top_k=3, projection=proj, token_strings=STRINGS)
    assert found_set(res, "add") == {(2, 5)}
    with pytest.raises(ConceptError, match="holds top-5"):
        find_concept_neurons(model, top_k=6, projection=proj, token_strings=STRINGS)


def raises(*_):
    raise RuntimeError("service down")


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(concepts=["addition"]), UnknownNameError, "unknown concept .addition.*did you mean"),
        (dict(judge=raises), JudgeError, "raised RuntimeError: service down .*neuron L1N7"),
        (dict(judge=lambda t, q: "maybe"), JudgeError, "answered 'maybe'.*'yes' or 'no'"),
        (dict(judge=lambda t, q: None), JudgeError, "answered None"),
        (dict(judge="gpt-4"), ConceptError, "must be a callable"),
        (dict(min_matches=0), ConceptError, "min_matches"),
        (dict(min_matches=4), ConceptError, "min_matches must be an integer in 1..3"),
        (dict(top_k=0), ConceptError, "top_k"),
        (dict(skip_layers=[0, 1, 2]), ConceptError, "skips every layer"),
        (dict(concepts=[]), ConceptError, "no concepts"),
    ],
)
def test_bad_input(model, kwargs, err, match):
    kwargs = {"top_k": 3, "token_strings": STRINGS, **kwargs}
    with pytest.raises(err, match=match):
        find_concept_neurons(model, **kwargs)
    assert issubclass(err, InterpError)


def test_empty_lexicon_and_bad_files(tmp_path):
    with pytest.raises(ConceptError, match="'ops' has an empty lexicon"):
        load_lexicon(extra={"ops": {"tokens": []}})
    with pytest.raises(ConceptError, match="empty lexicon"):
        load_lexicon(extra={"blank": ["  ", ""]})
    with pytest.raises(ConceptError, match="list of strings"):
        load_lexicon(extra={"add": "plus"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConceptError, match="not valid JSON"):
        load_lexicon(bad)
    bad.write_text(json.dumps({"add": ["+"]}))
    with pytest.raises(ConceptError, match="expected"):
        load_lexicon(bad)
    with pytest.raises(ConceptError, match="cannot read"):
        load_lexicon(tmp_path / "missing.json")
    with pytest.raises(UnknownNameError, match="valid: add"):
        load_lexicon(concepts=["sum"])


def test_model_without_tokenizer_needs_token_strings(model):
    with pytest.raises(TaskError, match="no tokenizer"):
        find_concept_neurons(model, top_k=3)


@pytest.mark.integration
def test_concepts_cli_on_toy_arith(tmp_path, capsys):
    from interp.cli import main

    lex = tmp_path / "lex.json"
    teens = {"question": "Teens?", "tokens": [str(i) for i in range(10, 20)]}
    lex.write_text(json.dumps({"concepts": {"teens": teens}}))
    out = tmp_path / "concepts.json"
    assert main(["concepts", "--model", "toy-arith", "--out", str(out), "--lexicon", str(lex), "--top-k", "10",
                 "--min-matches", "3", "--skip-layers", "none"]) == 0
    data = json.loads(out.read_text())
    assert data["skip_layers"] == [] and data["top_k"] == 10 and "teens" in data["concepts"]
    for n in data["concepts"]["teens"]["neurons"]:
        assert {"layer", "index", "top_tokens"} <= set(n) and len(n["matches"]) >= 3
    assert "teens" in capsys.readouterr().out
    assert main(["concepts", "--model", "toy-arith", "--out", str(out), "--concepts", "addition"]) == 2
    assert "unknown concept 'addition'" in capsys.readouterr().err


def test_concepts_cli_judge_from_a_module(tmp_path, capsys, monkeypatch):
    """`--judge module:function` confirms candidates with user code; `:llm` wraps a completion function."""
    from interp.cli import main

    (tmp_path / "my_judges.py").write_text(
        "PROMPTS = []\n"
        "def only_odd(tokens, question):\n"
        "    return 'yes' if any(t.strip().isdigit() and int(t) % 2 for t in tokens[:1]) else 'no'\n"
        "def complete(prompt):\n"
        "    PROMPTS.append(prompt)\n"
        "    return 'No, it does not.'\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    lex = tmp_path / "lex.json"
    teens = {"question": "Teens?", "tokens": [str(i) for i in range(10, 20)]}
    lex.write_text(json.dumps({"concepts": {"teens": teens}}))
    base = ["concepts", "--model", "toy-arith", "--lexicon", str(lex), "--top-k", "10", "--min-matches", "3",
            "--skip-layers", "none"]
    plain, judged = tmp_path / "plain.json", tmp_path / "judged.json"
    assert main(base + ["--out", str(plain)]) == 0
    assert main(base + ["--out", str(judged), "--judge", "my_judges:only_odd"]) == 0
    everyone = json.loads(plain.read_text())["concepts"]["teens"]["neurons"]
    kept = json.loads(judged.read_text())["concepts"]["teens"]["neurons"]
    assert everyone and all(n["judged"] is None for n in everyone)
    want = [(n["layer"], n["index"]) for n in everyone if n["top_tokens"][0].strip().isdigit()
            and int(n["top_tokens"][0]) % 2]
    assert 0 < len(want) < len(everyone)
    assert [(n["layer"], n["index"]) for n in kept] == want and all(n["judged"] is True for n in kept)
    assert "confirmed by only_odd" in capsys.readouterr().out
    # an LLM completion function that says no to everything: nothing survives, and it saw the paper's prompt
    assert main(base + ["--out", str(judged), "--judge", "my_judges:complete:llm"]) == 0
    assert json.loads(judged.read_text())["concepts"]["teens"]["neurons"] == []
    import my_judges

    assert my_judges.PROMPTS and "Teens?" in my_judges.PROMPTS[0]
    for spec, msg in [("my_judges", "module:function"), ("no_such_module_xyz:f", "cannot import"),
                      ("my_judges:missing", "no callable 'missing'"), ("my_judges:NOT_CALLABLE", "no callable"),
                      ("my_judges:complete:gpt", "module:function")]:
        assert main(base + ["--out", str(judged), "--judge", spec]) == 2
        assert msg in capsys.readouterr().err
