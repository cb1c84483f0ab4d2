"""The arithmetic sections of ``interp report``: greedy accuracy per operator and the activation-patching maps."""

from __future__ import annotations

from typing import Any

from interp._html import esc, table
from interp.report.base import ReportContext, Section, grid_pass

__all__ = ["accuracy_sample", "accuracy_section", "patching_section"]


def _large(model: Any) -> bool:
    return int(model.cfg.n_layers) > 8


def accuracy_sample(model: Any, ctx: ReportContext) -> bool:
    """Whether the accuracy section samples 300 prompts per operator instead of taking the whole grid: on models
    with more than 8 layers, and with ``--quick`` unless the circuit section's grid pass gives the whole grid for
    free (it also samples when that pass does not apply, e.g. multi-token answers: the label is then optimistic)."""
    return _large(model) or (ctx.quick and "circuit" not in ctx.plan)


def accuracy_section(model: Any, ctx: ReportContext) -> Section:
    task = ctx.task()
    # one pass over the grid gives every prompt's correctness and the circuit section's mean activations, so the
    # whole grid's accuracy costs nothing more, also with --quick (a 300-prompt sample would not save time)
    shared = not _large(model) and "circuit" in ctx.plan and grid_pass(model, ctx)
    max_prompts = 300 if accuracy_sample(model, ctx) or (ctx.quick and not shared) else None
    acc = task.accuracy(model, max_prompts=max_prompts)
    ctx.results["accuracy"] = acc
    rows = [[op, acc.n_total[op], acc.n_correct[op], f"{100 * acc.accuracy[op]:.1f}%"] for op in task.operators]
    scope = "every legal prompt of the grid" if max_prompts is None else f"a seeded sample of {max_prompts} prompts"
    p = [
        f"Greedy accuracy of <b>{esc(ctx.model_name)}</b> on <code>{esc(task.name)}</code>, template "
        f"<code>{esc(task.template)}</code>"
        + (f" after the few-shot prefix <code>{esc(task.prefix)}</code>" if task.prefix else "")
        + f", over {scope} per operator. Patching below uses correct prompts only.",
        table(rows, ["operator", "prompts", "correct", "accuracy"],
              caption=f"Greedy accuracy per operator over {scope}: the answer token is the model's top logit."),
    ]
    return Section("Accuracy", p, data={"accuracy": acc.to_dict()})


def patching_section(model: Any, ctx: ReportContext) -> Section:
    """Heads and MLPs at every position, per operator, by exact patching (metric: indirect effect, Eq. 1)."""
    from interp.patching import patch

    task = ctx.task()
    pairs = task.pairs(model, n_per_op=ctx.n_per_op, seed=ctx.seed, corrupt_from="all")
    sec = Section("Which components carry the answer: activation patching")
    sec.paragraphs.append(
        "Each cell is the mean <i>indirect effect</i> (Nikankin et al. 2025, Eq. 1) of replacing one component's "
        "activation at one token position of a correct clean prompt by its value on a corrupt prompt (another "
        "correct prompt, drawn from all operators, with a different answer). Large values: the component at that "
        f"position carries information the answer needs. {ctx.n_per_op} clean prompts per operator; heads patch "
        "<code>attn.hook_z</code>, MLPs patch the whole <code>mlp.hook_post</code> vector. Because Eq. 1 divides "
        "by probabilities that a confident model puts near zero, effects span many decades; the maps show "
        "sign·log(1+IE) as the paper's Fig. 2a does, the tables the raw means."
    )
    # positions of the problem itself (never a few-shot prefix); on large models heads at the last position only,
    # as in the paper's Fig. 2a
    problem = [i for i, lab in enumerate(pairs.position_labels) if lab != "BOS" and not lab.startswith("prefix")]
    large = int(model.cfg.n_layers) * int(model.cfg.n_heads) > 64
    head_positions = "last" if large else problem
    if large:
        sec.paragraphs.append("This is a large model: heads are patched at the last position only, MLPs at every "
                              "position of the problem.")
    per_op: dict[str, dict[str, Any]] = {}
    summary_rows = []
    for op, sub in pairs.by_group().items():
        heads = patch(model, sub, site="heads", positions=head_positions, metric="ie", progress=ctx.progress,
                      model_name=ctx.model_name)
        mlps = patch(model, sub, site="mlps", positions=problem, metric="ie", progress=ctx.progress,
                     model_name=ctx.model_name)
        per_op[op] = {"heads": heads, "mlps": mlps}
        sec.figures.append(mlps.plot(title=f"MLPs (hook_post), operator {op}: mean IE by layer and position "
                                           "(log colour scale)", transform="log1p"))
        sec.figures.append(heads.plot(title=f"Attention heads (hook_z), operator {op}: mean IE per position "
                                            "(log colour scale)", transform="log1p"))
        top_h = ", ".join(f"{lab} ({v:.3g})" for lab, v in heads.top(3))
        top_m = ", ".join(f"{lab} ({v:.3g})" for lab, v in mlps.top(3))
        summary_rows.append([op, sub.n, top_m, top_h])
    ctx.results["patching"] = per_op
    sec.paragraphs.append(table(
        summary_rows, ["operator", "prompts", "top MLP sites", "top head sites"],
        caption="The three largest mean indirect effects (raw Eq. 1 values, not log-scaled) among MLP sites "
                "(layer, position) and head sites (layer, position, head), per operator."))
    sec.paragraphs.append(_summary_text(per_op))
    return sec


def _summary_text(per_op: dict[str, dict[str, Any]]) -> str:
    """A short written reading of the maps: MLP vs head mass, and where (which positions) effects sit."""
    import numpy as np

    lines = []
    for op, d in per_op.items():
        h, m = d["heads"], d["mlps"]
        last = h.index["pos"][-1]
        head_last = h.values(pos=last)
        mlp_max, head_max = float(np.max(m.effects)), float(np.max(h.effects))
        li, pi = np.unravel_index(int(np.argmax(m.effects)), m.effects.shape)
        n_big_heads = int((head_last > 0.1 * max(head_max, 1e-9)).sum())
        lines.append(
            f"<li><b>{esc(op)}</b>: strongest MLP site {esc(m.labels['layer'][li])} at position "
            f"{esc(m.labels['pos'][pi])} (IE {mlp_max:.3g}); strongest head site IE {head_max:.3g}; "
            f"{n_big_heads} of {head_last.size} heads at the last position reach 10% of the strongest head effect.</li>"
        )
    ratio = [
        float(np.max(d["mlps"].effects)) / max(float(np.max(d["heads"].effects)), 1e-9) for d in per_op.values()
    ]
    verdict = (
        "MLPs dominate: their strongest effect exceeds the strongest head's for every operator"
        if all(r > 1 for r in ratio)
        else "Heads and MLPs both carry large effects"
    )
    return f"<p><b>Summary.</b> {verdict}.</p><ul>{''.join(lines)}</ul>"
