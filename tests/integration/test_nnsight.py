"""The nnsight backend equals the bridge's cone engine on SmolLM2, for every site, metric and direction.

The bridge runs in compatibility mode (LayerNorm folded, unembedding centred); nnsight runs the raw Hugging Face
weights. Effects are invariant under those transforms, so they are compared directly (relative to the sweep's scale:
the largest effect or the base-to-source distance); raw activations are not compared. Skipped without nnsight
(``pip install 'interp[nnsight]'``).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("nnsight", reason="the nnsight backend is optional: pip install 'interp[nnsight]'")

from interp.metrics import METRICS  # noqa: E402
from interp.patching import patch  # noqa: E402

pytestmark = pytest.mark.integration
RTOL = 1e-4


@pytest.fixture(scope="module")
def models():
    import torch

    from interp.models import load_model

    torch.set_num_threads(1)
    bridge = load_model("smollm2-135m")
    nn = load_model("smollm2-135m", backend="nnsight")
    return bridge, nn


@pytest.fixture(scope="module")
def pairs(models):
    from interp.tasks import parse_task

    return parse_task("ioi:4").pairs(models[0]).select([0, 1])


def _rel(a, b) -> float:
    scale = max(float(np.abs(a.effects).max()), abs(a.baseline["source"] - a.baseline["base"]), 1e-12)
    return float(np.abs(a.effects - b.effects).max()) / scale


SITES = {
    "resid": dict(layers=[0, 15, 29]),
    "attn_out": dict(layers=[0, 29]),
    "mlp_out": dict(layers=[0, 29]),
    "heads": dict(layers=[29]),
    "mlps": dict(layers=[0, 29]),
    "neurons": dict(layers=[0, 29], neurons=[3, 100, 1500]),
}


@pytest.mark.parametrize("site", list(SITES))
def test_every_site_equals_the_bridge(models, pairs, site):
    bridge, nn = models
    kw = dict(site=site, positions=[0, pairs.seq_len - 3, pairs.seq_len - 1], metric="ie", progress=False,
              **SITES[site])
    ref, got = patch(bridge, pairs, **kw), patch(nn, pairs, **kw)
    assert got.axes == ref.axes and got.index == ref.index and got.labels == ref.labels
    assert _rel(ref, got) <= RTOL, f"{site}: relative difference {_rel(ref, got):.2e}"
    assert got.meta["engine"] == "nnsight" and got.meta["plan"]["n_traces"] == got.n_forward_passes
    assert got.baseline == pytest.approx(ref.baseline, rel=1e-4, abs=1e-6)
    # the sweep has real effects (single neurons move the metric by ~1e-4 on these prompts, the rest by > 1e-3)
    assert float(np.abs(ref.effects - ref.baseline["base"]).max()) > (1e-5 if site == "neurons" else 1e-3)


@pytest.mark.parametrize("metric,direction", [(m, "noising") for m in METRICS] + [("ie", "denoising"),
                                                                                   ("logit_diff", "denoising")])
def test_every_metric_and_direction(models, pairs, metric, direction):
    bridge, nn = models
    kw = dict(site="resid", positions="last", metric=metric, direction=direction, layers=[0, 12, 24], progress=False)
    ref, got = patch(bridge, pairs, **kw), patch(nn, pairs, **kw)
    assert _rel(ref, got) <= RTOL, f"{metric} {direction}: relative difference {_rel(ref, got):.2e}"


def test_per_layer_neurons_and_small_chunks(models, pairs):
    """``neurons={layer: [...]}`` and a budget that forces one variant per trace give the same effects."""
    bridge, nn = models
    kw = dict(site="neurons", positions="last", metric="logit_diff", neurons={2: [5, 9], 27: [1, 700]},
              progress=False)
    ref = patch(bridge, pairs, **kw)
    got = patch(nn, pairs, max_rows=2 * pairs.n, **kw)  # the source rows plus one variant per trace
    assert got.meta["plan"]["variants_per_trace"] == 1 and got.n_forward_passes == 1 + 4
    assert got.axes == ("layer", "pos", "rank") and got.meta["neurons"] == ref.meta["neurons"]
    assert _rel(ref, got) <= RTOL


def test_remote_path_simulated_locally(models, pairs):
    """``remote="local"``: nnsight serialises the session of traces as for NDIF and runs it here; same numbers."""
    from interp.models import load_model

    sim = load_model("smollm2-135m", backend="nnsight", remote="local")
    kw = dict(site="mlp_out", positions="last", metric="ie", layers=[28, 29], progress=False)
    ref = patch(models[0], pairs, **kw)
    got = patch(sim, pairs, max_rows=2 * pairs.n, **kw)  # one variant per trace: 3 traces in one session
    assert got.meta["remote"] == "local"
    assert got.meta["plan"]["n_traces"] == 3 and got.meta["plan"]["n_requests"] == 1
    assert _rel(ref, got) <= RTOL


@pytest.mark.parametrize("key,host,msg", [
    ("", "", "needs an API key"),
    ("dummy-key", "https://ndif.invalid", "NDIF at https://ndif.invalid is not reachable"),
])
def test_remote_fails_fast_naming_local_options(monkeypatch, key, host, msg):
    from interp.backends.nnsight_model import RemoteUnavailable
    from interp.models import load_model

    for name, value in (("NDIF_API_KEY", key), ("NDIF_HOST", host)):
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    if not key:
        from nnsight.schema.config import CONFIG

        monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    t0 = time.time()
    with pytest.raises(RemoteUnavailable, match=msg) as info:
        load_model("meta-llama/Meta-Llama-3-8B", backend="nnsight", remote=True)
    assert time.time() - t0 < 15
    assert "--backend nnsight and no --remote" in str(info.value) and "--device-map" in str(info.value)


def test_cli_patch_on_nnsight(models, tmp_path, monkeypatch, capsys):
    """``interp patch --backend nnsight`` writes the bridge's result; ``--remote`` without NDIF exits 2 fast."""
    from interp.cli import main
    from interp.patching import PatchResult
    from interp.tasks import parse_task

    monkeypatch.chdir(tmp_path)
    argv = ["patch", "-m", "smollm2-135m", "-t", "ioi:2", "--site", "resid", "--positions", "last", "--metric",
            "logit_diff", "--backend", "nnsight"]
    assert main([*argv, "-o", "nn.json"]) == 0
    assert "nnsight plan: 30 patch variants" in capsys.readouterr().err  # counted before the sweep ran
    got = PatchResult.load("nn.json")
    ref = patch(models[0], parse_task("ioi:2").pairs(models[0]), site="resid", positions="last",
                metric="logit_diff", progress=False)
    assert got.meta["backend"] == "nnsight" and got.n_prompts == ref.n_prompts
    assert _rel(ref, got) <= RTOL
    monkeypatch.setenv("NDIF_API_KEY", os.environ.get("NDIF_API_KEY", "dummy"))
    monkeypatch.setenv("NDIF_HOST", "https://ndif.invalid")
    capsys.readouterr()
    t0 = time.time()
    assert main([*argv, "--remote", "-o", "r.json"]) == 2
    assert time.time() - t0 < 15
    assert "not reachable" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("site,metric,kw", [("heads", "ie", {}), ("neurons", "prob_norm", {"neurons": [3, 100]}),
                                            ("resid", "logit_diff", {})])
