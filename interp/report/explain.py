"""The "Explaining prompts" section of ``interp report`` (opt-in: ``interp report --with explain``).

For a model with a natural-language tokenizer: integrated-gradient saliency of one IOI prompt by word, a truth
probe per layer on the built-in city statements with its cross-dataset accuracy on the animal statements, and the
uncertainty of few-shot single-digit addition (AUROC/ECE of each confidence). For models whose numbers are single
tokens (toy-arith): saliency of arithmetic prompts and the uncertainty of the task's answers. Quick mode probes
every third layer and uses fewer questions.
"""

from __future__ import annotations

import html
from typing import Any

from interp._html import table
from interp.errors import InterpError

__all__ = ["explain_section"]


def _uncertainty_rows(res: Any) -> list[list[Any]]:
    s = res.summary()
    return [[m, f"{v['auroc']:.3f}", f"{v['ece']:.3f}", f"{v['mean']:.3f}"] for m, v in s["measures"].items()]


def explain_section(model: Any, ctx: Any) -> Any:
    from interp.explain import saliency
    from interp.explain.uncertainty import arith_questions, uncertainty
    from interp.report.base import FEW_SHOT_PREFIX, Section, single_token_numbers

    sec = Section("Explaining prompts: saliency, truth probes, uncertainty")
    quick = bool(getattr(ctx, "quick", False))
    toy = single_token_numbers(model)
    try:
        if toy:
            from interp.tasks import parse_task

            ps = parse_task("arith:+").correct_prompts(model, "+", seed=ctx.seed, limit=4 if quick else 10)
            sal = saliency(model, [list(p.tokens) for p in ps], target=[p.answer_token for p in ps], steps=32)
            rows = [[str(p), " ".join(f"{v:+.2f}" for v in it.values("integrated_gradients"))]
                    for p, it in zip(ps, sal.items)]
            sec.paragraphs.append("<p>Integrated gradients (mean-embedding baseline, 32 Gauss–Legendre steps) of "
                                  "the answer logit per position (BOS, a, op, b, =); completeness error "
                                  f"≤ {sal.max_completeness_error:.3g}.</p>" + table(
                rows, ["prompt", "IG per token"],
                caption="Integrated gradients of the answer logit for each token of the prompt (BOS, a, op, b, =)."))
            from interp.explain.uncertainty import toy_held_out_pairs

            try:  # the built-in toy model's held-out multiplication pairs (it gets ~63% right)
                pairs = toy_held_out_pairs("*")
            except (OSError, KeyError, InterpError):
                pairs = None
            qs = arith_questions(model, "arith:*", n=40 if quick else 200, seed=ctx.seed, only_pairs=pairs)
            unc = uncertainty(model, qs, k=0)
        else:
            sal = saliency(model, "When Mary and John went to the store, John gave a drink to",
                           target=(" Mary", " John"), steps=16 if quick else 32,
                           method=["integrated_gradients", "grad_x_input"])
            ig = [v for _, v in sal[0].by_word("integrated_gradients")]
            gx = sal[0].by_word("grad_x_input")  # words repeat ("John", "to"): keep them by position
            top = sorted(((w, v, ig[i]) for i, (w, v) in enumerate(gx)), key=lambda t: -abs(t[1]))[:6]
            sec.paragraphs.append(
                "<p>Saliency of logit(' Mary') − logit(' John') by word: gradient × input, and integrated gradients "
                f"(mean-embedding baseline; completeness error {sal[0].completeness_error:.3g} of a score change of "
                f"{abs(sal[0].score_x - sal[0].score_baseline):.3g} - IG does not converge well on this model, see "
                "docs/explain.md).</p>"
                + table([[w, f"{v:+.3f}", f"{g:+.3f}"] for w, v, g in top], ["word", "grad × input", "IG"],
                        caption="Words with the largest attributions to the answer: gradient × input and IG."))
            from interp.explain import load_statements, probe_layers
            from interp.explain.data import split

            cities, animals = load_statements("cities"), load_statements("animals")
            n_layers = int(model.cfg.n_layers)
            layers = list(range(0, n_layers, 3 if quick else 1))
            probes = probe_layers(model, split(cities, "train"), split(cities, "test"), layers=layers,
                                  others={"animals": animals})
            ctx.results["explain_probes"] = probes
            j = probes.layers.index(probes.best_layer)
            sec.paragraphs.append(
                f"<p><b>Truth probe.</b> A logistic probe on the residual stream at the last token of "
                f"{probes.settings['n_train']} city statements reaches {probes.best_accuracy:.2f} held-out accuracy "
                f"at layer {probes.best_layer} ({probes.settings['n_test']} held-out statements); the same probe "
                f"scores {probes.cross['animals'][j]:.2f} on animal-class statements (cross-dataset; "
                f"{max(probes.cross['animals']):.2f} at the best layer for that, chosen after the fact).</p>")
            sec.figures.append(probes.plot(title="truth probe accuracy per layer"))
            qs = arith_questions(model, "arith:+:0-9", n=20 if quick else 55, prefix=FEW_SHOT_PREFIX, seed=ctx.seed)
            unc = uncertainty(model, qs, max_new_tokens=4, k=0)
        ctx.results["explain_uncertainty"] = unc
        s = unc.summary()
        sec.paragraphs.append(
            f"<p><b>Uncertainty.</b> {s['n']} questions, accuracy {s['accuracy']:.2f}. How well each confidence "
            "predicts a correct answer (AUROC; NaN when every answer is right or every one wrong) and how well it "
            "is calibrated (ECE, 10 bins):</p>"
            + table(_uncertainty_rows(unc), ["confidence", "AUROC", "ECE", "mean"],
                    caption="Each confidence measure: AUROC for predicting a correct answer, calibration error "
                            "(ECE, 10 bins) and its mean."))
        sec.figures.append(unc.plot())
    except InterpError as e:
        sec.paragraphs.append(f"<p>Skipped: {html.escape(str(e))}</p>")
    return sec
