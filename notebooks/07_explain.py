# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 7. Explaining prompts: saliency, representation reading and steering, uncertainty
#
# The questions of the prompting paradigm (Zhao et al., *Explainability for Large Language Models: A Survey*, §4),
# answered on the same bridge and hooks as the rest of `interp`:
#
# 1. **Saliency** (`interp.explain.saliency`): which input tokens drive a prediction - gradient, gradient × input,
#    integrated gradients (IG) and attention. IG's *completeness* (attributions sum to score(x) − score(baseline))
#    is checked on a model that is linear in its embeddings, where IG must equal each token's exact contribution.
# 2. **Representation reading** (`reading_vector`, `probe_layers`): is "true vs false" linearly readable from the
#    residual stream of SmolLM2-135M, on held-out statements and on another family of statements?
# 3. **Steering** (`steer`, `dose_response`): adding the sentiment direction moves the model's positive/negative
#    judgement; a random vector of the same norm does much less.
# 4. **In-context demonstrations** and **uncertainty** in small samples.
#
# With `INTERP_FAST=1` (CI) every sample is small.

# %%
import os

import numpy as np
import torch
from transformer_lens import TransformerBridge, TransformerBridgeConfig

import interp
from interp.explain import dose_response, load_sentiment, load_statements, probe_layers, reading_vector, saliency, steer
from interp.explain.data import split

FAST = os.environ.get("INTERP_FAST") == "1"
torch.set_num_threads(1)

# %% [markdown]
# ## 1. Integrated gradients on a model that is linear in its embeddings
#
# An attention-only model without normalisation whose query and key weights are zero attends uniformly, so its
# logits are an affine function of the token embeddings. For such a model the exact contribution of token *t* is
# score(x) − score(x with e_t = 0), computed here by one forward pass per token - no gradients involved.

# %%
cfg = TransformerBridgeConfig(d_model=32, d_head=8, n_heads=4, n_layers=2, d_vocab=50, n_ctx=12, attn_only=True,
                              normalization_type=None, act_fn="gelu", seed=1)
lin = TransformerBridge.boot_native(cfg)
lin.enable_compatibility_mode()
lin.eval()
with torch.no_grad():
    for name, p in lin.named_parameters():
        if ".q." in name or ".k." in name:
            p.zero_()
        elif "tok_embed" in name:
            p.mul_(30.0)

ids, target = [3, 17, 5, 41, 9, 22], 7
res = saliency(lin, ids, target=target, baseline="zero", steps=4, method=["integrated_gradients", "grad_x_input"])
ig = res[0].values("integrated_gradients")

emb = {}
with torch.inference_mode():
    lin.run_with_hooks(torch.tensor([ids]), fwd_hooks=[("hook_embed", lambda a, hook: emb.setdefault("e", a.clone()))])


def score(e):
    with torch.inference_mode():
        out = lin.run_with_hooks(torch.tensor([ids]), fwd_hooks=[("hook_embed", lambda a, hook: e)])
        return float(out[0, -1, target])


exact = []
for t in range(len(ids)):
    e2 = emb["e"].clone()
    e2[0, t] = 0
    exact.append(score(emb["e"]) - score(e2))
print("IG     ", np.round(ig, 4))
print("exact  ", np.round(exact, 4))
print("completeness error", res[0].completeness_error)

# %%
assert np.allclose(ig, exact, atol=1e-4)
assert res[0].completeness_error < 1e-4

# %% [markdown]
# On a real model the path integral is approximated with *steps* points. On `toy-arith` (LayerNorm, learned
# positional embeddings) the completeness error with the mean-embedding baseline is small at 64 steps. On SmolLM2
# it is not, even at 128 steps, although its gradients match finite differences: the score along the straight
# path is very non-linear (measured in docs/explain.md) - always read IG together with its completeness error.

# %%
toy = interp.load_model("toy-arith")
ps = interp.parse_task("arith:+").correct_prompts(toy, "+", seed=0, limit=5)
sal = saliency(toy, [list(p.tokens) for p in ps], target=[p.answer_token for p in ps], steps=64)
print(sal, sal.completeness())
for p, it in zip(ps, sal.items):
    print(p, "IG per position (BOS a op b =):", np.round(it.values("integrated_gradients"), 2))

# %%
assert sal.completeness()["mean_relative"] < 0.05

# %% [markdown]
# ## 2. A truth direction in SmolLM2-135M
#
# 216 city statements ("The city of Paris is in France." / "... is in Austria.") and 202 animal-class statements
# ship with `interp`. A logistic probe is trained on the residual stream at the last token of the training split and
# scored on the held-out pairs and, across datasets, on the animal statements.

# %%
model = interp.load_model("smollm2-135m")
cities, animals = load_statements("cities"), load_statements("animals")
layers = [12, 20] if FAST else list(range(0, model.cfg.n_layers, 2))
probes = probe_layers(model, split(cities, "train"), split(cities, "test"), layers=layers, others={"animals": animals})
print(probes)
for layer, te, cr in zip(probes.layers, probes.test_accuracy, probes.cross["animals"]):
    print(f"layer {layer:2d}: held-out {te:.2f}   cross-dataset (animals) {cr:.2f}")
probes.plot()

# %%
assert probes.best_accuracy > 0.75  # chance is 0.5 (balanced held-out pairs)

