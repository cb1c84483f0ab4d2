# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 4. Value vectors in vocabulary space, and concept neurons
#
# An MLP layer adds `sum_i m_i v_i` to the residual stream: `m_i` is neuron *i*'s activation (`mlp.hook_post`) and
# `v_i` its **value vector**, row *i* of `W_out`. Each *sub-update* `m_i v_i` pushes towards whatever `v_i` points
# at, and `v_i @ W_U` says which tokens that is (Geva et al., *Transformer Feed-Forward Layers Build Predictions by
# Promoting Concepts in the Vocabulary Space*, EMNLP 2022). This notebook:
#
# 1. projects every value vector of `toy-arith` onto its vocabulary (`interp.vocab.scan_values`);
# 2. ranks the sub-updates of one prompt by the scaled coefficient `|m_i|·‖v_i‖` and finds the answer among the
#    tokens the dominant ones promote;
# 3. intervenes as LM-Debugger does: promote or suppress chosen neurons and compare the predictions;
# 4. finds **concept neurons** (Rai & Yao, ACL 2024): neurons with ≥ 2 of their top-20 tokens in a concept
#    lexicon, with a user lexicon on the toy model and the paper's seven concepts on SmolLM2-135M, and measures
#    how often they fire while SmolLM2 writes chain-of-thought answers.
#
# With `INTERP_FAST=1` (CI) the SmolLM2 part scans four layers for concept neurons and uses two word problems.

# %%
import os
import time

import numpy as np
import torch

import interp
from interp import vocab
from interp.tasks import parse_task
from interp.vocab.concepts import find_concept_neurons, load_lexicon

FAST = os.environ.get("INTERP_FAST") == "1"
torch.set_num_threads(1)  # generation is latency-bound; on small shared CPUs more threads only contend
model = interp.load_model("toy-arith")
print(model.cfg.n_layers, "layers x", model.cfg.d_mlp, "neurons; vocabulary", model.cfg.d_vocab)

# %% [markdown]
# ## 1. Every value vector, projected
#
# `scan_values` computes `W_out[l] @ W_U` in chunks and keeps the top (and bottom) *k* tokens of each neuron.
# On `toy-arith` the vocabulary is the numbers 0–999 plus `+ - * / =` and BOS, so neurons promote numbers.

# %%
t0 = time.perf_counter()
proj = vocab.scan_values(model, k=10)
print(f"{proj.n_neurons} neurons in {time.perf_counter() - t0:.2f} s ({proj.meta['precision']})")
for layer in range(model.cfg.n_layers):
    print(f"L{layer}N0 promotes {proj.tokens(layer, 0, k=6)}, suppresses {proj.tokens(layer, 0, k=4, bottom=True)}")

# %%
numeric = np.isin(proj.top_ids, np.arange(1000)).mean()
print(f"{100 * numeric:.1f}% of all top-10 tokens are numbers")
assert numeric > 0.95

# %% [markdown]
# ## 2. Dominant sub-updates of one prompt
#
# For a prompt, `dominant_subupdates` ranks the neurons of all layers at the last position by `|m_i|·‖v_i‖`.
# Geva et al. found that the prediction is built by *promoting* candidates through a few dominant sub-updates:
# here the answer should be among the tokens some of them promote.

# %%
task = parse_task("arith:+")
prompts = task.correct_prompts(model, "+", limit=10 if FAST else 40)
p = prompts[0]
subs = vocab.dominant_subupdates(model, list(p.tokens), k=10)
print(p)
for r in subs.rows[:6]:
    print(f"  L{r.layer}N{r.neuron:<4} m={r.coefficient:+.2f} |v|={r.value_norm:.2f} score={r.score:.2f} "
          f"promotes {proj.tokens(r.layer, r.neuron, k=5)}")

# %%
hits = 0
for q in prompts:
    rows = vocab.dominant_subupdates(model, list(q.tokens), k=10).rows
    hits += any(q.answer_token in proj.top_ids[r.layer, r.neuron] for r in rows)
share = hits / len(prompts)
print(f"answer among the top-10 tokens of a top-10 sub-update: {hits}/{len(prompts)} prompts")
assert share >= 0.5

# %% [markdown]
# ## 3. LM-Debugger interventions: promote and suppress
#
# `intervene` sets chosen neurons' coefficients at every position while the context is open (the hooks are removed
# afterwards, even on errors). *Promote* makes a neuron its layer's dominant sub-update (its scaled coefficient
# becomes the layer's maximum + 0.01); *suppress* sets it to 0. `compare_generation` shows the greedy
# continuation and the top next tokens before and after.

# %%
toks = torch.tensor([list(p.tokens)])
target = 42 if p.answer_token != 42 else 43
promoters = {layer: [n for n in range(model.cfg.d_mlp) if proj.top_ids[layer, n, 0] == target] for layer in (2, 3)}
print("neurons whose first token is", target, promoters)


def logit_of(tok: int) -> float:
    with torch.inference_mode():
        return float(model(toks)[0, -1, tok])


before = logit_of(target)
with vocab.intervene(model, promoters, mode="promote", reference=toks):
    after = logit_of(target)
print(f"logit of {target}: {before:.2f} -> {after:.2f} with {sum(map(len, promoters.values()))} neurons promoted")
assert after > before
assert logit_of(target) == before  # hooks removed

# %%
answer_promoters = [(r.layer, r.neuron) for r in subs.rows if p.answer_token in proj.top_ids[r.layer, r.neuron]]
res = vocab.compare_generation(model, toks, answer_promoters or [(subs.rows[0].layer, subs.rows[0].neuron)],
                               mode="suppress", max_new_tokens=1)
