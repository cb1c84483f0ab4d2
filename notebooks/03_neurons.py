# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 3. Neurons as heuristics: what the important MLP neurons do, and proof that it matters
#
# Notebooks 1 and 2 found that MLPs at the last position carry the answer. This notebook opens the MLPs
# (Nikankin et al., *Arithmetic Without Algorithms*, ICLR 2025, §3–§4):
#
# 1. **importance** — rank every neuron of `mlp.hook_post` at the last position by attribution patching;
# 2. **activation maps** — look at a neuron's activation over *every* legal `(op1, op2)` and at the tokens its
#    value vector promotes (logit lens);
# 3. **Algorithm 1** — name the *heuristic* a neuron implements (op1 in a range, op2 ≡ m mod n, result in a
#    range, ...) by how many of its top-activating prompts satisfy it;
# 4. **knockouts** — zero the neurons of a heuristic, or the heuristics a prompt needs, and watch accuracy fall
#    much further than when as many random important neurons are zeroed.
#
# Everything runs on `toy-arith` (numbers 0–999 are single tokens, operands 0–99), on CPU.

# %%
import os

import numpy as np

import interp
from interp.neurons import OperandGrid, classify_maps, neuron_map, top_value_tokens
from interp.neurons.importance import faithfulness_curve, importance_by_operator, neuron_importance
from interp.neurons.knockout import class_knockout, failure_analysis, prompt_knockout
from interp.neurons.pipeline import classify_neurons
from interp.tasks import parse_task

FAST = os.environ.get("INTERP_FAST") == "1"
N_PER_OP = 20 if FAST else 50
TOP_K = 30 if FAST else 50

model = interp.load_model("toy-arith")
task = parse_task("arith")
print(model.cfg.n_layers, "layers, d_mlp =", model.cfg.d_mlp)

# %% [markdown]
# ## 1. Which neurons matter? Attribution patching, ranked by mean + std
#
# For each correct clean prompt and a corrupt partner (another correct prompt, any operator), attribution
# patching estimates the indirect effect (Eq. 1) of replacing one neuron's activation at the last position by its
# corrupt value: `(a_corrupt − a_clean) · ∂IE/∂a`. One backward pass scores all 2,048 neurons. The paper's code
# ranks neurons by the **mean + std** of these per-prompt scores.

# %%
importance = importance_by_operator(model, task, n_per_op=N_PER_OP, method="atp")
imp = importance["+"]
for row, layer in enumerate(imp.layers):
    s = np.sort(imp.score[row])[::-1]
    print(f"L{layer}: top-5 scores {np.round(s[:5], 3).tolist()}, median {np.median(s):.4f}")
imp.plot()

# %% [markdown]
# AtP is a first-order estimate of a non-linear metric, so we check the ranking against **exact** patching of
# each neuron (one patched forward pass per neuron). The top-k sets largely agree.

# %%
pairs = task.pairs(model, n_per_op=N_PER_OP).by_group()["+"]
exact = neuron_importance(model, pairs, method="exact")
overlap = np.mean([len(set(imp.top(k=TOP_K)[l]) & set(exact.top(k=TOP_K)[l])) / TOP_K for l in imp.layers])
print(f"top-{TOP_K} overlap between AtP and exact patching: {overlap:.2f}")
assert overlap > 0.6

# %% [markdown]
# ## 2. How many neurons does the circuit need? Faithfulness vs top-k
#
# Keep every head, and in every layer only the top-k neurons (the rest mean-ablated over the balanced grid of
# all operators); measure faithfulness (Eq. 2) on held-out prompts. In Llama3-8B ~1.5% of the neurons per layer
# suffice; the 512-wide toy MLPs are denser.

# %%
ks = [0, 25, 100, 512] if FAST else [0, 10, 25, 50, 100, 200, 512]
curve = faithfulness_curve(model, task, {"+": importance["+"], "-": importance["-"]}, ks=ks, n_per_op=N_PER_OP)
for op, v in curve.values.items():
    print(op, dict(zip(ks, np.round(v, 2).tolist())))
