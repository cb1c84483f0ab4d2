"""The HTML report in a real browser: every figure is drawn with a nonzero size, the page has its summary and
contents. Needs a Chromium-family browser (``scripts/install_browser.sh``); skipped with that reason without one.

Renders a small real report (toy-arith, accuracy and patching sections on a few prompts) plus a section holding
the circuit diagram, the effect map and the neuron bar charts built from fixed inputs, so every figure type of the
report is drawn once (~15 s).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

pytestmark = pytest.mark.integration

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# appended to a copy of the report: after plotly has drawn, write every figure's drawn size into the DOM
PROBE = """<script>window.addEventListener('load', function () { setTimeout(function () {
  var out = [];
  document.querySelectorAll('.plotly-graph-div').forEach(function (d) {
    var r = d.getBoundingClientRect(); var svg = d.querySelector('svg.main-svg');
    var n = d.querySelectorAll('.point, .heatmaplayer image, .bars path, .scatterlayer path').length;
    out.push({w: r.width, h: r.height, svg: svg ? svg.getBoundingClientRect().width : 0, marks: n});
  });
  var pre = document.createElement('pre'); pre.id = 'figure-sizes'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 1000); });</script>"""


def _browser() -> str | None:
    return next((b for b in map(shutil.which, BROWSERS) if b), None)


def _fixed_section(model, ctx):
    from interp.circuits.circuit import Circuit
    from interp.neurons.results.knockout import ClassKnockout, ClassKnockoutRow
    from interp.report.base import Section

    rng = np.random.default_rng(0)
    scores = (10.0 ** rng.uniform(-1, 7, size=(4, 4))).tolist()  # effects spanning 8 decades, as IE does
    c = Circuit(heads=((3, 1), (2, 0)), mlps=(0, 1, 2, 3), faithfulness=0.93, n_layers=4, n_heads_total=4,
                meta={"head_scores": scores, "mlp_scores": [1e6, 2e5, 30.0, 0.5]})
    rows = tuple(ClassKnockoutRow(op="+", heuristic=f"result range {i}0-{i}9", n_neurons=12, n_prompts=50,
                                  related_accuracy=0.4, unrelated_accuracy=0.9, score_sum=1.0) for i in range(10))
    return Section("Fixed figures", ["<p>figures from fixed inputs</p>"],
                   figures=[c.diagram(), ClassKnockout(rows, 10).plot()])


def test_every_report_figure_is_drawn_with_nonzero_size(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium-family browser on PATH (chromium, google-chrome); install one with "
                    "scripts/install_browser.sh to run the headless render check")
    from interp.models import load_model
    from interp.report import accuracy_section, build_report, patching_section

    model = load_model("toy-arith")
    out = build_report(model, tmp_path / "report.html", model_name="toy-arith", task_spec="arith:+-", n_per_op=4,
                       quick=True, progress=False, sections=[accuracy_section, patching_section, _fixed_section])
    html = out.read_text()
    n_figs = html.count('class="plotly-graph-div"')
    assert n_figs == 2 * 2 + 2  # MLP and head map per operator, diagram, knockout bars
    assert "<h2 id='summary'>Summary</h2>" in html and "<nav class='toc'>" in html
    assert html.count("<caption>") == html.count("<table>")  # every table says what its numbers are
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                          "--window-size=1280,1000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    m = re.search(r"<pre id=\"figure-sizes\">(.*?)</pre>", dom, re.S)
    assert m, "the probe did not run: the page raised an error before 'load' or plotly.js did not load"
    sizes = json.loads(m.group(1).replace("&quot;", '"'))
    assert len(sizes) == n_figs
    for i, s in enumerate(sizes):
        assert s["w"] > 200 and s["h"] > 200 and s["svg"] > 200, f"figure {i} drawn at {s}"
        assert s["marks"] > 0, f"figure {i} has no drawn marks: {s}"