print("suppressing", answer_promoters, ":", [(t.token, round(t.logit, 2)) for t in res.top_before[:3]], "->",
      [(t.token, round(t.logit, 2)) for t in res.top_after[:3]])
ans_before = next(t.logit for t in res.top_before if t.token_id == p.answer_token)
with vocab.intervene(model, answer_promoters or [(subs.rows[0].layer, subs.rows[0].neuron)], mode="suppress"):
    ans_after = logit_of(p.answer_token)
assert ans_after < ans_before

# %% [markdown]
# ## 4. Concept neurons
#
# Rai & Yao call a neuron a *concept neuron* when at least 2 of its top-20 projected tokens (stripped,
# lower-cased) are in a concept's seed lexicon; the seven lexicons of the paper ship with `interp`
# (`interp/data/concepts.json`) and users extend them. An optional *judge* — any callable
# `(tokens, question) -> "yes"/"no"`, e.g. an LLM behind `interp.vocab.concepts.llm_judge` — confirms candidates.
#
# The toy model knows only numbers, so we give it a concept of our own: "the teens", 10–19.

# %%
lex = load_lexicon(extra={"teens": {"question": "Is this neuron promoting numbers from 10 to 19?",
                                    "tokens": [str(i) for i in range(10, 20)]}}, concepts=["teens"])
teens = find_concept_neurons(model, lexicon=lex, top_k=10, min_matches=3, skip_layers=[])
print(teens.counts(), [(n.label, n.matches) for n in teens["teens"][:4]])
assert teens.counts()["teens"] > 0


def strict_judge(tokens, question):
    """A local judge: yes when most of the top tokens are teens."""
    return "yes" if sum(t.strip() in {str(i) for i in range(10, 20)} for t in tokens) >= 5 else "no"


judged = find_concept_neurons(model, lexicon=lex, top_k=10, min_matches=3, skip_layers=[], judge=strict_judge)
print("after the judge:", judged.counts(), "of", judged.n_candidates)
assert judged.counts()["teens"] <= teens.counts()["teens"]
teens.plot()

# %% [markdown]
# ### The paper's concepts on SmolLM2-135M
#
# SmolLM2 has 30 layers of 1,536 gated-SiLU neurons (46,080) and a 49,152-token vocabulary. Layers 0–5 are skipped
# (the paper's share of early layers); the scan of the other 24 (36,864 neurons, one float32 matmul against the
# unembedding per block of neurons) takes about 50 s on a 2-core CPU. With `INTERP_FAST=1` (CI) the notebook scans
# four of them (8, 14, 20, 26): concept neurons sit in every layer from 6 to 29, so these show each concept.

# %%
smol = interp.load_model("smollm2-135m")
t0 = time.perf_counter()
skip = [x for x in range(30) if x not in (8, 14, 20, 26)] if FAST else None  # None: the default (layers 0-5)
concepts = find_concept_neurons(smol, skip_layers=skip)
print(f"scanned {concepts.n_scanned} neurons in {time.perf_counter() - t0:.0f} s:", concepts.counts())
for c in ("add", "subtract", "connections", "equals_to"):
    n = concepts[c][0]
    print(f"  {c:<12} {n.label}: {[t.strip() for t in n.top_tokens[:10]]}")
assert concepts.counts()["add"] > 0 and concepts.counts()["connections"] > 0

# %% [markdown]
# Do these neurons fire while the model reasons? `interp.vocab.cot.evaluate_variant` generates greedily under an 8-shot
# exemplar set and counts, at every generated token, the concept neurons among the top-20 sub-updates of each
# layer (Rai & Yao's Algorithm one). Full CoT exemplars against the no-CoT baseline:

# %%
from interp.vocab.cot import evaluate_variant, load_problems

probs = load_problems(n=2 if FAST else 16)
rows = {}
for variant in ("full_cot", "no_cot"):
    r = evaluate_variant(smol, variant, probs, concept_neurons=concepts, max_new_tokens=48 if FAST else 80)
    rows[variant] = r
    print(f"{variant:<9} accuracy {r.accuracy:.2f}, concept neurons per token "
          f"{r.activation['all']['hits_per_token']:.1f}: {r.outcomes[0].text!r}")
assert rows["full_cot"].activation["all"]["hits_per_token"] > 0

# %% [markdown]
# The full measurement — all eight variants, correlation with accuracy, concept vs random corruption — is
# `scripts/cot_smollm.py`; its numbers and what a 135M model can and cannot do are in `docs/pretrained.md`.

# %% [markdown]
# ## 5. Attention-head detectors: previous-token, duplicate-token and induction heads
#
# `interp.circuits.heads.head_scores` scores every head of a model by the attention mass it puts on each kind's
# target keys, by default on repeated random token sequences `[BOS] A A` (an induction head attends from the second
# copy of a token to the token after its first copy). `agreement` recomputes TransformerLens's
# `head_detector.detect_head` scores on the same text and compares.

# %%
from interp.circuits.heads import agreement, head_scores  # noqa: E402
from interp.report.pretrained import AGREEMENT_TEXTS  # noqa: E402

hs = head_scores(smol, seq_len=16, n_sequences=4 if FAST else 16)
for kind in hs.kinds:
    print(f"{kind:<16}", hs.top(kind, 3))
print({k: v[:4] for k, v in hs.classify().items()})
ag = agreement(smol, AGREEMENT_TEXTS[:2], k=5)
print("max |ours - TL head_detector|:", ag.max_abs_diff)
hs.plot()

# %%
assert hs.top("induction", 1)[0][1] > 0.5 and hs.top("previous_token", 1)[0][1] > 0.5
assert all(v < 1e-4 for v in ag.max_abs_diff.values())