assert all(abs(v[-1] - 1) < 1e-6 for v in curve.values.values())  # keeping everything is the full model
curve.plot()

# %% [markdown]
# ## 3. Looking at one neuron: K map, value vector, KV map
#
# The **K map** is the neuron's activation at the last position over every legal `(op1, op2)`. The **value
# vector** `W_out[n]` is what the neuron writes; `W_out[n] @ W_U` says which tokens it promotes. The **KV map**
# multiplies the K map by the logit of each prompt's *result* token: where the neuron pushes the right answer.

# %%
top_plus = imp.top(k=TOP_K)
layer = imp.layers[-1]
neuron = top_plus[layer][0]
nm = neuron_map(model, task, "+", layer, neuron)
print(f"L{layer}N{neuron} promotes:", [t for t, _ in top_value_tokens(model, layer, neuron, k=10)])
nm.plot()

# %%
nm.plot(which="kv")

# %% [markdown]
# ## 4. Algorithm 1: naming the heuristic
#
# A heuristic H (say "result ∈ [50, 60)") holds on a set of prompts P_H. Take the neuron's top-k prompts by its
# map, with k = |P_H|, and score the fraction of them in P_H; the neuron implements H if the score is at least
# t = 0.6. Heuristics on the **result** are *direct* and read from the KV map; heuristics on the **operands** are
# *indirect* and read from the K map.
#
# First a sanity check on synthetic maps whose answer we know: a neuron firing for op1 ∈ [20, 30), one for
# op2 ≡ 3 (mod 7), and one whose KV map is high for results in [50, 60).

# %%
g = OperandGrid.synthetic("+")
rng = np.random.default_rng(0)
k_map = np.stack([(g.a >= 20) & (g.a < 30), g.b % 7 == 3, np.zeros(g.n, bool)], 1) + rng.normal(0, 0.05, (g.n, 3))
kv_map = np.stack([np.zeros(g.n), np.zeros(g.n), (g.result >= 50) & (g.result < 60)], 1) + rng.normal(0, 0.05, (g.n, 3))
found = classify_maps(g, k_map, kv_map)
print([[(h.name, h.kind) for h in row] for row in found])
assert [[h.name for h in row] for row in found] == [["op1_range_20_30"], ["op2_3mod7"], ["result_range_50_60"]]

# %% [markdown]
# Now the real neurons: every operator's top neurons per layer, each over its operator's full grid. The
# scores of a neuron's match can be recomputed by hand from its map.

# %%
top = {op: i.top(k=TOP_K) for op, i in importance.items()}
classification = classify_neurons(model, task, top, importance=importance)
for op, oc in classification.ops.items():
    largest = [(name, len(v)) for name, v in list(oc.by_heuristic().items())[:4]]
    print(f"{op}: {100 * oc.classified_fraction:.0f}% of {len(oc.neurons)} top neurons classified; largest {largest}")
print(f"classification took {classification.seconds:.1f} s")
assert classification.classified_fraction > 0.5

# %%
best = next(n for n in classification.ops["+"].neurons if n.heuristics)
h = best.heuristics[0]
grid = OperandGrid.from_task(model, task, "+")
from interp.neurons import neuron_maps, parse_heuristic  # noqa: E402

maps = neuron_maps(model, grid, {best.layer: [best.index]})
x = maps.kv[:, 0] if h.kind == "direct" else maps.k[:, 0]
holds = parse_heuristic(h.name).holds(grid.a, grid.b, grid.result)
k = int(holds.sum())
by_hand = holds[np.argsort(-x)[:k]].mean()
print(f"L{best.layer}N{best.index}: {h.name} ({h.kind}) classifier {h.score:.3f}, by hand {by_hand:.3f}")
assert abs(by_hand - h.score) < 0.02  # equal up to how ties in the map are broken

