"""Beyond one device: placement checks before loading, the cone engine's per-block device bookkeeping (exercised on
a CPU through a recording device map), per-device budgets, and the bad input of the scale options.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from conftest import random_pairs, tiny_bridge

import interp.patching.devices as devices_mod
from interp.errors import InterpError, ShapeError
from interp.models import load_model
from interp.models.placement import DeviceError, Placement, read_device_map, resolve_placement
from interp.patching import patch
from interp.patching.devices import BlockDevices, cache_bytes_by_device, device_budgets, pass_budget
from interp.patching.engine import ConeEngine

N_CUDA = torch.cuda.device_count() if torch.cuda.is_available() else 0


# ----------------------------------------------------------------------------------- placement, before loading
def _bad_map_file(tmp_path, data):
    p = tmp_path / "map.json"
    p.write_text(json.dumps(data))
    return str(p)


BAD_PLACEMENT = [
    # (kwargs, error class, message fragment)
    (dict(device_map={"model.layers.0": f"cuda:{N_CUDA + 3}"}), DeviceError, "does not exist on this machine"),
    (dict(device_map={"model.layers.0": N_CUDA + 1}), DeviceError, "does not exist on this machine"),
    (dict(device_map={"model.layers.0": "tpu:0"}), DeviceError, "is not a device"),
    (dict(device_map={"model": "disk"}), DeviceError, "'disk' and 'meta' targets are not supported"),
    (dict(device_map="nowhere.json"), DeviceError, "does not exist"),
    (dict(device_map="round-robin"), DeviceError, "neither a strategy"),
    (dict(n_devices=N_CUDA + 2), DeviceError, f"but this machine has {N_CUDA} CUDA GPU"),
    (dict(n_devices=0), DeviceError, "positive integer"),
    (dict(dtype="fp8"), DeviceError, "unknown dtype 'fp8'"),
    (dict(dtype=torch.int8), DeviceError, "not supported"),
    (dict(device="cpu", device_map="auto"), DeviceError, "mutually exclusive"),
    (dict(device=f"cuda:{N_CUDA}"), DeviceError, "does not exist on this machine"),
    (dict(max_memory={"cpu": "2GB"}), DeviceError, "pass it with device_map or n_devices"),
    (dict(device_map="auto", max_memory={"cpu": "lots"}), DeviceError, "is not a size"),
    (dict(device_map="auto", max_memory={f"cuda:{N_CUDA + 1}": "1GB"}), DeviceError, "does not exist"),
]


@pytest.mark.parametrize("kwargs,err,msg", BAD_PLACEMENT, ids=[str(k) for k, _, _ in BAD_PLACEMENT])
def test_bad_placement_fails_before_loading(monkeypatch, kwargs, err, msg):
    import interp.models as models

    def never(*a, **k):  # pragma: no cover - reaching it is the failure
        raise AssertionError("the model was loaded before the placement was checked")

    monkeypatch.setitem(models.BUILTINS, "smollm2-135m",
                        models.BuiltinModel("smollm2-135m", "", never, lambda: (True, "")))
    t0 = time.time()
    with pytest.raises(err, match=msg) as info:
        load_model("smollm2-135m", **kwargs)
    assert isinstance(info.value, InterpError)
    assert time.time() - t0 < 2.0
    if msg == "does not exist on this machine":
        assert "devices present: cpu" in str(info.value)  # says what is valid


def test_device_map_file_and_mixed_targets(tmp_path):
    path = _bad_map_file(tmp_path, {"model.embed_tokens": "cpu", "model.layers": "cpu", "lm_head": "cpu"})
    assert read_device_map(path) == {"model.embed_tokens": "cpu", "model.layers": "cpu", "lm_head": "cpu"}
    pl = resolve_placement(device_map=path)
    assert pl.sharded and pl.device is None and pl.boot_kwargs()["device_map"]["lm_head"] == "cpu"
    with pytest.raises(DeviceError, match="non-empty JSON object"):
        read_device_map(_bad_map_file(tmp_path, []))
    if N_CUDA:
        with pytest.raises(DeviceError, match="mixes 'cpu' and GPU"):
            resolve_placement(device_map={"a": 0, "b": "cpu"})


def test_placement_resolution():
    assert resolve_placement() == Placement(device="cpu", dtype=torch.float32)
    pl = resolve_placement(dtype="bf16", device_map="balanced")
    assert pl.boot_kwargs() == {"dtype": torch.bfloat16, "device_map": "balanced"}
    assert resolve_placement(device="cpu", dtype="float64").boot_kwargs() == {"dtype": torch.float64, "device": "cpu"}


def test_load_model_passes_placement_to_boot_transformers(tmp_path, monkeypatch):
    """The checked placement reaches TransformerLens 4's boot_transformers unchanged (captured, not loaded)."""
    from transformer_lens import TransformerBridge

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    seen = {}

    def fake_boot(name, **kw):
        seen.update(kw, name=name)
        raise RuntimeError("captured")

    monkeypatch.setattr(TransformerBridge, "boot_transformers", staticmethod(fake_boot))
    with pytest.raises(InterpError, match="captured"):
        load_model(str(tmp_path), device_map="auto", dtype="bfloat16", max_memory={"cpu": "3GiB"})
    assert seen == {"name": str(tmp_path), "device_map": "auto", "dtype": torch.bfloat16,
                    "max_memory": {"cpu": "3GiB"}, "device": None}
    seen.clear()
    with pytest.raises(InterpError, match="captured"):
        load_model(str(tmp_path), dtype="float16")
    assert seen == {"name": str(tmp_path), "device": "cpu", "dtype": torch.float16}


