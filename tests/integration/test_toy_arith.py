"""The shipped toy-arith: accuracy targets on held-out pairs, report and patch CLI end to end."""

from __future__ import annotations

import json

import pytest
import torch

from interp.cli import main
from interp.models import load_model
from interp.models.toy import OPERATORS, TOY_DIR, _prompt_tensor, read_toy_config

pytestmark = pytest.mark.integration

TARGETS = {"+": 0.95, "-": 0.95, "*": 0.90, "/": 0.90}


@pytest.fixture(scope="module")
def toy():
    return load_model("toy-arith")


def test_held_out_accuracy_meets_targets(toy):
    cfg, _ = read_toy_config(TOY_DIR)
    with torch.inference_mode():
        for op in OPERATORS:
            _, held = cfg.split(op)
            toks, ans = _prompt_tensor(cfg, op, held)
            acc = float((toy(toks)[:, -1].argmax(-1) == ans).float().mean())
            assert acc >= TARGETS[op], (op, acc)


def test_patch_cli_writes_contract_fields(tmp_path):
    out = tmp_path / "p.json"
    assert main(["patch", "--model", "toy-arith", "--task", "arith:+", "--site", "heads", "--positions", "last",
                 "--n-per-op", "10", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    for k in ("model", "task", "site", "metric", "axes", "labels", "effects", "n_prompts", "n_forward_passes",
              "seconds"):
        assert k in d, k
    assert d["axes"] == ["layer", "pos", "head"] and d["site"] == "heads" and d["n_prompts"] == 10
    assert len(d["effects"]) == 4 and len(d["effects"][0]) == 1 and len(d["effects"][0][0]) == 4


def test_cli_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["patch", "--model", "toy-arith", "--task", "arith:+:500-1200", "--number-mode", "single",
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "multi-token mode" in capsys.readouterr().err
    assert main(["patch", "--model", "toy-arith", "--task", "arith:+", "--positions", "9",
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "out of range" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_report_is_self_contained_html(tmp_path):
    out = tmp_path / "r.html"
    from interp.report import accuracy_section, build_report, patching_section

    build_report(load_model("toy-arith"), out, model_name="toy-arith", task_spec="arith:+-", n_per_op=10,
                 progress=False, quick=True, sections=[accuracy_section, patching_section])
    html = out.read_text()
    assert html.count("<script") >= 2 and "plotly" in html.lower()
    assert "src=\"http" not in html  # no CDN: plotly.js is embedded
    assert "Summary." in html and "Accuracy" in html
