# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 2. Circuits: the smallest set of heads that reproduces the answer, and why "ablated" must be spelled out
#
# Notebook 1 measured the effect of patching one component at a time. This notebook turns those effects into a
# **circuit** (Nikankin et al., *Arithmetic Without Algorithms*, ICLR 2025, §2 and App. A):
#
# 1. rank attention heads by their patching effect, averaged over positions and corrupt-sampling seeds;
# 2. keep every MLP, add heads in rank order, and after each addition measure **faithfulness** on held-out
#    prompts, with every component outside the circuit *ablated*;
# 3. stop at the smallest circuit whose faithfulness reaches 0.9.
#
# Faithfulness (Eq. 2) uses the normalized logit NL = logit(correct answer) / top logit at the last position:
#
# $$F(c) = \text{mean over prompts of } \frac{NL(c) - NL(\varnothing)}{NL(M) - NL(\varnothing)}$$
#
# where $M$ is the full model and $\varnothing$ ablates every head and MLP. So F = 1 means "as good as the
# model" and F = 0 "as bad as nothing". The catch: *what replaces an ablated component* is a choice, and the
# numbers depend on it.

# %%
import os

import numpy as np
import torch

import interp
from interp.circuits import component_effects, evaluation_pairs, find_circuit, plot_curves
from interp.circuits.ablation import ABLATIONS, mean_cache
from interp.circuits.faithfulness import faithfulness
from interp.patching.attribution import agreement, attribution_patch
from interp.tasks import parse_task

torch.set_num_threads(1)  # small batches: one thread is fastest on a shared CPU
FAST = os.environ.get("INTERP_FAST") == "1"
N = 25 if FAST else 50  # prompts per operator, for discovery and (separately) for evaluation
SEEDS = (42,) if FAST else (42, 412, 32879)

model = interp.load_model("toy-arith")
task = parse_task("arith")  # + - * /, operands 0-99, every number a single token

# %% [markdown]
# ## Step 1: component effects, averaged over seeds
#
# `component_effects` patches every head (`hook_z`) and every MLP (`hook_post`) at every position with the
# activation of a corrupt prompt (a correct prompt of *any* operator, as in the paper) and averages the indirect
# effect over seeds that only change the corrupt draw. The heatmap shows the effect averaged over positions 1–4
# (everything but BOS), the number the ranking uses.

# %%
eff = component_effects(model, task, operator="+", seeds=SEEDS, n_per_op=N)
print("top heads by position-averaged effect:", eff.head_ranking()[:5])
eff.plot()

# %% [markdown]
# A warning about Eq. 1 on a confident model: its second term divides by the *patched* probability of the clean
# answer, so a patch that drives P\*(r) to 1e-7 on a single prompt contributes ~1e7. Mean effects are then
# dominated by a few prompts (compare the mean with the median over prompts below), and their standard errors are
# as large as the means. The ranking still works here, but look at the spread before reading the numbers.

# %%
l, h = eff.head_ranking()[0]
print(f"L{l}H{h}: mean effect at '=' {eff.heads.effects[l, -1, h]:.3g} ± {eff.heads.stderr[l, -1, h]:.3g} (stderr)")

# %% [markdown]
# ## Step 2: the mean-ablation cache
#
# The paper replaces an ablated component by its **mean activation per position over every string `x op y=`**, with
# x and y over the whole operand range and all four operators — illegal ones (`3-7=`, `5/0=`) included, so each
# operator weighs the same. That is 4 × 100 × 100 = 40,000 strings here.

# %%
mean = mean_cache(model, task, operand_max=49 if FAST else None)
print({k: tuple(v.shape) for k, v in list(mean.items())[:2]})

# %% [markdown]
# Sanity check of Eq. 2 on held-out evaluation prompts (never the discovery prompts the ranking saw): keeping
# everything gives exactly 1, keeping nothing exactly 0.

