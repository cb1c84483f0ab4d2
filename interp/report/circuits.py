"""The ``interp report`` section on circuits: effect maps, faithfulness curves, diagrams, ablation sensitivity."""

from __future__ import annotations

from typing import Any

from interp._html import esc, table
from interp.report.base import ReportContext, Section

__all__ = ["circuit_section"]


def circuit_section(model: Any, ctx: ReportContext) -> Section:
    """One circuit per operator: heads ranked by seed-averaged exact patching, all MLPs kept, mean ablation.

    Leaves ``ctx.results["circuits"] = {operator: Circuit}`` for later sections.
    """
    import torch

    from interp.circuits.ablation import ABLATIONS, mean_cache
    from interp.circuits.effects import DEFAULT_SEEDS, component_effects
    from interp.circuits.plots import plot_curves
    from interp.circuits.search import find_circuit

    task = ctx.task()
    seeds = DEFAULT_SEEDS[:1] if ctx.quick else DEFAULT_SEEDS
    n = min(ctx.n_per_op, 20) if ctx.quick else ctx.n_per_op
    sec = Section("Circuits: the few heads (plus all MLPs) that reproduce the answer")
    sec.paragraphs.append(
        "Following Nikankin et al. (2025, §A.1), every head and MLP is patched at every position on discovery "
        f"prompts, averaged over corrupt-sampling seeds {list(seeds)}, and heads are ranked by their effect "
        "averaged over the positions after BOS. Heads are then added in rank order, with every MLP kept, and "
        "<i>faithfulness</i> F = mean over prompts of (NL(c) − NL(∅)) / (NL(M) − NL(∅)) is measured on "
        f"{n} held-out evaluation prompts per operator, with everything outside the circuit replaced by its mean "
        "over all strings <code>x op y=</code> of every operator (NL = correct-answer logit / top logit). The "
        "circuit is the smallest prefix reaching F ≥ 0.9. Because F depends on what replaces the removed "
        "components, the chosen circuit is also scored under zero and resample ablation."
    )
    mean = ctx.results.get("mean_cache")  # from the accuracy section's pass over the same grid (`grid_pass`)
    if mean is None:
        with torch.inference_mode():
            mean = mean_cache(model, task)
    circuits, rows = {}, []
    for op in task.operators:
        eff = component_effects(model, task, operator=op, seeds=seeds, n_per_op=n, progress=ctx.progress,
                                model_name=ctx.model_name)
        c = find_circuit(model, task, operator=op, effects=eff, mean=mean, n_per_op=n, n_eval=n, seeds=seeds,
                         model_name=ctx.model_name)
        circuits[op] = c
        sec.figures.append(eff.plot(title=f"Operator {op}: position-averaged IE of each head and MLP"))
        sec.figures.append(c.diagram())
        rows.append([op, len(c.heads), ", ".join(f"L{l}H{h}" for l, h in c.heads) or "-",
                     f"{c.faithfulness:.3f}", *[f"{c.sensitivity.get(a, float('nan')):.3f}" for a in ABLATIONS]])
    ctx.results["circuits"] = circuits
    sec.figures.insert(0, plot_curves(circuits, title="Faithfulness against the number of heads (all MLPs kept)"))
    sec.paragraphs.append(table(rows, ["operator", "heads", "circuit heads", "F (mean abl.)",
                                        *[f"F under {a}" for a in ABLATIONS]],
                                caption="One circuit per operator (all MLPs kept): its heads, and its faithfulness F "
                                        f"(Eq. 2; 1 = the full model, 0 = everything ablated) on {n} held-out "
                                        "prompts per operator under the ablation it was chosen with (mean) and "
                                        "under each ablation."))
    spread = {op: max(c.sensitivity.values()) - min(c.sensitivity.values()) for op, c in circuits.items()}
    worst = max(spread, key=spread.get) if spread else None
    if worst is not None:
        sec.paragraphs.append(
            f"<p><b>Ablation sensitivity.</b> The same circuit's faithfulness changes by up to "
            f"{spread[worst]:.2f} between ablations (operator {esc(worst)}): a faithfulness number means little "
            "without the ablation it was measured under.</p>"
        )
    sec.data = {op: c.to_dict() for op, c in circuits.items()}
    return sec
