"""Any GGUF file as a bridge (`interp.models.smollm.ensure_gguf_hf_dir`, `load_gguf`), on a tiny Llama GGUF written
here the way llama.cpp's converter writes one: grouped-query attention, q/k rows permuted for llama.cpp's rotary
layout, a byte-level BPE vocabulary with merges and a control token, an untied unembedding.

The de-quantized weights must equal the ones written (q/k permutation undone), the cache directory is named by the
file's hash and reused, and the booted bridge's log-probabilities equal those of a transformers Llama built from
the same weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")

from interp.models import smollm  # noqa: E402

N_HEAD, N_KV, D, LAYERS, FFN = 4, 2, 16, 2, 32


def _byte_alphabet() -> list[str]:
    """GPT-2's byte -> printable character table: the base vocabulary of byte-level BPE, in byte order."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order for rotary embeddings (convert_hf_to_gguf.py's ``permute``)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_llama_gguf(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a 2-layer Llama GGUF (float32 tensors); returns its weights under transformers' names."""
    tokens = _byte_alphabet() + ["Ġt", "he", "Ġthe", "<|endoftext|>"]
    v, hd = len(tokens), D // N_HEAD
    g = np.random.default_rng(seed)

    def f(*shape: int) -> np.ndarray:
        return (g.standard_normal(shape) * 0.3).astype(np.float32)

    hf = {"model.embed_tokens.weight": f(v, D), "model.norm.weight": 1 + f(D), "lm_head.weight": f(v, D)}
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(64)
    w.add_embedding_length(D)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hd)
    w.add_vocab_size(v)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([1] * (v - 1) + [3])  # normal tokens, one control token
    w.add_token_merges(["Ġ t", "h e", "Ġt he"])
    w.add_bos_token_id(v - 1)
    w.add_eos_token_id(v - 1)
    w.add_tensor("token_embd.weight", hf["model.embed_tokens.weight"])
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        layer = {"input_layernorm": ("attn_norm", 1 + f(D)), "post_attention_layernorm": ("ffn_norm", 1 + f(D)),
                 "self_attn.q_proj": ("attn_q", f(N_HEAD * hd, D)), "self_attn.k_proj": ("attn_k", f(N_KV * hd, D)),
                 "self_attn.v_proj": ("attn_v", f(N_KV * hd, D)),
                 "self_attn.o_proj": ("attn_output", f(D, N_HEAD * hd)),
                 "mlp.gate_proj": ("ffn_gate", f(FFN, D)), "mlp.up_proj": ("ffn_up", f(FFN, D)),
                 "mlp.down_proj": ("ffn_down", f(D, FFN))}
        for name, (gname, arr) in layer.items():
            hf[p + name + ".weight"] = arr
            if gname in ("attn_q", "attn_k"):
                arr = _llama_cpp_permute(arr, N_HEAD if gname == "attn_q" else N_KV)
            w.add_tensor(f"blk.{i}.{gname}.weight", arr)
    w.add_tensor("output_norm.weight", hf["model.norm.weight"])
    w.add_tensor("output.weight", hf["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return hf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    d = tmp_path_factory.mktemp("gguf")
    hf = write_tiny_llama_gguf(d / "tiny-llama.gguf")
    return d / "tiny-llama.gguf", d / "cache", hf


def test_generic_gguf_converts_to_the_written_weights_once(tiny_gguf):
    from safetensors.torch import load_file

    path, cache, hf = tiny_gguf
    out = smollm.ensure_gguf_hf_dir(path, cache_dir=cache, progress=False)
    assert out.parent == cache / "gguf" and out.name.startswith("tiny-llama-")  # <stem>-<10 hex digits of the hash>
    assert len(out.name) == len("tiny-llama-") + 10
    ours = load_file(str(out / "model.safetensors"))
    assert set(ours) == set(hf)
    for k, v in hf.items():  # float32 in, float32 out: bit-identical, with llama.cpp's q/k row order undone
        assert torch.equal(ours[k], torch.from_numpy(v)), k
    with mock.patch.object(smollm, "_convert_gguf", side_effect=AssertionError("converted twice")):
        assert smollm.ensure_gguf_hf_dir(path, cache_dir=cache, progress=False) == out  # the cached directory


def test_generic_gguf_bridge_equals_transformers_on_the_same_weights(tiny_gguf):
    from transformers import LlamaConfig, LlamaForCausalLM

    path, cache, hf = tiny_gguf
    bridge = smollm.load_gguf(path, cache_dir=cache)
    assert (bridge.cfg.n_layers, bridge.cfg.n_heads, bridge.cfg.n_key_value_heads) == (LAYERS, N_HEAD, N_KV)
    assert bridge.tokenizer.tokenize(" the the") == ["Ġthe", "Ġthe"]  # the file's merges, byte-level
    cfg = LlamaConfig(vocab_size=len(hf["lm_head.weight"]), hidden_size=D, intermediate_size=FFN,
                      num_hidden_layers=LAYERS, num_attention_heads=N_HEAD, num_key_value_heads=N_KV,
                      max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    ref = LlamaForCausalLM(cfg).eval()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in hf.items()}, strict=True)
    ids = torch.tensor([[259, 256, 258, 33, 70, 258, 100, 5]])
    with torch.no_grad():
        want = torch.log_softmax(ref(ids).logits.double(), -1)
        got = torch.log_softmax(bridge(ids, return_type="logits").double(), -1)
    assert float((want - got).abs().max()) <= 1e-4  # compatibility mode folds norms and centres the unembedding


def _child(code: str, cache: Path) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen([sys.executable, "-c", code], cwd=root, env={**os.environ,
                            "INTERP_CACHE": str(cache), "PYTHONPATH": str(root)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_first_load_waits_for_another_process_building_the_same_model(tmp_path):
    """Concurrent first loads of smollm2-135m raced: one process deleted the extracted GGUF another was converting
    (2 of 3 simultaneous loads failed with FileNotFoundError). The build now holds a lock: a second process waits
    for it (bounded, naming the lock file) and then uses the finished model instead of building again."""
    cache = tmp_path / "cache"
    lock = smollm._lock_path(cache, smollm.SMOLLM2_DIR_NAME)
    with smollm._build_lock(lock, "test"):
        child = _child("import interp.models.smollm as s; s._BUILD_WAIT_S = 1.0; s.ensure_smollm2_hf_dir()", cache)
        _, err = child.communicate(timeout=120)
    assert child.returncode != 0
    assert "another process has been building SmolLM2-135M-Instruct" in err and str(lock) in err
    assert not (cache / "downloads").exists()  # it waited instead of starting a download of its own
    # waiting ends when the holder releases the lock
    with smollm._build_lock(lock, "test"):
        child = _child("import time, interp.models.smollm as s\n"
                       "with s._build_lock(s._lock_path(s.cache_root(), s.SMOLLM2_DIR_NAME), 'x', timeout=60):\n"
                       "    print('acquired')", cache)
        time.sleep(3.0)
        assert child.poll() is None  # still waiting while we hold the lock
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0 and out.strip() == "acquired" and "waiting for another process" in err
