"""The ``interp report`` section for your own task (``--task file:PATH.jsonl``): how often the model gives your
answers, which heads and MLPs carry them (exact patching), and the circuit (`find_circuit`, pooled over groups).

The arithmetic sections (accuracy per operator, the neuron heuristics over a full operand grid) do not apply to a
task of clean/corrupt pairs; this section replaces them (`interp.report.build` picks it for ``file:`` specs).
"""

from __future__ import annotations

from typing import Any

from interp._html import esc, table
from interp.report.base import ReportContext, Section

__all__ = ["custom_section"]


def custom_section(model: Any, ctx: ReportContext) -> Section:
    """Answer accuracy on the pairs, head and MLP patching maps, and the circuit of a user-supplied task.

    Leaves ``ctx.results["custom"] = {"pairs", "heads", "mlps", "circuit"}`` for later sections.
    """
    import torch

    from interp.circuits.effects import DEFAULT_SEEDS
    from interp.circuits.search import find_circuit
    from interp.errors import InterpError
    from interp.patching import patch
    from interp.tasks.base import run_last_logits

    task = ctx.task()
    pairs = task.pairs(model, n_per_op=ctx.n_per_op)
    sec = Section(f"Your task: {esc(task.name)}")
    with torch.inference_mode():
        top_clean = run_last_logits(model, pairs.clean_tokens).argmax(-1)
        top_corrupt = run_last_logits(model, pairs.corrupt_tokens).argmax(-1)
    acc_c = float((top_clean == pairs.clean_answers).float().mean())
    acc_k = float((top_corrupt == pairs.corrupt_answers).float().mean())
    groups = sorted(set(pairs.groups)) if pairs.groups else ["all"]
    sec.paragraphs.append(
        f"<p>{pairs.n} clean/corrupt pairs of {pairs.seq_len} tokens (groups: {esc(', '.join(groups))}). The model's "
        f"top-1 token is the given answer on {100 * acc_c:.0f}% of the clean prompts and on {100 * acc_k:.0f}% of "
        "the corrupt prompts. Patching below is noising: run the clean prompt, patch in the corrupt prompt's "
        "activation, effect = IE (Eq. 1 of Nikankin et al.).</p>")
    heads = patch(model, pairs, site="heads", positions="all", progress=ctx.progress, model_name=ctx.model_name)
    mlps = patch(model, pairs, site="mlps", positions="all", progress=ctx.progress, model_name=ctx.model_name)
    sec.figures += [heads.plot(), mlps.plot()]
    sec.paragraphs.append(table([[label, f"{v:+.4f}"] for label, v in heads.top(5)], ["head @ position", "IE"]))
    circuit = None
    seeds = DEFAULT_SEEDS[:1] if ctx.quick else DEFAULT_SEEDS
    try:
        circuit = find_circuit(model, task, n_per_op=ctx.n_per_op, n_eval=ctx.n_per_op, seeds=seeds,
                               model_name=ctx.model_name)
    except InterpError as e:  # e.g. too few pairs for a held-out evaluation split
        sec.paragraphs.append(f"<p><b>No circuit:</b> {esc(str(e))}</p>")
    if circuit is not None:
        sec.figures.append(circuit.diagram())
        names = ", ".join(f"L{l}H{h}" for l, h in circuit.heads) or "-"
        sens = ", ".join(f"{a} {v:.3f}" for a, v in circuit.sensitivity.items())
        sec.paragraphs.append(
            f"<p><b>Circuit</b> (heads ranked on the discovery half of the pairs, faithfulness on the evaluation "
            f"half, everything else mean-ablated over the task's reference prompts): {len(circuit.heads)} heads "
            f"({esc(names)}) with all MLPs, faithfulness {circuit.faithfulness:.3f} (target {circuit.target}); "
            f"under other ablations: {esc(sens)}.</p>")
    ctx.results["custom"] = {"pairs": pairs, "heads": heads, "mlps": mlps, "circuit": circuit}
    return sec