def test_toy_refuses_sharding():
    with pytest.raises(DeviceError, match="TransformerLens-native"):
        load_model("toy-arith", device_map="auto")


# ----------------------------------------------------------------------------------- engine device bookkeeping
class RecordingDevices(BlockDevices):
    """A device map with named devices that records every move (the tensors stay on the CPU)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.moves: list[int] = []

    def to(self, x, i):
        self.moves.append(i)
        return x


FAKE = ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]  # a 4-layer model split 2 + 2, unembedding on the second GPU


def _fake_map():
    return RecordingDevices(FAKE, "cuda:0", "cuda:1")


@pytest.fixture(scope="module")
def llama4():
    return tiny_bridge(n_layers=4, normalization_type="RMS", positional_embedding_type="rotary", gated_mlp=True,
                       act_fn="silu", n_key_value_heads=2)


def test_block_devices_of_a_model(llama4):
    bd = BlockDevices.of_model(llama4)
    assert bd.devices == ["cpu"] and not bd.multi and bd.block(4) == torch.device("cpu")
    fake = _fake_map()
    assert fake.devices == ["cuda:0", "cuda:1"] and fake.multi
    assert [str(fake.block(i)) for i in range(5)] == ["cuda:0", "cuda:0", "cuda:1", "cuda:1", "cuda:1"]
    assert repr(fake) == "BlockDevices(0-1:cuda:0, 2-3:cuda:1; unembed cuda:1)"


def test_explicit_forward_moves_activations_block_by_block(llama4):
    eng = ConeEngine.for_model(llama4)
    eng.placement = fake = _fake_map()
    toks = torch.randint(0, 50, (2, 6))
    eng._rope_tables(6)
    _, kept = eng.forward(toks, {("resid_pre", 2), ("k", 3)})
    # the forward walks blocks 0..3, each input moved to its block (by forward, where the cache is kept, and again
    # by layer), then the final residual to the unembedding (n_layers), and the logits' input there too
    assert fake.moves == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    fake.moves.clear()
    eng.layer(2, kept[("resid_pre", 2)], 0, 1, last=False)
    assert fake.moves == [2]


@pytest.mark.parametrize("site", ["resid", "heads", "mlp_out", "neurons"])
def test_sweep_visits_each_block_on_its_device_and_equals_one_device(llama4, monkeypatch, site):
    pairs = random_pairs(llama4, batch=3, seq=5, seed=1)
    kw = dict(site=site, positions="all", metric="logit_diff", layers=[0, 2], engine="cone", progress=False,
              neurons=[1, 7] if site == "neurons" else None)
    ref = patch(llama4, pairs, max_memory="1GB", **kw)
    maps: list[RecordingDevices] = []

    def of_model(model):
        maps.append(_fake_map())
        return maps[-1]

    monkeypatch.setattr(devices_mod.BlockDevices, "of_model", classmethod(lambda cls, m: of_model(m)))
    got = patch(llama4, pairs, max_memory={"cuda:0": "1GB", "cuda:1": "1GB"}, **kw)
    np.testing.assert_array_equal(got.effects, ref.effects)  # moves are no-ops on the CPU: identical numbers
    moves = maps[-1].moves
    # base and source runs: blocks 0..3 then the unembedding, each time
    assert moves[:20] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4] * 2
    # every patched pass enters at some block and moves its rows through every later block in order
    rest = moves[20:]
    assert rest and rest[-1] == 4
    runs, cur = [], [rest[0]]
    for m in rest[1:]:
        if m < cur[-1]:
            runs.append(cur)
            cur = [m]
        else:
            cur.append(m)
    runs.append(cur)
    for run in runs:
        blocks = sorted(set(run))
        assert blocks == list(range(blocks[0], 5)), run  # contiguous from the entry block to the unembedding


def test_cache_bytes_split_by_device(llama4):
    eng = ConeEngine.for_model(llama4)
    eng.placement = _fake_map()
    for kind, layers in (("resid_pre", [0, 2]), ("head", [1]), ("mlp", [2, 3]), ("mlp_out", [0]), ("neuron", [3])):
        by_dev = cache_bytes_by_device(eng, kind, layers, 3, 5)
        total = eng.cache_bytes(kind, layers, 3, 5)
        transient = eng.row_bytes(5, 5) * 3
        assert sum(by_dev.values()) == total + transient  # each of the two devices is charged the transient
    # resid_pre at layers [2, 3]: everything lives on cuda:1 except the transient forward on cuda:0
    by_dev = cache_bytes_by_device(eng, "resid_pre", [2, 3], 3, 5)
    assert by_dev["cuda:0"] == eng.row_bytes(5, 5) * 3
    d, kv = eng.d_model, 2 * eng.n_kv * eng.d_head
    per_tok = 3 * d + 2 * kv + 2 * 2 * d  # resid 2,3,4 + k/v of 2,3 + base/source site activations at 2,3
    assert by_dev["cuda:1"] == per_tok * 3 * 5 * 4 + eng.row_bytes(5, 5) * 3


def test_per_device_budget_names_the_device(llama4):
    eng = ConeEngine.for_model(llama4)
    eng.placement = _fake_map()
    need = cache_bytes_by_device(eng, "resid_pre", [2, 3], 3, 5)
    one = 1000
    ok = {"cuda:0": need["cuda:0"] + one, "cuda:1": need["cuda:1"] + one + 500}
    assert pass_budget(eng, ok, "resid_pre", [2, 3], 3, 5, one) == one  # the tighter device decides
    with pytest.raises(ShapeError, match=r"max_memory for device cuda:1 .* too small"):
        pass_budget(eng, {**ok, "cuda:1": need["cuda:1"]}, "resid_pre", [2, 3], 3, 5, one)
    with pytest.raises(ShapeError, match=r"no budget for device\(s\) \['cuda:1'\]"):
        device_budgets({"cuda:0": "1GB"}, ["cuda:0", "cuda:1"])
    assert device_budgets({0: "1GB", 1: 5}, ["cuda:0", "cuda:1"]) == {"cuda:0": 10**9, "cuda:1": 5}
    assert device_budgets("2MB", ["cuda:0", "cuda:1"]) == {"cuda:0": 2 * 10**6, "cuda:1": 2 * 10**6}


def test_patch_refuses_a_budget_too_small_on_one_device(llama4, monkeypatch):
    monkeypatch.setattr(devices_mod.BlockDevices, "of_model", classmethod(lambda cls, m: _fake_map()))
    pairs = random_pairs(llama4, batch=3, seq=5)
    with pytest.raises(ShapeError, match="max_memory for device cuda:1"):
        patch(llama4, pairs, site="resid", layers=[2, 3], engine="cone", progress=False,
              max_memory={"cuda:0": "1GB", "cuda:1": 2000})


# ----------------------------------------------------------------------------------- nnsight backend (no nnsight)
def test_pseudo_logits_give_every_metric_exactly():
    """The 3-number reduction of the nnsight traces reproduces make_metric on the full logits, for every metric."""
    from interp.backends.nnsight_patching import pseudo_logits
    from interp.metrics import METRICS, MetricContext, make_metric

    g = torch.Generator().manual_seed(0)
    n, v = 7, 40
    base, src, patched = (torch.randn(n, v, generator=g, dtype=torch.float64) * 3 for _ in range(3))
    patched[0, 5] = 40.0  # one answer holding all the mass: the rest column is -inf
    r = torch.randint(0, v, (n,), generator=g)
    r2 = (r + 1 + torch.randint(0, v - 1, (n,), generator=g)) % v
    r2[1] = r[1]  # the same answer for both runs
    r[0] = 5
    same = r == r2

    def reduce(x):
        m = x.mean(-1, keepdim=True)
        return torch.cat([x.gather(1, torch.stack([r, r2], 1)) - m, x.logsumexp(-1, keepdim=True) - m], 1)

    zero = torch.zeros(n, dtype=torch.long)
    small = MetricContext(pseudo_logits(reduce(base), same), pseudo_logits(reduce(src), same), zero,
                          torch.where(same, zero, zero + 1))
    centred = MetricContext(base - base.mean(-1, keepdim=True), src - src.mean(-1, keepdim=True), r, r2)
    for metric in METRICS:
        want = make_metric(metric, centred)(patched - patched.mean(-1, keepdim=True))
        got = make_metric(metric, small)(pseudo_logits(reduce(patched), same))
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12, equal_nan=True, msg=metric)


def test_trace_plan_counts_and_budget():
    import types

    from interp.backends.nnsight_patching import plan_traces, row_bytes
    from interp.patching.variants import plan_sweep_variants

    model = tiny_bridge(n_layers=2)
    pairs = random_pairs(model, batch=3, seq=5)
    sp = plan_sweep_variants(model, pairs, site="heads", positions="all", metric="ie", direction="noising",
                             layers=None, neurons=None, max_rows=None)  # 2 layers x 5 pos x 4 heads = 40
    fake = types.SimpleNamespace(cfg=types.SimpleNamespace(**{**vars(model.cfg), "n_key_value_heads": 4}),
                                 remote=False, device=torch.device("cpu"), dtype=torch.float32)
    one = row_bytes(fake.cfg, 5)
    plan = plan_traces(fake, sp, max_rows=None, max_memory=(6 + 1) * 3 * one)  # 6 variants + the source rows
    assert (plan.variants_per_trace, plan.n_traces) == (6, 1 + 7)  # ceil(40 / 6) = 7 chunks + the setup trace
    assert plan.rows == 2 * 3 + 40 * 3 + 7 * 3 and plan.bytes_saved == plan.rows * 3 * 4
    assert plan.n_requests == 0 and "8 traces (local" in str(plan)
    plan = plan_traces(fake, sp, max_rows=12, max_memory="1GB")  # 12 rows = source + 3 variants of 3 prompts
    assert plan.variants_per_trace == 3 and plan.n_traces == 1 + 14
    remote = types.SimpleNamespace(**{**vars(fake), "remote": True})
    assert plan_traces(remote, sp, max_rows=None, max_memory="auto").n_requests == 1  # setup + 1 trace, 1 session
    assert plan_traces(remote, sp, max_rows=6, max_memory="1GB").n_requests == 3  # 1 + 40 traces, 16 per session
    with pytest.raises(ShapeError, match="too small for one trace"):
        plan_traces(fake, sp, max_rows=None, max_memory=2 * 3 * one - 1)
    with pytest.raises(ShapeError, match="smaller than one nnsight trace"):
        plan_traces(fake, sp, max_rows=5, max_memory="1GB")


# ----------------------------------------------------------------------------------- bad input of the scale options
def _cli(argv):
    from interp.cli import main

    return main(argv)


BAD_CLI = [
    (["patch", "-m", "toy-arith", "--backend", "jax", "-o", "x.json"], "unknown backend 'jax'"),
    (["patch", "-m", "toy-arith", "--remote", "-o", "x.json"], "add --backend nnsight"),
    (["circuit", "-m", "toy-arith", "--backend", "nnsight", "-o", "x.json"], "circuit --backend nnsight is not "
                                                                                 "supported"),
    (["neurons", "-m", "toy-arith", "--backend", "nnsight", "-o", "x"], "neurons --backend nnsight is not supported"),
    (["report", "--backend", "nnsight"], "report --backend nnsight is not supported"),
    (["patch", "-m", "toy-arith", "--device-map", "auto", "-o", "x.json"], "TransformerLens-native"),
    (["patch", "-m", "toy-arith", "--device", "cpu", "--device-map", "auto", "-o", "x.json"], "mutually exclusive"),
    (["patch", "-m", "toy-arith", "--n-devices", str(N_CUDA + 1 if N_CUDA else 2), "-o", "x.json"],
     "CUDA GPU"),
    (["patch", "-m", "toy-arith", "--dtype", "fp7", "-o", "x.json"], "unknown dtype"),
    (["patch", "-m", "toy-arith", "--device-map", "{bad}.json", "-o", "x.json"], "does not exist"),
    (["circuit", "-m", "toy-arith", "--device-map", '{"model": "cuda:9"}', "-o", "x.json"], "neither a strategy"),
]


@pytest.mark.parametrize("argv,msg", BAD_CLI, ids=[" ".join(a[:4]) for a, _ in BAD_CLI])
def test_cli_bad_scale_options_exit_2(argv, msg, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _cli(argv) == 2
    err = capsys.readouterr().err
    assert msg in err, err


def test_remote_without_nnsight_names_the_extra(monkeypatch, capsys, tmp_path):
    import interp.backends as backends

    monkeypatch.setattr(backends, "nnsight_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    assert _cli(["patch", "-m", "smollm2-135m", "--backend", "nnsight", "--remote", "-o", "x.json"]) == 2
    assert "pip install 'interp[nnsight]'" in capsys.readouterr().err
    with pytest.raises(InterpError, match=r"interp\[nnsight\]"):
        backends.require_nnsight()
    with pytest.raises(InterpError, match="unknown backend"):
        load_model("smollm2-135m", backend="tl")
    with pytest.raises(DeviceError, match="backend='nnsight'"):
        load_model("smollm2-135m", remote=True)
