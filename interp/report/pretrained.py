"""Report sections for pretrained language models (``interp report --model smollm2-135m``).

* `concepts_section`: concept neurons by vocabulary projection (Rai & Yao's lexicon rule, methods.md §B.1);
* `ioi_section`: the IOI logit difference, the heads that carry it (exact patching of ``hook_z`` at the S2 and final
  positions) and previous-token / duplicate-token / induction heads, checked against TransformerLens's
  ``head_detector``.

Both return a `interp.report.base.Section`; on a model they do not apply to (no tokenizer, names that are not single
tokens, no MLP) they return a short section saying why instead of failing the report.
"""

from __future__ import annotations

from typing import Any

from interp._html import esc, table
from interp.errors import InterpError
from interp.report.base import ReportContext, Section

__all__ = ["concepts_section", "ioi_section", "PRETRAINED_SECTIONS"]

AGREEMENT_TEXTS = (
    "The old man walked to the river and sat down. The old man walked to the river and sat down.",
    "Alice bought apples, pears and plums at the market. Alice bought apples, pears and plums at the market.",
    "One two three four five six seven eight. One two three four five six seven eight.",
)


def concepts_section(model: Any, ctx: ReportContext) -> Section:
    """Concept neurons per concept, where they sit, and examples of their top projected tokens."""
    from interp.vocab.concepts import find_concept_neurons

    title = "Concept neurons: value vectors that promote arithmetic and reasoning tokens"
    try:
        res = find_concept_neurons(model, progress=ctx.progress)
    except InterpError as e:
        return Section(title, [f"Not available for this model: {esc(e)}"])
    ctx.results["concepts"] = res
    rows = []
    for c, v in res.concepts.items():
        ex = "; ".join(f"{n.label}: {' '.join(t.strip() or repr(t) for t in n.top_tokens[:6])}" for n in v[:2])
        layers = sorted({n.layer for n in v})
        rows.append([c, len(v), f"{layers[0]}-{layers[-1]}" if layers else "-", ex])
    p = [
        f"Each MLP neuron writes its value vector (a row of <code>W_out</code>) into the residual stream; projecting "
        f"it onto the unembedding shows which tokens it promotes (Geva et al. 2022). A neuron is a <i>concept "
        f"neuron</i> when at least {res.min_matches} of its top-{res.top_k} projected tokens are in a concept's seed "
        f"lexicon (Rai &amp; Yao 2024; no LLM judge here). {res.n_scanned:,} neurons of layers {res.layers[0]}-"
        f"{res.layers[-1]} were scanned in {res.seconds:.0f} s (layers {list(res.skip_layers)} skipped, the paper's "
        "share of early layers).",
        table(rows, ["concept", "neurons", "layers", "examples (top projected tokens)"],
              caption="Concept neurons found per concept: how many, in which layers, and example neurons with "
                      "their top projected tokens."),
        "A lexicon match is weak evidence: single-character tokens such as <code>-</code>, <code>x</code> or "
        "<code>/</code> are common in code and text, so counts for subtract/multiply/division include neurons about "
        "hyphens, variables or paths. The paper confirmed candidates with GPT-4; the API takes any judge "
        "(<code>interp.vocab.concepts.llm_judge</code>).",
    ]
    return Section(title, p, [res.plot()], data={"counts": res.counts()})


def ioi_section(model: Any, ctx: ReportContext) -> Section:
    """IOI logit difference, heads that carry it (exact patching), and classified attention heads."""
    from interp.circuits.heads import agreement, head_scores
    from interp.patching import patch
    from interp.tasks.ioi import IOITask

    title = "Indirect object identification and attention heads"
    n = 16 if ctx.quick else 32
    try:
        task = IOITask(n_prompts=n, seed=ctx.seed)
        pairs = task.pairs(model)
        ld = task.logit_diff(model)
    except InterpError as e:
        return Section(title, [f"IOI is not available for this model: {esc(e)}"])
    positions = [pairs.position_labels.index("S2"), pairs.seq_len - 1]
    if ctx.quick:
        positions = positions[-1:]
    res = patch(model, pairs, site="heads", positions=positions, metric="logit_diff_change", progress=ctx.progress,
                model_name=ctx.model_name)
    ctx.results["ioi"] = {"logit_diff": ld, "heads": res}
    top = res.top(8)
    p = [
        f"Prompts such as <i>{esc(pairs.clean[0].text)}</i> → <code>{esc(pairs.clean[0].io)}</code>. "
        f"On {ld['n_prompts']} prompts (ABBA and BABA) the logit difference logit(IO) − logit(S) is "
        f"<b>{ld['clean']:.2f}</b>; IO beats S on {100 * ld['io_beats_s']:.0f}% and is the top token on "
        f"{100 * ld['io_top1']:.0f}%. On the corrupt prompts (S2 replaced by a third name, the ABC distribution) it "
        f"is {ld['corrupt']:.2f}.",
        "Heads that carry it: exact activation patching of each head's output (<code>hook_z</code>) from the corrupt "
        f"into the clean run, at the {'final position' if ctx.quick else 'S2 and final positions'}; the effect is "
        "the change of the logit difference (negative: the head's clean output supports IO).",
        table([[lab, f"{v:+.3f}"] for lab, v in top], ["head @ position", "Δ logit diff"],
              caption="Heads with the largest effect: change of the IO − S logit difference when the head's output "
                      "at that position is patched from the corrupt run."),
    ]
    figs = [res.plot(title="Δ IO−S logit difference when one head is patched (noising)")]
    try:
        hs = head_scores(model, seq_len=20, n_sequences=8 if ctx.quick else 16, seed=ctx.seed)
        cls = hs.classify()
        rows = [[k, len(cls[k]), ", ".join(f"{lab} ({s:.2f})" for lab, s in hs.top(k, 4))] for k in hs.kinds]
        p.append("Attention-head classes on repeated random token sequences (targeted score: attention on the "
                 "target keys, averaged over the query positions that have one; a head is listed at ≥ 0.4 "
                 "previous-token, ≥ 0.3 duplicate-token or induction):")
        p.append(table(rows, ["kind", "heads over threshold", "top heads (score)"],
                       caption="Attention-head classes: heads over each kind's threshold and the four best scores."))
        ag = agreement(model, AGREEMENT_TEXTS, k=5)
        p.append("Check against <code>transformer_lens.head_detector.detect_head</code> on the same model and texts: "
                 + "; ".join(f"{k}: max |Δ| of the reproduced score {ag.max_abs_diff[k]:.1e}, Spearman ρ "
                             f"{ag.spearman[k]:.3f}, top-5 overlap {ag.top_overlap[k]:.0%}" for k in hs.kinds) + ".")
        figs.append(hs.plot())
        ctx.results["heads"] = {"scores": hs, "agreement": ag}
    except InterpError as e:
        p.append(f"Head classification not available: {esc(e)}")
    return Section(title, p, figs, data={"logit_diff": ld, "top_heads": top})


PRETRAINED_SECTIONS = [concepts_section, ioi_section]