# %%
ev = evaluation_pairs(model, task, operator="+", n_eval=N, n_discovery=N)
all_heads = {(l, h) for l in range(4) for h in range(4)}
full = faithfulness(model, ev.clean_tokens, ev.clean_answers, keep_heads=all_heads, keep_mlps=range(4), mean=mean)
empty = faithfulness(model, ev.clean_tokens, ev.clean_answers, keep_heads=(), keep_mlps=(), mean=mean)
print(full.faithfulness, empty.faithfulness)
assert full.faithfulness == 1.0 and empty.faithfulness == 0.0

# %% [markdown]
# ## Step 3: the sweep
#
# `find_circuit` adds heads in rank order (all four MLPs always kept), records faithfulness after each addition,
# picks the first circuit at or above the target, and re-scores it under every ablation.

# %%
plus = find_circuit(model, task, operator="+", effects=eff, mean=mean, n_per_op=N, n_eval=N, seeds=SEEDS)
print(f"{len(plus.heads)} of 16 heads, F = {plus.faithfulness:.3f}:", plus.labels)
assert plus.faithfulness >= 0.9 and len(plus.heads) < 16
assert plus.curve[-1]["faithfulness"] == 1.0  # every head and MLP kept = the model itself
plus.plot()

# %%
plus.diagram()

# %% [markdown]
# The toy model spreads its arithmetic over many of its 16 heads: the circuit is small in MLP-free terms only for
# some operators. One circuit per operator, as in the paper:

# %%
circuits = {op: find_circuit(model, task, operator=op, mean=mean, n_per_op=N, n_eval=N, seeds=SEEDS)
            for op in task.operators}
for op, c in circuits.items():
    sens = ", ".join(f"{a} {v:.2f}" for a, v in c.sensitivity.items())
    print(f"{op}: {len(c.heads):2d} heads, F(mean) = {c.faithfulness:.3f}   same circuit under: {sens}")
assert all(c.faithfulness >= 0.9 for c in circuits.values())
plot_curves(circuits)

# %% [markdown]
# ### Many candidate circuits per forward pass
#
# The sweep scores one candidate per added head. `interp.circuits.batched.score_circuits` stacks candidates on the
# batch axis with a keep mask per row (as many as fit the memory budget, `max_memory`), and gives the same numbers
# as scoring them one per pass; `find_circuit`'s sweep uses it. Where the cone engine supports the model it runs
# these passes on the engine's explicit forward and computes each layer once per *distinct* ablation state
# (`interp.circuits.shared_forward`): the sweep's candidates are nested, so candidate `k+1` repeats candidate `k`'s
# computation up to the layer of the head it adds, and that part is computed once. `engine=False` runs hooked
# passes instead. Here the first six prefixes of the ranking, scored all three ways:

# %%
from interp.circuits.batched import score_circuits  # noqa: E402
from interp.circuits.faithfulness import FaithfulnessEvaluator  # noqa: E402

evaluator = FaithfulnessEvaluator(model, ev.clean_tokens, ev.clean_answers, ablation="mean", mean=mean)
ranking = eff.head_ranking()
candidates = [(ranking[:k], range(4)) for k in range(1, 7)]
batched = score_circuits(evaluator, candidates)  # shared layers on the engine
hooked = score_circuits(evaluator, candidates, engine=False)  # stacked hooked passes
one_by_one = [evaluator.score(keep_heads=h, keep_mlps=m) for h, m in candidates]
for k, (b, h, o) in enumerate(zip(batched, hooked, one_by_one), 1):
    print(f"top {k} heads: shared F = {b.faithfulness:.6f}   hooked F = {h.faithfulness:.6f}   "
          f"one per pass F = {o.faithfulness:.6f}")
assert all(abs(b.faithfulness - o.faithfulness) < 1e-5 and abs(h.faithfulness - o.faithfulness) < 1e-5
           for b, h, o in zip(batched, hooked, one_by_one))

from interp.circuits.shared_forward import SharedForwardScorer, engine_for  # noqa: E402

scorer = SharedForwardScorer(evaluator, engine_for(evaluator))
_ = list(scorer.nl_chunks([(ranking[:k], range(4)) for k in range(len(ranking) + 1)]))  # the whole sweep
print(f"whole sweep: {scorer.stats['layer_rows']:,} layer-rows computed instead of "
      f"{scorer.stats['layer_rows_unshared']:,} (one pass per candidate)")
