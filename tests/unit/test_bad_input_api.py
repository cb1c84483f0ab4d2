"""Bad input to the public API: one table row per case, each an `InterpError` whose message names what is valid and
no file left behind; plus property-based tests (hypothesis) of the parsers: task specs, sizes, positions, layer lists
and heuristic names never raise anything but an `InterpError`, and what they accept is within range.

Models: tiny random bridges (3 layers, 4 heads, d_mlp 64) built once; no case loads a built-in model except the
damaged-model and device rows, which fail before any weights are read.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interp._io import check_output_path, check_outputs, read_json, write_outputs, write_text_atomic
from interp.checks import check_float, check_int
from interp.circuits.settings import SearchSettings
from interp.errors import FileError, FileFormatError, InterpError, ModelLoadError
from interp.models import load_model
from interp.models.toy import ToyArithConfig
from interp.neurons.candidates import parse_heuristic
from interp.neurons.dynamics import list_checkpoints, training_dynamics
from interp.neurons.maps import top_value_tokens
from interp.neurons.pipeline import analyze_neurons
from interp.patching import PatchResult
from interp.patching.engine.budget import MAX_BYTES, parse_bytes
from interp.patching.variants import resolve_positions
from interp.sites import check_layers, resolve_layers
from interp.tasks import ArithTask, parse_task
from tests.conftest import random_pairs, tiny_bridge

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def tb():
    return tiny_bridge()


def _result() -> PatchResult:
    eff = np.arange(4.0).reshape(2, 1, 2)
    return PatchResult(eff, ("layer", "pos", "head"), {"layer": [0, 1], "pos": [4], "head": [0, 1]},
                       {"layer": ["L0", "L1"], "pos": ["="], "head": ["H0", "H1"]}, site="heads", metric="ie")


def _ioi():
    return parse_task("ioi:8")


def _arith():
    return parse_task("arith:+:0-9")


# (id, call(tiny model, tmp_path), regex of the message)
CASES = [
    # sizes (parse_bytes)
    ("bytes 1e999 text", lambda m, t: parse_bytes("1e999"), r"not a usable size.*'512MB'"),
    ("bytes nan text", lambda m, t: parse_bytes("nan"), r"not a size"),
    ("bytes inf text", lambda m, t: parse_bytes("inf"), r"not a size"),
    ("bytes float nan", lambda m, t: parse_bytes(float("nan")), r"not a usable size"),
    ("bytes float inf", lambda m, t: parse_bytes(float("inf")), r"not a usable size"),
    ("bytes float 1e999", lambda m, t: parse_bytes(1e999), r"not a usable size"),
    ("bytes over 1 PB", lambda m, t: parse_bytes(10**16), r"at most 1 PB"),
    ("bytes zero", lambda m, t: parse_bytes(0), r"not a usable size"),
    ("bytes fraction of a byte", lambda m, t: parse_bytes("0.5B"), r"at least 1 byte"),
    ("bytes bool", lambda m, t: parse_bytes(True), r"not a size"),
    ("bytes unit", lambda m, t: parse_bytes("3 furlongs"), r"not a size.*'1GiB'"),
    # layers
    ("layers empty", lambda m, t: resolve_layers(m, []), r"empty; give at least one layer in 0\.\.2"),
    ("layers bool", lambda m, t: resolve_layers(m, [True]), r"not a layer number; the model has layers 0\.\.2"),
    ("layers float", lambda m, t: resolve_layers(m, [1.7]), r"not a layer number.*0\.\.2"),
    ("layers out of range", lambda m, t: resolve_layers(m, [3]), r"layer 3 is out of range.*0\.\.2"),
    ("layers negative", lambda m, t: resolve_layers(m, [-1]), r"out of range.*0\.\.2"),
    ("layers a string", lambda m, t: resolve_layers(m, "01"), r"list of layer numbers in 0\.\.2"),
    ("skip layers out of range", lambda m, t: check_layers(m, [7], what="skip_layers", allow_empty=True),
     r"skip_layer 7 is out of range"),
    ("patch layers empty", lambda m, t: _patch(m, layers=[]), r"layers is empty; give at least one layer in 0\.\.2"),
    ("patch layers bool", lambda m, t: _patch(m, layers=[True]), r"not a layer number"),
    ("patch positions True", lambda m, t: _patch(m, positions=True), r"must be 'all', 'last'"),
    ("patch max_memory nan", lambda m, t: _patch(m, max_memory=float("nan")), r"not a usable size"),
    ("patch_by_group layers empty", lambda m, t: _patch_by_group(m, layers=[]), r"layers is empty.*0\.\.2"),
    ("patch_by_group engine bad", lambda m, t: _patch_by_group(m, engine="fast"), r"valid: auto, cone, full"),
    ("patch_by_group site bad", lambda m, t: _patch_by_group(m, site="heddas"), r"valid: .*heads.*resid"),
    ("effects by operator no seeds", lambda m, t: _effects_by_op(m, seeds=()), r"at least one corrupt-sampling seed"),
    ("finite_moments a list", lambda m, t: _finite_moments([1.0, 2.0]), r"real-valued tensor of at least one dim"),
    ("finite_moments a scalar", lambda m, t: _finite_moments(torch.tensor(1.0)), r"at least one dimension.*shape \(\)"),
    ("finite_moments bool", lambda m, t: _finite_moments(torch.ones(3, dtype=torch.bool)), r"real-valued.*torch\.bool"),
    # positions
    ("positions True", lambda m, t: resolve_positions(True, 5), r"must be 'all', 'last', an int, comma-separated ints"),
    ("positions 1.7", lambda m, t: resolve_positions(1.7, 5), r"must be 'all', 'last', an int, comma-separated ints"),
    ("positions list of floats", lambda m, t: resolve_positions([1.7], 5), r"not an integer"),
    ("positions list of bools", lambda m, t: resolve_positions([True], 5), r"not an integer"),
    ("positions out of range", lambda m, t: resolve_positions(9, 5), r"valid: 0\.\.4"),
    ("positions words", lambda m, t: resolve_positions("first", 5), r"'all', 'last'"),
    ("positions empty", lambda m, t: resolve_positions([], 5), r"no positions given"),
    ("positions None", lambda m, t: resolve_positions(None, 5), r"must be 'all', 'last'"),
    # rankings
    ("top k negative", lambda m, t: _result().top(k=-1), r"k must be an integer >= 0; got -1"),
    ("top k float", lambda m, t: _result().top(k=1.5), r"k must be an integer >= 0"),
    ("top k bool", lambda m, t: _result().top(k=True), r"k must be an integer >= 0"),
    ("top_value_tokens k negative", lambda m, t: top_value_tokens(m, 0, 0, k=-3), r"k must be an integer in 1\.\.50"),
    ("top_value_tokens k zero", lambda m, t: top_value_tokens(m, 0, 0, k=0), r"k must be an integer in 1\.\.50"),
    ("top_value_tokens k huge", lambda m, t: top_value_tokens(m, 0, 0, k=10**6), r"in 1\.\.50"),
    # heuristic names
    ("heuristic reversed range", lambda m, t: parse_heuristic("result_range_60_50"),
     r"needs A < B.*result_range_50_60"),
    ("heuristic empty range", lambda m, t: parse_heuristic("op1_range_5_5"), r"needs A < B"),
    ("heuristic mod 0", lambda m, t: parse_heuristic("op1_0mod0"), r"N >= 1 and 0 <= R < N"),
    ("heuristic residue too big", lambda m, t: parse_heuristic("result_7mod3"), r"0 <= R < N"),
    ("heuristic pattern without digits", lambda m, t: parse_heuristic("op2_pattern_.."), r"at least one digit"),
    ("heuristic empty multi-value", lambda m, t: parse_heuristic("result_multi_value_0=[]"), r"at least one value"),
    ("heuristic unknown", lambda m, t: parse_heuristic("result_region_1_2"), r"not region"),
    # task specs and grids
    ("task huge range", lambda m, t: parse_task("arith:+:0-100000"), r"at most 1,000,000.*e\.g\. 0-999"),
    ("task range above grid", lambda m, t: ArithTask(lo=0, hi=1000), r"at most 1,000,000"),
    ("task ioi negative", lambda m, t: parse_task("ioi:-3"), r"must be an integer >= 1, e.g. ioi:32; got '-3'"),
    ("task lo float", lambda m, t: ArithTask(lo=0.5, hi=9), r"lo=0\.5 must be an integer"),
    ("task hi bool", lambda m, t: ArithTask(lo=0, hi=True), r"hi=True must be an integer"),
    ("task lo negative", lambda m, t: ArithTask(lo=-1, hi=9), r"need 0 <= lo <= hi"),
    ("pairs n_per_op 0", lambda m, t: _arith().pairs(None, n_per_op=0), r"n_per_op must be an integer >= 1"),
    ("pairs n_per_op float", lambda m, t: _arith().pairs(None, n_per_op=2.5), r"n_per_op must be an integer"),
    ("pairs n_per_op huge", lambda m, t: _arith().pairs(None, n_per_op=10**8), r"than the 100 of the operand grid"),
    ("pairs evaluation beyond grid", lambda m, t: _arith().pairs(None, n_per_op=60, split="evaluation"),
     r"evaluation split comes after.*n_per_op <= 50"),
    # toy training config
    ("toy d_model 0", lambda m, t: ToyArithConfig(d_model=0), r"d_model must be an integer >= 1 \(got 0\)"),
    ("toy n_layers 0", lambda m, t: ToyArithConfig(n_layers=0), r"n_layers must be an integer >= 1"),
    ("toy lr nan", lambda m, t: ToyArithConfig(lr=float("nan")), r"lr must be a finite number > 0"),
    ("toy lr inf", lambda m, t: ToyArithConfig(lr=float("inf")), r"lr must be a finite number > 0"),
    ("toy train device absent", lambda m, t: __import__("interp.models.toy", fromlist=["x"]).train_toy(
        ToyArithConfig(steps=1), device="cuda:99", progress=False), r"does not exist on this machine; devices present"),
    ("toy batch 0", lambda m, t: ToyArithConfig(batch_size=0), r"batch_size must be an integer >= 1"),
    ("toy steps float", lambda m, t: ToyArithConfig(steps=10.5), r"steps must be an integer >= 1"),
    ("toy heads do not divide", lambda m, t: ToyArithConfig(d_model=130), r"divisible by n_heads \(4\)"),
    ("toy held-out 1", lambda m, t: ToyArithConfig(held_out_frac=1.0), r"held_out_frac must be in \[0, 1\)"),
    ("toy op weights zero", lambda m, t: ToyArithConfig(op_weights=(0, 0, 0, 0)), r"not all 0"),
    ("toy act fn", lambda m, t: ToyArithConfig(act_fn="tanh"), r"act_fn must be one of gelu"),
    ("toy operand_max", lambda m, t: ToyArithConfig(operand_max=1000), r"operand_max must be an integer in"),
    # circuit search settings
    ("search max_heads -1", lambda m, t: SearchSettings(max_heads=-1), r"max_heads must be an integer >= 1"),
    ("search max_heads 0", lambda m, t: SearchSettings(max_heads=0), r"max_heads must be an integer >= 1"),
    ("search seeds empty", lambda m, t: SearchSettings(seeds=()), r"non-empty list of integers"),
    ("search seeds text", lambda m, t: SearchSettings(seeds="42"), r"non-empty list of integers"),
    ("search seeds float", lambda m, t: SearchSettings(seeds=(1.5,)), r"seed must be an integer"),
    ("search n_eval 0", lambda m, t: SearchSettings(n_eval=0), r"n_eval must be an integer >= 1"),
    ("search max_memory text", lambda m, t: SearchSettings(max_memory="lots"), r"not a size; use a positive number"),
    ("search max_memory 0", lambda m, t: SearchSettings(max_memory=0), r"not a usable size"),
    ("edges ig_rule", lambda m, t: __import__("interp.circuits.edges.scores", fromlist=["x"]).check_method(
        "eap-ig-inputs", 5, "middle"), r"valid.*right.*left|right.*left"),
    ("edges ig_rows 0", lambda m, t: __import__("interp.circuits.edges.scores", fromlist=["x"]).gradient_scores(
        None, [], "logit_diff", "eap-ig-activations", 5, ig_rows=0), r"ig_rows must be an integer >= 1 .*got 0"),
    ("edges ig_rows float", lambda m, t: __import__("interp.circuits.edges.scores", fromlist=["x"]).gradient_scores(
        None, [], "logit_diff", "eap-ig-activations", 5, ig_rows=2.5), r"ig_rows must be an integer >= 1 .*got 2\.5"),
    ("edges mib sign", lambda m, t: __import__("interp.circuits.edges.mib", fromlist=["x"]).load_mib(
        {"cfg": {}, "edges": {}}, sign="positive"), r"unknown MIB score sign .positive.; valid: metric, mib"),
    ("edges mib_scores wrong length", lambda m, t: __import__("interp.circuits.edges", fromlist=["x"]).EdgeEvaluator(
        m, random_pairs(m, batch=2, seq=4, seed=0)).mib_scores(np.zeros(3)),
     r"\(3,\) scores for a graph of 262 edges"),
    ("edges helps_sign metric", lambda m, t: __import__("interp.circuits.edges.prep", fromlist=["x"]).helps_sign(
        "accuracy"), r"valid.*logit_diff"),
    ("search target nan", lambda m, t: SearchSettings(target=float("nan")), r"(?i)target"),
    # neurons
    ("neurons on ioi", lambda m, t: analyze_neurons(m, _ioi()), r"needs an arithmetic task .*not 'ioi:8:abc'"),
    ("neurons n_random 0", lambda m, t: analyze_neurons(m, _arith(), n_random=0), r"n_random must be an integer >= 1"),
    ("neurons knockout_prompts 0", lambda m, t: analyze_neurons(m, _arith(), knockout_prompts=0),
     r"knockout_prompts must be an integer >= 1"),
    ("neurons layers empty", lambda m, t: analyze_neurons(m, _arith(), layers=[]), r"empty; give at least one"),
    ("neurons budget nan", lambda m, t: analyze_neurons(m, _arith(), budget_mb=float("nan")),
     r"budget_mb must be a finite number > 0"),
    ("neurons per_layer too many", lambda m, t: analyze_neurons(m, _arith(), per_layer=[1, 65]), r"in 0\.\.64"),
    ("dynamics on ioi", lambda m, t: training_dynamics(t, _ioi()), r"needs an arithmetic task"),
    ("dynamics top_k 0", lambda m, t: training_dynamics(t, _arith(), top_k=0), r"top_k .* >= 1"),
    ("dynamics knockout 0", lambda m, t: training_dynamics(t, _arith(), knockout_per_layer=[0]), r">= 1; got 0"),
    # files
    ("output is a folder", lambda m, t: check_output_path(t), r"is a directory; give a file name inside it"),
    ("output parent is a file", lambda m, t: check_output_path(_file(t) / "x.json"), r"is a file, not a folder"),
    ("output empty", lambda m, t: check_output_path(""), r"empty path"),
    ("output folder is a file", lambda m, t: check_output_path(_file(t), directory=True), r"existing file"),
    ("two outputs one path", lambda m, t: check_outputs({"--out": t / "a", "--plot": t / "a"}),
     r"--out and --plot are the same path"),
    ("write under a file", lambda m, t: write_text_atomic(_file(t) / "x.json", "{}"), r"cannot write .*afile/x.json'"),
    ("read missing json", lambda m, t: read_json(t / "missing.json"), r"cannot read .*missing\.json.*No such file"),
    ("read invalid json", lambda m, t: read_json(_write(t, "bad.json", "{")), r"bad\.json' is not valid JSON"),
    ("read binary json", lambda m, t: read_json(_write(t, "bin.json", b"\xff\xfe")), r"not a UTF-8"),
    # models and devices (nothing is loaded)
    ("device foo", lambda m, t: load_model("toy-arith", device="foo"), r"(?i)'foo'.*cpu"),
    ("device meta", lambda m, t: load_model("toy-arith", device="meta"), r"(?i)meta.*cpu"),
    ("device cuda", lambda m, t: load_model("toy-arith", device="cuda"), r"does not exist on this machine"),
    ("dtype", lambda m, t: load_model("toy-arith", dtype="int8"), r"(?i)dtype.*float32"),
    ("model config not an object", lambda m, t: load_model(str(_model_dir(t, "[1, 2]"))),
     r"config.json is not a model config"),
    ("model config invalid json", lambda m, t: load_model(str(_model_dir(t, "{"))), r"not valid JSON"),
    ("toy config bad values", lambda m, t: load_model(str(_model_dir(t, '{"interp_toy_arith": {"d_model": 0}}'))),
     r"invalid toy-arith config: d_model must be"),
    ("toy config unknown key", lambda m, t: load_model(str(_model_dir(t, '{"interp_toy_arith": {"size": 3}}'))),
     r"invalid toy-arith config"),
    ("toy weights truncated", lambda m, t: load_model(str(_truncated_toy(t))), r"model.safetensors cannot be loaded"),
    ("checkpoints interrupted", lambda m, t: list_checkpoints(_broken_ckpt(t)), r"interrupted training run"),
    # the number checks themselves
    ("check_int nan", lambda m, t: check_int(float("nan"), "n", lo=1), r"n must be an integer >= 1; got nan"),
    ("check_int string", lambda m, t: check_int("3", "n"), r"n must be an integer"),
    ("check_float inf", lambda m, t: check_float(math.inf, "x", lo=0), r"x must be a finite number >= 0"),
    ("check_float open end", lambda m, t: check_float(0.0, "x", lo=0, lo_open=True), r"> 0; got 0"),
]


def _patch(m, **kw):
    from interp.patching import patch
    from tests.conftest import random_pairs

    return patch(m, random_pairs(m, batch=2, seq=4), site="mlps", progress=False, **kw)


def _finite_moments(values):
    from interp.metrics import finite_moments

    return finite_moments(values)


def _patch_by_group(m, **kw):
    from interp.patching import patch_by_group
    from interp.tasks.base import PromptPairs
    from tests.conftest import random_pairs

    p = random_pairs(m, batch=4, seq=4)
    grouped = PromptPairs(p.clean_tokens, p.corrupt_tokens, p.clean_answers, p.corrupt_answers, p.position_labels,
                          "random", groups=("a", "b", "a", "b"))
    return patch_by_group(m, grouped, **{"site": "mlps", "progress": False, **kw})


def _effects_by_op(m, **kw):
    from interp.circuits.effects import component_effects_by_operator

    return component_effects_by_operator(m, _arith(), **kw)


def _file(t: Path) -> Path:
    f = t / "afile"
    f.write_text("x")
    return f


def _write(t: Path, name: str, data: str | bytes) -> Path:
    p = t / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return p


def _model_dir(t: Path, config: str) -> Path:
    d = t / "model"
    d.mkdir()
    (d / "config.json").write_text(config)
    return d


def _truncated_toy(t: Path) -> Path:
    from interp.models.toy import TOY_DIR

    d = t / "toy"
    shutil.copytree(TOY_DIR, d)
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:500])
    return d


def _broken_ckpt(t: Path) -> Path:
    (t / "checkpoints" / "step_5").mkdir(parents=True)
    return t


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


@pytest.mark.parametrize("call,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_api_input_is_a_clear_interp_error(call, pattern, tb, tmp_path):
    import re

    with pytest.raises(InterpError) as info:
        call(tb, tmp_path)
    assert re.search(pattern, str(info.value), flags=re.S), str(info.value)
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


def test_write_outputs_is_all_or_none(tmp_path):
    (tmp_path / "a.json").write_text("old")

    def fails(path):
        raise FileError("plot failed")

    before = _tree(tmp_path)
    with pytest.raises(FileError):
        write_outputs({tmp_path / "a.json": "new", tmp_path / "b.html": fails})
    assert _tree(tmp_path) == before  # a.json untouched, no b.html, no temporary files
    write_outputs({tmp_path / "a.json": "new", tmp_path / "b.html": lambda p: p.write_text("<html>")})
    assert (tmp_path / "a.json").read_text() == "new" and (tmp_path / "b.html").read_text() == "<html>"
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.html"]


def test_os_errors_are_file_errors(tmp_path):
    # the errors stay OSError / ValueError for callers that catch those
    with pytest.raises(OSError):
        read_json(tmp_path / "missing.json")
    with pytest.raises(ValueError):
        read_json(_write(tmp_path, "x.json", "nope"))
    assert issubclass(FileFormatError, FileError) and issubclass(ModelLoadError, InterpError)


def test_case_count():
    assert len(CASES) >= 90
    assert len({c[0] for c in CASES}) == len(CASES)


# ------------------------------------------------------------------------------------------------ properties
@FAST
@given(st.one_of(st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**17),
                 st.booleans(), st.none()))
def test_parse_bytes_returns_a_usable_size_or_a_clear_error(value):
    try:
        out = parse_bytes(value)
    except InterpError as e:
        assert "size" in str(e)
        return
    if isinstance(value, str) and value.strip().lower() == "auto":
        assert out >= 1
        return
    assert isinstance(out, int) and 1 <= out <= MAX_BYTES


@FAST
@given(st.floats(0.001, 1e6), st.sampled_from(["", "B", "KB", "MB", "GB", "KiB", "MiB", "GiB", "kb", "gib"]))
def test_parse_bytes_reads_written_sizes(x, unit):
    from interp.patching.engine.budget import _UNITS

    text = f"{x:.3f}{unit}"
    size = float(f"{x:.3f}") * _UNITS[unit.lower()]
    if size < 1 or size > MAX_BYTES:
        with pytest.raises(InterpError):
            parse_bytes(text)
    else:
        assert parse_bytes(text) == int(size)


_SPEC_ATOMS = st.sampled_from(["arith", "ioi", "induction", "+", "-", "*", "/", "x", "%", "0", "9", "-", ":", "abc",
                               "swap", "99", "100000", "", " ", "1e3", "-3"])


@FAST
@given(st.one_of(st.text(max_size=16), st.lists(_SPEC_ATOMS, max_size=6).map("".join)))
def test_task_specs_parse_or_fail_clearly(spec):
    try:
        task = parse_task(spec)
    except InterpError as e:
        assert str(e)
        return
    assert task.name.split(":")[0] == spec.split(":")[0]
    if hasattr(task, "lo"):
        assert 0 <= task.lo <= task.hi and (task.hi - task.lo + 1) ** 2 <= 1_000_000


@FAST
@given(st.sets(st.sampled_from("+-*/"), min_size=1), st.integers(0, 1200), st.integers(0, 1200))
def test_arith_specs_round_trip(ops, a, b):
    ops = "".join(sorted(ops))
    spec = f"arith:{ops}:{a}-{b}"
    if a > b or (b - a + 1) ** 2 > 1_000_000:
        with pytest.raises(InterpError):
            parse_task(spec)
    else:
        t = parse_task(spec)
        assert (t.lo, t.hi, "".join(sorted(t.operators))) == (a, b, ops)


_ANY = st.one_of(st.integers(-20, 20), st.floats(allow_nan=True), st.booleans(), st.text(max_size=3), st.none())


@FAST
@given(st.one_of(st.lists(_ANY, max_size=5), _ANY), st.integers(1, 12))
def test_positions_are_in_range_or_a_clear_error(positions, seq_len):
    try:
        out = resolve_positions(positions, seq_len)
    except InterpError as e:
        assert "position" in str(e)
        return
    assert out == sorted(set(out)) and out and all(0 <= p < seq_len for p in out)
    if isinstance(positions, list):
        assert all(isinstance(p, int) and not isinstance(p, bool) for p in positions)


@FAST
@given(st.one_of(st.lists(_ANY, max_size=5), _ANY))
def test_layer_lists_are_valid_or_a_clear_error(tb, layers):
    try:
        out = resolve_layers(tb, layers)
    except InterpError as e:
        assert "0..2" in str(e)
        return
    assert out == sorted(set(out)) and all(0 <= x < 3 for x in out)
    assert layers is None or out


_NAME_PARTS = st.sampled_from(["op1", "op2", "both_operands", "result", "same_operand", "_", "range", "mod", "pattern",
                               "value", "multi_value", "3", "7", "0", "60", "50", ".", "=[", "]", ",", "region"])


@FAST
@given(st.one_of(st.text(max_size=20), st.lists(_NAME_PARTS, max_size=7).map("".join)))
def test_heuristic_names_parse_or_fail_clearly(name):
    try:
        h = parse_heuristic(name)
    except InterpError as e:
        assert "heuristic" in str(e)
        return
    if h.family == "range":
        assert h.params[0] < h.params[1]
    if h.family == "mod":
        assert 0 <= h.params[0] < h.params[1]


@FAST
@given(st.sampled_from(["op1", "op2", "result"]), st.integers(0, 200), st.integers(0, 200))
def test_heuristic_range_names_round_trip(target, a, b):
    name = f"{target}_range_{a}_{b}"
    if a < b:
        h = parse_heuristic(name)
        assert h.params == (a, b) and parse_heuristic(h.name) == h
    else:
        with pytest.raises(InterpError, match="A < B"):
            parse_heuristic(name)


def test_short_prompt_pool_is_announced(caplog, monkeypatch):
    """A pool with fewer correct prompts than asked for is used with a warning, not silently."""
    from interp.tasks.arith import ArithPrompt

    task = parse_task("arith:+:0-9")
    pool = [ArithPrompt(a, "+", 1, a + 1, f"{a}+1=", (90, a, 91, 1, 92), (a + 1,), ("bos", "op1", "op", "op2", "="))
            for a in range(5)]
    monkeypatch.setattr(ArithTask, "correct_prompts", lambda self, model, op, **kw: pool)
    with caplog.at_level("WARNING", logger="interp.tasks.arith"):
        pairs = task.pairs(object(), n_per_op=8, seed=0)
    assert len(pairs.clean_answers) == 5
    assert "only 5 discovery prompts for '+' (asked for n_per_op=8)" in caplog.text
