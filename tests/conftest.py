"""Shared fixtures: tiny deterministic bridges built from configs (no download, no tokenizer needed)."""

from __future__ import annotations

import os

import pytest
import torch


def tiny_bridge(**overrides):
    """A random native bridge in compatibility mode, eval mode."""
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    cfg = dict(d_model=32, d_head=8, n_heads=4, n_layers=3, d_mlp=64, d_vocab=50, n_ctx=12,
               act_fn="gelu", normalization_type="LN", seed=0)
    cfg.update(overrides)
    b = TransformerBridge.boot_native(TransformerBridgeConfig(**cfg))
    b.enable_compatibility_mode()
    b.eval()
    return b


def random_pairs(model, *, batch=6, seq=6, seed=0):
    from interp.tasks.base import PromptPairs

    g = torch.Generator().manual_seed(seed)
    v = int(model.cfg.d_vocab)
    clean = torch.randint(0, v, (batch, seq), generator=g)
    corrupt = torch.randint(0, v, (batch, seq), generator=g)
    r = torch.randint(0, v, (batch,), generator=g)
    r2 = (r + 1 + torch.randint(0, v - 1, (batch,), generator=g)) % v
    return PromptPairs(clean, corrupt, r, r2, tuple(f"p{i}" for i in range(seq)), "random")


def _xdist_workers() -> int:
    """How many pytest-xdist workers run the tests (0 in a single process); set in each worker's environment."""
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)


def pytest_configure(config):
    """Under pytest-xdist (``-n auto`` in pyproject) each worker gets its share of the cores for torch, and so do
    the notebook kernels it starts (OMP_NUM_THREADS is inherited): 2 workers on 2 cores do not oversubscribe."""
    workers = _xdist_workers()
    if workers > 1:
        share = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        torch.set_num_threads(share)


def pytest_collection_finish(session):
    """The imported libraries (torch, TransformerLens, transformers: ~400k objects) live as long as the test process:
    freeze them out of the cyclic garbage collector's scans, as the `interp` command does
    (`interp.cli.common.freeze_long_lived`); the unit tests spent ~5 s per worker in the collector before, ~2.6 s
    after."""
    from interp.cli.common import freeze_long_lived

    freeze_long_lived()


@pytest.hookimpl(optionalhook=True)  # defined by pytest-xdist; unused (and unknown) without it
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist each integration module is one unit of work, kept on one worker, so its module-scoped
    fixtures (a loaded SmolLM2, a concept-neuron scan) are set up once, not once per worker; notebooks (no shared
    fixtures) and unit tests are spread one test at a time. (xdist's own ``--dist loadgroup`` does this with marks,
    but xdist 3.8 cannot rename pytest 9's node ids, so the marks are ignored there.)"""
    from xdist.scheduler import LoadScopeScheduling

    if config.getvalue("dist") != "load":  # an explicit --dist (loadfile, worksteal, ...) is the user's choice
        return None

    class IntegrationModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if "integration/" in path and "notebook" not in path else nodeid

    return IntegrationModules(config, log)


def pytest_collection_modifyitems(config, items):
    """One process: fast unit tests first, then tests on built-in models (integration), then notebooks, so a failing
    unit test is reported in seconds. Several xdist workers: the longest first (notebooks, then integration, then
    unit), which keeps both workers busy to the end."""

    def rank(item) -> int:
        path = str(item.fspath)
        if "notebook" in path:
            return 2
        return 1 if "/integration/" in path or item.get_closest_marker("integration") else 0

    # stable: the order within each group is kept
    items.sort(key=(lambda it: -rank(it)) if _xdist_workers() > 1 else rank)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny():
    return tiny_bridge()


class CalculatorModel:
    """A test double for tasks: answers every ``a op b =`` prompt correctly (optionally wrong for one operator).

    It decodes the tokens and, at each position, puts the largest logit on the correct next token of the answer
    (by teacher forcing), so task logic (grids, correctness, pairs) can be tested against known answers.
    """

    def __init__(self, tokenizer, *, wrong_ops=(), d_vocab=None):
        import types

        self.tokenizer = tokenizer
        self.wrong_ops = set(wrong_ops)
        self.cfg = types.SimpleNamespace(d_vocab=d_vocab or len(tokenizer), n_layers=1, model_name="calculator")

    def __call__(self, tokens):
        import re

        from interp.tasks.arith import apply_op

        b, s = tokens.shape
        out = torch.zeros(b, s, self.cfg.d_vocab)
        for i in range(b):
            for t in range(s):
                text = self.tokenizer.decode(tokens[i, : t + 1].tolist(), skip_special_tokens=True)
                m = re.search(r"(\d+)([-+*/])(\d+)=(\d*)$", text.replace(" ", ""))
                if not m:
                    continue
                a, op, bb, partial = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
                res = apply_op(a, op, bb) + (1 if op in self.wrong_ops else 0)
                full = str(res)
                if not full.startswith(partial) or full == partial:
                    continue
                ids = self.tokenizer(full[len(partial):], add_special_tokens=False)["input_ids"]
                out[i, t, ids[0]] = 10.0
        return out


@pytest.fixture(scope="session")
def toy_tokenizer(tmp_path_factory):
    from interp.models.toy import build_toy_tokenizer

    return build_toy_tokenizer(200, tmp_path_factory.mktemp("tok3"))


@pytest.fixture(scope="session")
def digit_tokenizer(tmp_path_factory):
    from interp.models.toy import build_toy_tokenizer

    return build_toy_tokenizer(10, tmp_path_factory.mktemp("tok1"), digits_per_token=1)
