"""The neuron section of ``interp report``: which heuristics the important neurons implement, and whether
knocking them out breaks the arithmetic (Nikankin et al., ICLR 2025, §3-§4)."""

from __future__ import annotations

import html
from typing import Any

from interp._html import table
from interp.errors import InterpError
from interp.report.base import ReportContext, Section

__all__ = ["neuron_section"]


def neuron_section(model: Any, ctx: ReportContext) -> Section:
    """Importance -> top neurons -> Algorithm 1 -> knockouts; leaves the `NeuronAnalysis` in
    ``ctx.results["neurons"]``. Models without MLP ``hook_post`` or with multi-token numbers get a short note."""
    from interp.neurons.maps import neuron_map
    from interp.neurons.pipeline import analyze_neurons
    from interp.neurons.results import PromptKnockout

    sec = Section("Neurons as heuristics")
    task = ctx.task()
    quick = bool(getattr(ctx, "quick", False))
    try:
        res = analyze_neurons(
            model, task, n_per_op=ctx.n_per_op, seed=ctx.seed, knockout_prompts=20 if quick else 50,
            n_random=1 if quick else 3, per_layer=[0, 2, 5, 10, 15, 25] if quick else None,
            model_name=ctx.model_name, progress=ctx.progress,
        )
    except InterpError as e:
        sec.paragraphs.append(f"<p>Skipped: {html.escape(str(e))}</p>")
        return sec
    ctx.results["neurons"] = res
    d = res.to_dict()
    k = res.settings["top_k"]
    sec.paragraphs.append(
        f"<p>Each operator's MLP neurons are ranked by attribution patching at the last position (mean + std of the "
        f"indirect effect over {ctx.n_per_op} correct prompts), and the top {k} of each layer are classified with "
        "Algorithm 1 of Nikankin et al. (2025): a neuron implements a heuristic (operand range, modulo, digit "
        "pattern, value, same operand; result range, modulo, pattern, value) when at least "
        f"{100 * res.classification.config['threshold']:.0f}% of its top-activating prompts satisfy it. Result "
        "heuristics (<i>direct</i>) are read from activation x logit-of-the-answer maps, operand heuristics "
        "(<i>indirect</i>) from activation maps.</p>"
    )
    rows = []
    for op, oc in res.classification.ops.items():
        classes = list(oc.by_heuristic().items())[:3]
        rows.append([op, len(oc.neurons), f"{100 * oc.classified_fraction:.0f}%",
                     ", ".join(f"{n} ({len(v)})" for n, v in classes)])
    sec.paragraphs.append(table(rows, ["operator", "neurons", "classified", "largest classes"],
                                caption=f"Top {k} neurons per layer of each operator: how many Algorithm 1 "
                                        "classifies (share implementing at least one heuristic) and the three "
                                        "largest heuristic classes (neurons in each)."))
    pk = d["prompt_knockout"]
    if pk["per_layer"]:
        i = len(pk["per_layer"]) - 1
        sec.paragraphs.append(
            f"<p><b>Knockout.</b> Zeroing each prompt's top {pk['per_layer'][i]} associated heuristic neurons per "
            f"layer leaves accuracy {pk['heuristic_accuracy'][i]:.2f}; zeroing as many random top neurons leaves "
            f"{pk['random_accuracy'][i]:.2f} (mean over operators; 1.0 before ablation).</p>"
        )
    means = res.class_knockout.means()
    if means:
        sec.paragraphs.append(table(
            [[op, f"{r:.2f}", f"{u:.2f}"] for op, (r, u) in means.items()],
            ["operator", "related prompts", "unrelated prompts"],
            caption="Class knockout (a different experiment from the per-prompt knockout above): zero all neurons "
                    "of one heuristic class at once and measure accuracy on the prompts the class is related to "
                    "(e.g. results in its range) and on the other prompts; mean over the classes with at least "
                    f"{res.settings['min_neurons']} neurons. A class that matters lowers the first column more.",
        ))
    sec.figures.append(PromptKnockout.figure(res.prompt_knockout))
    if res.class_knockout.rows:
        sec.figures.append(res.class_knockout.plot())
    sec.figures.append(res.classification.plot())
    for op, oc in list(res.classification.ops.items())[:2]:
        best = max((n for n in oc.neurons if n.classified), key=lambda n: n.importance or 0.0, default=None)
        if best is not None:
            sec.figures.append(neuron_map(model, task, op, best.layer, best.index, heuristics=best.heuristics).plot())
    sec.data = {key: d[key] for key in ("classified_fraction", "classified_fraction_by_operator", "class_knockout",
                                        "prompt_knockout", "seconds")}
    return sec