# %% [markdown]
# ## 3. Steering with the sentiment direction
#
# The reading vector (LAT: first principal direction of paired differences) of 75 positive/negative review pairs at
# layer 18, scaled to the norm of the class-mean difference, is added to the residual stream while the model judges
# held-out reviews (`logit(" positive") − logit(" negative")` after "Sentiment:"). Three random vectors of the same
# norm are the control.

# %%
sent = load_sentiment()


def fmt(r):
    return f"Review: {r.text}\nSentiment:"


train, test = split(sent, "train"), split(sent, "test")
pos = [fmt(r) for r in train if r.label == "positive"]
neg = [fmt(r) for r in train if r.label == "negative"]
rv = reading_vector(model, pos, neg, layer=18, method="pca")
vec = rv.direction * rv.mean_diff.norm()
prompts = [fmt(r) for r in test][: 8 if FAST else 50]
dr = dose_response(model, prompts, vec, layers=18, alphas=(-2, 0, 2) if FAST else (-2, -1, 0, 1, 2), n_random=2)
print(rv)
print(dr)
print("concept:", np.round(dr.concept, 2), " random (mean):", np.round(dr.random_mean, 2))
dr.plot()

# %%
assert dr.slope > 0  # adding the positive-minus-negative direction makes the judgement more positive
assert dr.ratio > 3  # ... much more than a random direction of the same norm

# %% [markdown]
# `steer` is a context manager, so the model is restored afterwards:

# %%
with steer(model, vec, layers=18, alpha=2.0):
    with torch.inference_mode():
        steered = model(model.to_tokens("Review: The soup was cold and bland.\nSentiment:"))[0, -1]
print("with +2x the sentiment vector:", model.tokenizer.decode([int(steered.argmax())]))

# %% [markdown]
# ## 4. Demonstrations and uncertainty (small samples)
#
# `icl_experiment` builds few-shot prompts from the sentiment set with gold, flipped, perturbed and explained
# demonstrations; `uncertainty` answers few-shot single-digit additions and asks which confidence predicts a correct
# answer. The numbers measured on larger samples are in docs/explain.md.

# %%
from interp.explain.icl import icl_experiment  # noqa: E402
from interp.explain.uncertainty import arith_questions, uncertainty  # noqa: E402
from interp.report import FEW_SHOT_PREFIX  # noqa: E402

icl = icl_experiment(model, shots=(0, 4), n_queries=6 if FAST else 40, n_saliency=0)
for r in icl.rows:
    print(r["variant"], r["shots"], "accuracy", r["accuracy"], "P(gold)", round(r["p_gold"], 3),
          "follow flipped", r["follow_flipped"])
unc = uncertainty(model, arith_questions(model, "arith:+:0-9", n=6 if FAST else 55, prefix=FEW_SHOT_PREFIX),
                  max_new_tokens=3, k=0)
print(unc)
print({m: round(v["auroc"], 2) for m, v in unc.summary()["measures"].items()})

# %%
assert 0.0 <= icl.get("gold", 4)["accuracy"] <= 1.0 and icl.get("gold", 4)["p_gold"] > 0

# %% [markdown]
# ### Which demonstration does the prediction rely on?
#
# Pass a prompt as a list of strings (one per demonstration, then the query) and `by_segment` sums the saliency of
# each part: what inseq-style token maps do not give you. Here: gradient × input of the logit difference
# `" positive" − " negative"` on a 4-shot prompt.

# %%
demos = [r for r in train if r.label == "positive"][:2] + [r for r in train if r.label == "negative"][:2]
parts = [f"Review: {r.text}\nSentiment: {r.label}\n\n" for r in demos] + [fmt(test[0])]
names = [f"demo {i + 1} ({r.label})" for i, r in enumerate(demos)] + ["query"]
demo_sal = saliency(model, [parts], target=(" positive", " negative"), method="grad_x_input", segment_names=names)
shares = demo_sal.items[0].by_segment("grad_x_input")
for name, v in shares.items():
    print(f"{name:20s} {v:+.3f}")

# %%
assert list(shares) == names and all(np.isfinite(v) for v in shares.values())

# %% [markdown]
# ## 5. Saliency under chain-of-thought (Wu et al. 2023)
#
# `cot_saliency(model, variants=("no_cot", "full_cot"))` lets the model answer each built-in word problem after
# 8 exemplars and, for every generated token, takes |gradient × input| of that token's logit over the whole context,
# restricted to the question. Wu et al.'s claim is that CoT makes this saliency *more stable* across steps; the
# measured table for SmolLM2-135M is in docs/explain.md (a full run takes ~14 minutes on a 2-core CPU, too long for
# here). Its building block, `step_saliency`, is cheap on a short sequence: one row per generated step. Causality
# makes every token after a step's target exactly 0 - a check that the gradients are taken per step.

# %%
from interp.explain.cot_saliency import step_saliency  # noqa: E402

question = "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\n"
seq = model.to_tokens(question + "Answer: Let's think step by step. 3 + 4 = 7. The answer is 7.")[0].tolist()
q_end = len(model.to_tokens(question)[0])  # BOS + the question's tokens
steps = list(range(len(seq) - 8, len(seq) - 1))  # positions predicting the last 7 tokens
S = step_saliency(model, seq, steps)  # [step, position]
share = S[:, 1:q_end].sum(1) / S.sum(1)
for p, sh in zip(steps, share):
    print(f"predicting {model.tokenizer.decode([seq[p + 1]])!r:10} share of |saliency| on the question {sh:.2f}")

# %%
assert all((S[i, p + 2:] == 0).all() for i, p in enumerate(steps))  # no step sees its own future
assert ((share > 0) & (share < 1)).all()
