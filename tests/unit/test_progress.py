"""Progress lines (interp.progress), the CLI's -v/-q/--threads anywhere, thread choice, log colour bars, reprs."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from interp import progress


def test_stages_print_one_start_and_one_end_line_per_stage_with_times():
    out = io.StringIO()
    st = progress.Stages(2, stream=out)
    with st.stage("first", estimate=12.0):
        pass
    with st.stage("second"):
        pass
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/2] first … (~12 s)"
    assert re.fullmatch(r"\[1/2\] first … \d\.\d s \(total \d\.\d s\)", lines[1])
    assert lines[2] == "[2/2] second …" and lines[3].startswith("[2/2] second … ")
    assert set(st.times) == {"first", "second"}
    quiet = io.StringIO()
    with progress.Stages(1, enabled=False, stream=quiet).stage("x"):
        pass
    assert quiet.getvalue() == ""


def test_off_a_terminal_bars_become_periodic_lines_at_most_every_few_seconds(monkeypatch):
    clock = iter(float(t) for t in range(0, 1000))  # perf_counter advances 1 s per call
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    b = progress.bar(100, desc="patch heads", every=5.0, stream=out)
    assert type(b).__name__ == "_Lines"  # a stream that is not a terminal: no tqdm bar
    for _ in range(20):
        b.update(1)
    b.close()
    lines = out.getvalue().splitlines()
    # 20 updates, 1 s apart: a line every 5 s, plus the closing line
    assert 3 <= len(lines) <= 5, lines
    assert lines[0].startswith("  patch heads: ") and "/100 (" in lines[0]
    assert lines[-1].startswith("  patch heads: 20/100 (20%)")
    assert list(progress.iterate(range(3), enabled=False)) == [0, 1, 2]


def test_fmt_seconds():
    assert progress.fmt_seconds(4.23) == "4.2 s"
    assert progress.fmt_seconds(37.4) == "37 s"
    assert progress.fmt_seconds(185) == "3 min 05 s"


def test_timings_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    assert progress.load_timings() == {}
    progress.save_timings({"report:toy:full:accuracy": 3.14159})
    progress.save_timings({"report:toy:full:patching": 1.0})
    assert progress.load_timings() == {"report:toy:full:accuracy": 3.14, "report:toy:full:patching": 1.0}


def test_cli_accepts_verbose_quiet_and_threads_before_or_after_the_subcommand():
    from interp.cli import build_parser

    p = build_parser()
    a = p.parse_args(["report", "-v", "--threads", "3"])
    assert a.verbose is True and a.threads == 3 and a.command == "report"
    b = p.parse_args(["-q", "--threads", "2", "report"])
    assert b.quiet is True and b.threads == 2
    c = p.parse_args(["report"])
    assert c.threads is None and c.verbose is False


def test_cli_refuses_verbose_with_quiet_and_zero_threads(capsys):
    from interp.cli import main

    assert main(["models", "-v", "-q"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["report", "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err


def test_choose_threads(monkeypatch):
    import torch

    from interp.cli.common import choose_threads

    before = torch.get_num_threads()
    try:
        assert choose_threads(1) == 1
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        n = choose_threads(None)
        assert 1 <= n <= (__import__("os").cpu_count() or 1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        assert choose_threads(None) == 1  # an explicit OMP_NUM_THREADS is left alone
    finally:
        torch.set_num_threads(before)


def test_log_colorbar_ticks_sit_at_signed_log1p_of_labelled_raw_values():
    from interp.plotting import log_colorbar, pick_transform, signed_log1p

    cb = log_colorbar(2.3e7, "ie (log scale)")
    labels = cb["ticktext"]
    assert labels[len(labels) // 2] == "0" and labels[-1] == "1e7" and labels[0] == "−1e7" and "10" in labels
    for v, t in zip(cb["tickvals"], labels):
        raw = 0.0 if t == "0" else float(t.replace("−", "-"))
        assert v == pytest.approx(float(signed_log1p(np.array(raw))))
    assert cb["tickvals"] == sorted(cb["tickvals"])
    assert pick_transform(np.array([0.15, 1.0, 3.0, 2.3e7])) == "log1p"
    assert pick_transform(np.array([0.1, 0.5, -0.3])) == "none"
    assert pick_transform(np.array([0.1, 2.3e7]), "none") == "none"


def test_patch_result_plot_uses_a_log_scale_and_axis_titles_and_repr_is_short():
    from interp.patching.result import PatchResult

    eff = np.array([[0.2, 3.0e6], [15.0, 0.5]])
    r = PatchResult(effects=eff, axes=("layer", "pos"), index={"layer": [0, 1], "pos": [3, 4]},
                    labels={"layer": ["L0", "L1"], "pos": ["op2", "="]}, site="mlps", metric="ie", n_prompts=8)
    fig = r.plot()
    assert fig.layout.xaxis.title.text == "token position" and fig.layout.yaxis.title.text == "layer"
    z = np.array(fig.data[0].z, dtype=float)
    assert z[0, 1] == pytest.approx(np.log1p(3.0e6))  # drawn on the log1p scale
    assert np.array(fig.data[0].customdata, dtype=float)[0, 1] == 3.0e6  # hover shows the raw value
    text = repr(r)
    assert text.startswith("PatchResult(mlps patching, metric ie") and "2 layer x 2 pos" in text
    assert "top: L0 = 3e+06, L1 op2 15, L1 = 0.5" in text and "\n" not in text


def test_neuron_result_repr_names_fields_shapes_and_top3():
    from interp.neurons.results import NeuronImportance

    mean = np.zeros((2, 5))
    mean[1, 3], mean[0, 2], mean[1, 0] = 9.0, 5.0, 2.0
    imp = NeuronImportance(mean=mean, std=np.zeros((2, 5)), method="atp", metric="ie", n_prompts=10, layers=[0, 1])
    text = repr(imp)
    assert text.startswith("NeuronImportance(") and "mean array(2, 5)" in text and "method atp" in text
    assert "top: L1N3 9, L0N2 5, L1N0 2" in text