def test_attribution_equals_the_bridge(models, pairs, site, metric, kw):
    """AtP scores from nnsight's backward trace equal the bridge's gradient cache (same first-order estimate)."""
    from interp.patching.attribution import attribution_patch

    bridge, nn = models
    args = dict(site=site, positions="all", metric=metric, layers=[0, 14, 29], **kw)
    ref, got = attribution_patch(bridge, pairs, **args), attribution_patch(nn, pairs, **args)
    assert got.axes == ref.axes and got.meta["backend"] == "nnsight"
    scale = max(float(np.abs(ref.effects - ref.baseline["base"]).max()), 1e-12)
    assert float(np.abs(ref.effects - got.effects).max()) / scale <= RTOL
    assert scale > 1e-3


def test_mean_cache_and_faithfulness_equal_the_bridge(models, pairs):
    """Zero / mean / resample ablation outside a circuit (heads, MLPs, single neurons) and Eq. 2 faithfulness."""
    from interp.circuits import faithfulness, mean_cache
    from interp.tasks import parse_task

    bridge, nn = models
    task = parse_task("ioi:4")
    mb, mn = mean_cache(bridge, task), mean_cache(nn, task)
    assert mb.keys() == mn.keys()
    for name in mb:
        scale = float(mb[name].abs().max())
        assert float((mb[name] - mn[name]).abs().max()) <= 1e-4 * max(scale, 1.0), name
    circuit = dict(keep_heads=[(l, h) for l in range(0, 30, 3) for h in range(0, 9, 2)], keep_mlps=[1, 5, 20, 29],
                   keep_neurons={7: [1, 2, 3, 500]})
    for ablation, kw_b, kw_n in [("zero", {}, {}), ("mean", {"mean": mb}, {"mean": mn}),
                                 ("resample", {"resample_tokens": pairs.corrupt_tokens},
                                  {"resample_tokens": pairs.corrupt_tokens})]:
        ref = faithfulness(bridge, pairs.clean_tokens, pairs.clean_answers, ablation=ablation, **circuit, **kw_b)
        got = faithfulness(nn, pairs.clean_tokens, pairs.clean_answers, ablation=ablation, **circuit, **kw_n)
        for a, b in ((ref.nl_circuit, got.nl_circuit), (ref.nl_empty, got.nl_empty), (ref.nl_full, got.nl_full)):
            np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
        assert got.faithfulness == pytest.approx(ref.faithfulness, abs=1e-4)
        assert float(np.abs(ref.nl_circuit - ref.nl_full).max()) > 1e-2  # the ablation changes the output
