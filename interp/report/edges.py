"""The ``interp report`` section on edge circuits (opt-in: ``interp report --with edges``)."""

from __future__ import annotations

from typing import Any

from interp._html import table

__all__ = ["edges_section"]


def edges_section(model: Any, ctx: Any) -> Any:
    """EAP and EAP-IG edge scores on the report's task (first operator), MIB's faithfulness curve and CPR/CMD on
    held-out pairs, and the EAP-IG circuit at 5% of the edges. Leaves ``ctx.results["edges"]``."""
    from interp.circuits.edges import EdgeEvaluator, Unsupported, edge_scores, random_curve
    from interp.circuits.edges.plots import plot_mib_curve
    from interp.report.base import Section

    sec = Section("Edge circuits: which sender → receiver connections carry the answer")
    task = ctx.task()
    ops = getattr(task, "operators", None)
    if ops:
        from interp.tasks import parse_task

        task = parse_task(f"arith:{ops[0]}", **ctx.task_overrides)
    n = min(ctx.n_per_op, 16) if ctx.quick else min(ctx.n_per_op, 32)
    try:
        disc = task.pairs(model, n_per_op=n, split="discovery")
        held = task.pairs(model, n_per_op=n, split="evaluation")
        scores = {m: edge_scores(model, disc, m, ig_steps=5) for m in ("eap", "eap-ig-inputs")}
        ev = EdgeEvaluator(model, held)
    except Unsupported as e:
        sec.paragraphs.append(f"<p>Edge circuits are not available for this model: {e}</p>")
        return sec
    g = scores["eap"].graph
    sec.paragraphs.append(
        f"<p>The model's edge graph has {g.n_edges} edges ({g.describe()}): senders (input, heads, MLPs) into "
        "receivers (each head's query, key and value input, each MLP, the logits). Edges are scored by EAP and "
        "EAP-IG (5 steps) on discovery pairs and evaluated on held-out pairs with every edge outside the circuit "
        "receiving the corrupt prompt's sender output; CPR (area under faithfulness, higher is better) and CMD "
        "(area under |1 − f|, lower is better) over edge budgets 0.1–100% as in MIB.</p>")
    mib = {m: ev.mib_scores(s) for m, s in scores.items()}
    curves = {m: r["absolute"] for m, r in mib.items()}
    curves["random"] = random_curve(ev, draws=3 if ctx.quick else 5)
    rows = [[m, f"{r['cpr']:.3f}", f"{r['cmd']:.3f}"] for m, r in mib.items()]
    rows.append(["random", f"{curves['random']['cpr']:.3f}", f"{curves['random']['cmd']:.3f}"])
    sec.paragraphs.append(table(rows, ["scores", "CPR", "CMD"],
                                caption="Edge scores compared on held-out pairs, as MIB reports them: CPR (area under "
                                        "the faithfulness curve of the signed ranking, the edges that help most "
                                        "first; higher is better) and CMD (area under |1 − f| of the |score| "
                                        "ranking; lower is better); random = edges in random order."))
    sec.figures.append(plot_mib_curve(curves, title="Faithfulness by edge budget, |score| ranking (held-out pairs)"))
    circ = scores["eap-ig-inputs"].circuit(max(1, int(0.05 * g.n_edges)))
    if circ.edges:
        sec.figures.append(circ.plot(title=f"EAP-IG circuit: {len(circ.edges)} edges, "
                                           f"f = {ev.score(circ).faithfulness:.3f}"))
    ctx.results["edges"] = {"scores": scores, "curves": curves, "mib": mib, "circuit": circ}
    sec.data = {m: {"cpr": r["cpr"], "cmd": r["cmd"], "faithfulness": r["absolute"]["faithfulness"],
                    "faithfulness_signed": r["signed"]["faithfulness"]} for m, r in mib.items()}
    sec.data["random"] = {k: curves["random"][k] for k in ("cpr", "cmd", "faithfulness")}
    return sec