assert scorer.stats["layer_rows"] < scorer.stats["layer_rows_unshared"]

# %% [markdown]
# ## Why the ablation choice matters
#
# The same circuit, scored under zero ablation (replace by 0, far off the model's distribution) or resample
# ablation (replace by the value on another prompt), can look much more or much less faithful. And a sweep run
# under a different ablation picks a different circuit.

# %%
spread = {op: max(c.sensitivity.values()) - min(c.sensitivity.values()) for op, c in circuits.items()}
print({op: round(s, 3) for op, s in spread.items()})
assert max(spread.values()) > 0.05  # a faithfulness number without its ablation is not a result

by_ablation = {a: find_circuit(model, task, operator="*", ablation=a, mean=mean, n_per_op=N, n_eval=N, seeds=SEEDS,
                               sensitivity=(a,)) for a in ABLATIONS}
print({a: len(c.heads) for a, c in by_ablation.items()})
plot_curves(by_ablation, title="Operator *: the sweep under each ablation")

# %% [markdown]
# ## Ranking by attribution patching, verified by exact patching
#
# Attribution patching estimates every patching effect from 2 forwards + 1 backward, with a first-order Taylor
# expansion. It is cheap, but only as good as the linearization: compare it with exact patching before trusting it.
# On this model it ranks single neurons well and whole heads poorly.

# %%
pairs = task.pairs(model, n_per_op=N, seed=42).by_group()["+"]
rows = {}
for site, pos, k in [("heads", "all", 5), ("mlps", "all", 3), ("neurons", "last", 50)]:
    a = attribution_patch(model, pairs, site=site, positions=pos)
    e = interp.patch(model, pairs, site=site, positions=pos, progress=False)
    rows[site] = agreement(a, e, k=k)
    print(f"{site:8s} Spearman {rows[site].spearman:.2f}   top-{k} overlap {rows[site].top_k_overlap:.2f}")
assert rows["neurons"].spearman > rows["heads"].spearman

attr = find_circuit(model, task, operator="+", rank="attribution", mean=mean, n_per_op=N, n_eval=N, seeds=SEEDS)
print(f"attribution-ranked circuit: {len(attr.heads)} heads (exact ranking: {len(plus.heads)}),",
      "agreement with exact:", {k: round(v["spearman"], 2) for k, v in attr.meta["agreement"].items()})
assert np.isfinite(attr.faithfulness)

# %% [markdown]
# ## Path patching: which heads act directly on the answer?
#
# Activation patching gives a head's *total* effect. Path patching (Wang et al., 2023) keeps only chosen paths:
# with `receivers="logits"` the sender head's output is patched while every other head stays frozen at its clean
# value, so the effect reaches the answer only through the residual stream (and the MLPs, unless
# `freeze_mlps=True`). With receiver heads, it measures how much a head acts *through* them. A head with a large
# total effect but a small direct one works through later components.

# %%
from interp.patching.path import path_patch

total = interp.patch(model, pairs, site="heads", positions="last", metric="logit_diff", progress=False)
direct = path_patch(model, pairs, receivers="logits", metric="logit_diff", freeze_mlps=True, progress=False)
base = direct.baseline["base"]
print("unpatched logit diff", round(base, 2))
for lyr in range(model.cfg.n_layers):
    print(f"L{lyr}: direct", np.round(direct.effects[lyr] - base, 2), " total (last position)",
          np.round(total.values(pos=total.index["pos"][-1])[lyr] - base, 2))
# direct: the head patched at every position, all else frozen; total: patched at the last position only, all else
# recomputed. Heads whose total effect exceeds their direct one act through the MLPs or later heads.
assert direct.effects.shape == (model.cfg.n_layers, model.cfg.n_heads)
direct.plot()

# %% [markdown]
# **Take-aways.** Report a circuit with its ablation, its held-out evaluation set and its sensitivity; rank with
# exact patching (or verify an attribution ranking against it); and expect a small model to need a larger share
# of its heads than Llama3-8B's 6 of 1,024.