# %% [markdown]
# ## 5. Knockouts: the heuristics are used
#
# **Heuristic-class knockout (Fig. 7).** Zero (at every position) all neurons of one heuristic class and measure
# greedy accuracy on prompts the heuristic applies to ("related") and on as many other prompts.

# %%
ck = class_knockout(model, task, classification, min_neurons=10, max_prompts=50 if FAST else 100)
for op, (rel, unrel) in ck.means().items():
    print(f"{op}: related {rel:.2f}, unrelated {unrel:.2f}")
assert ck.means()["+"][0] < ck.means()["+"][1]
ck.plot()

# %% [markdown]
# **Prompt-guided knockout (Fig. 8).** For each held-out prompt, collect the heuristics it satisfies, rank their
# neurons by how many of those heuristics they implement, and zero the top L per layer; the control zeroes as many
# random neurons from the same layers' top neurons.

# %%
per_layer = [0, 5, 10, 15] if FAST else [0, 2, 5, 10, 15, 20, 25]
knock = {op: prompt_knockout(model, task, classification, op=op, per_layer=per_layer,
                             n_prompts=N_PER_OP, n_random=1 if FAST else 3) for op in task.operators}
for op, r in knock.items():
    print(op, "heuristic", np.round(r.heuristic_accuracy, 2).tolist(),
          " random", np.round(r.random_accuracy, 2).tolist())
heur = np.mean([r.heuristic_accuracy[-1] for r in knock.values()])
rand = np.mean([r.random_accuracy[-1] for r in knock.values()])
assert heur < rand - 0.15, (heur, rand)
knock["+"].figure(knock)

# %% [markdown]
# **Why does the model fail? (Fig. 9).** Compare correct and incorrect prompts: how many heuristic neurons are
# associated with each, and how much they push the correct answer's logit (activation × value-vector logit).
# The paper finds that incorrect prompts do not lack heuristics; their heuristics promote the answer too weakly.

# %%
fa = failure_analysis(model, task, classification, op="*", n=N_PER_OP)
print({k: round(v, 2) for k, v in fa.summary().items()})
fa.plot()

# %% [markdown]
# ## 6. Across training (Fig. 10)
#
# Do the heuristics appear at once, or assemble gradually? `interp train-toy --out run --checkpoint-every 500`
# saves loadable checkpoints and `interp dynamics --checkpoints run --task arith --out dynamics.json` re-runs this
# notebook's pipeline at every one. Here a deliberately tiny toy (2 layers, operands 0-9) trains in seconds so the
# whole loop runs in the notebook. Per step it reports:
#
# * the **intersection ratio** (Fig. 10a): the share of the final model's (operator, heuristic, layer, neuron)
#   matches already present;
# * the **mutual-neuron faithfulness** (Fig. 10b): faithfulness of the circuit keeping all heuristic neurons of the
#   step vs only those that already play their final role — the paper finds the mutual ones carry ~79%;
# * prompt-guided vs random **knockouts** (Fig. 10c).

# %%
import tempfile
from pathlib import Path

from interp.models.toy import ToyArithConfig, train_toy
from interp.neurons.dynamics import training_dynamics

run = Path(tempfile.mkdtemp()) / "run"
tiny = ToyArithConfig(n_numbers=100, operand_max=9, n_layers=2, d_model=32, n_heads=2, d_mlp=64, steps=300,
                      batch_size=128, lr=3e-3, held_out_frac=0.0)
train_toy(tiny, checkpoint_dir=run / "checkpoints", checkpoint_every=100, progress=False)
dyn = training_dynamics(run / "checkpoints", parse_task("arith:+-:0-9"), top_k=16, n_per_op=8,
                        knockout_per_layer=[2, 4], knockout_prompts=8, max_accuracy_prompts=None)
share = dyn.mutual_share()
for i, step in enumerate(dyn.steps):
    print(f"step {step}: accuracy {[round(a[i], 2) for a in dyn.accuracy.values()]}, "
          f"intersection {dyn.intersection[i]:.2f}, mutual/all faithfulness {share[i]:.2f}")
dyn.plot()
