"""Model loading: built-ins, bad names, no network, toy training determinism and round trip."""

from __future__ import annotations

import time

import pytest
import torch

from interp.errors import ModelLoadError, UnknownNameError
from interp.models import list_models, load_model
from interp.models.toy import ToyArithConfig, legal_pairs, load_toy, save_toy, split_pairs, train_toy


def test_unknown_builtin_lists_names_and_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean: toy-arith"):
        load_model("toy-arit")


def test_hub_name_without_network_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.time()
    with pytest.raises(ModelLoadError, match="offline options.*toy-arith"):
        load_model("someorg/some-model")
    assert time.time() - t < 5


def test_missing_paths(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nope.gguf"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match="not a .gguf"):
        load_model(str(tmp_path / "x.txt"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_list_models_names_builtins():
    names = {m["name"] for m in list_models()}
    assert names == {"toy-arith", "smollm2-135m"}


def test_legal_pairs_and_split_are_deterministic():
    pairs = legal_pairs("*", 0, 99, 999)
    assert all(a * b <= 999 for a, b in pairs) and (99, 10) in pairs and (99, 11) not in pairs
    tr1, ho1 = split_pairs(pairs, 0.2, seed=3)
    tr2, ho2 = split_pairs(pairs, 0.2, seed=3)
    assert tr1 == tr2 and ho1 == ho2 and not set(tr1) & set(ho1) and len(ho1) == round(0.2 * len(pairs))


def test_training_is_deterministic_and_round_trips(tmp_path):
    cfg = ToyArithConfig(n_numbers=60, operand_max=9, n_layers=1, d_model=32, n_heads=2, d_mlp=64, steps=30,
                         batch_size=32)
    a = train_toy(cfg, progress=False, checkpoint_dir=tmp_path / "ck", checkpoint_every=15)
    b = train_toy(cfg, progress=False, device="cpu")  # the explicit device path: same batches, same weights
    for k in a.state_dict:
        torch.testing.assert_close(a.state_dict[k], b.state_dict[k], atol=0, rtol=0)
    assert len(a.checkpoints) == 2
    save_toy(cfg, a.state_dict, tmp_path / "m")
    bridge = load_toy(tmp_path / "m")
    toks = torch.tensor([[cfg.token_id("<bos>"), 3, cfg.token_id("+"), 4, cfg.token_id("=")]])
    native_logits = __import__("interp.models.toy", fromlist=["_native_model"])._native_model(cfg)
    native_logits.load_state_dict(a.state_dict)
    native_logits.eval()
    with torch.no_grad():
        ref = native_logits(toks)[:, -1].log_softmax(-1)
        got = bridge(toks)[:, -1].log_softmax(-1)
    # compat mode folds LN and centres weights: log-probs are preserved
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    assert bridge.to_str_tokens("3+4=") == ["<bos>", "3", "+", "4", "="]
    # a checkpoint directory is itself a loadable model
    assert load_model(a.checkpoints[0]).cfg.n_layers == 1
