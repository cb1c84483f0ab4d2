# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 6. Edge circuits: which *connections* carry the answer (EAP, EAP-IG, exact edge patching, MIB scores)
#
# Notebook 2 found circuits of **nodes**: heads and MLPs kept whole, everything else ablated. A node circuit keeps
# every connection between its nodes, useful or not. An **edge circuit** keeps individual sender→receiver
# connections: the input, each head and each MLP *send* into the residual stream; each head's query, key and value
# input, each MLP input and the logits *receive*. Ablating an edge means: the receiver reads the sender's output on
# the corrupt prompt instead of its clean output, and nothing else changes.
#
# Scoring every edge by patching it alone is exact but slow, so edges are usually scored by gradients:
#
# * **EAP**: (corrupt − clean sender output) · ∂metric/∂(receiver input), one backward pass;
# * **EAP-IG** (Hanna et al. 2024): the same with the gradient averaged along a path from the corrupt to the clean
#   input (`eap-ig-inputs`) or each sender's activations (`eap-ig-activations`).
#
# Circuits are then compared the MIB way (Mueller et al. 2025): faithfulness f = (m(C) − m(∅)) / (m(N) − m(∅)) of
# the top-k edges at budgets from 0.1% to 100% of all edges; **CPR** is the area under f (higher is better),
# **CMD** the area under |1 − f| (lower is better). MIB takes the two from two rankings: CPR from the *signed* one
# (the edges that help the behaviour most first) and CMD from the |score| one; `ev.mib_scores` does the same.

# %%
import os

import numpy as np
import torch

import interp
from interp.circuits.edges import EdgeEvaluator, edge_scores, edges_of_nodes, random_curve
from interp.circuits.edges.plots import plot_mib_curve

torch.set_num_threads(1)
FAST = os.environ.get("INTERP_FAST") == "1"
N = 16 if FAST else 32  # prompt pairs for scoring, and separately for evaluation

model = interp.load_model("toy-arith")
task = interp.parse_task("arith:+")
disc = task.pairs(model, n_per_op=N, split="discovery")
held = task.pairs(model, n_per_op=N, split="evaluation")

# %% [markdown]
# ## The graph
#
# toy-arith has 4 layers of 4 heads: 21 senders (input, 16 heads, 4 MLPs) and 53 receivers (q, k, v of 16 heads,
# 4 MLPs, logits). An edge exists when the sender writes before the receiver reads.

# %%
scores = {m: edge_scores(model, disc, m) for m in ("eap", "eap-ig-inputs", "eap-ig-activations", "exact")}
g = scores["eap"].graph
print(g.describe(), g.counts())
scores["eap-ig-inputs"].top(8)

# %% [markdown]
# ## Where EAP and EAP-IG disagree with exact edge patching
#
# Rank correlation with the exact effects over every edge. Plain EAP linearizes at the clean point; the metric
# saturates (a confident model's logit difference does not move linearly), so its ranking is the least faithful.

# %%
def spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


exact = scores["exact"].scores
rho = {m: spearman(s.scores, exact) for m, s in scores.items() if m != "exact"}
print(rho)
worst = np.argsort(-np.abs(scores["eap"].scores - exact))[:5]
for i in worst:
    print(f"{g.names[i]:<22} exact {exact[i]:+.3f}  eap {scores['eap'].scores[i]:+.3f}  "
          f"eap-ig {scores['eap-ig-inputs'].scores[i]:+.3f}")

# %%
assert rho["eap-ig-inputs"] > rho["eap"]  # integrated gradients track exact patching better than plain EAP

# %% [markdown]
# ### The interpolation points: the paper's or the code's
#
# EAP-IG averages the gradient at `m` points between the ablated input (alpha = 0) and the clean one (alpha = 1).
# The paper sums `k/m` for `k = 1..m` (a right Riemann sum: with `m = 1` it is plain EAP); the EAP-IG/MIB code
# sums `k = 0..m-1` (a left sum: it includes the fully ablated input and never the clean one). `ig_rule` chooses
# (`"right"`, the default, or `"left"`; CLI `--ig-rule`). Both estimate the same integral; how close each gets to
# exact patching is a property of the model:

# %%
left = edge_scores(model, disc, "eap-ig-inputs", ig_rule="left")
rho_left = spearman(left.scores, exact)
print(f"Spearman vs exact: right (paper) {rho['eap-ig-inputs']:.3f}   left (MIB code) {rho_left:.3f}")
assert left.meta["ig_rule"] == "left" and not np.allclose(left.scores, scores["eap-ig-inputs"].scores)

# %% [markdown]
# ## CPR and CMD on held-out prompts

# %%
ev = EdgeEvaluator(model, held)
budgets = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
mib = {m: ev.mib_scores(s, budgets=budgets) for m, s in scores.items()}
rand = random_curve(ev, draws=3 if FAST else 5, budgets=budgets)
for m, r in mib.items():
    print(f"{m:<20} CPR {r['cpr']:.3f} (signed ranking)  CMD {r['cmd']:.3f} (|score| ranking)")
print(f"{'random':<20} CPR {rand['cpr']:.3f}  CMD {rand['cmd']:.3f}")
curves = {**{f"{m}, signed": r["signed"] for m, r in mib.items()},
          **{f"{m}, |score|": r["absolute"] for m, r in mib.items()}, "random": rand}
plot_mib_curve(curves)

# %% [markdown]
# On toy-arith plain EAP gets the sign of some of the strongest edges wrong (the disagreements printed above), so
# its *signed* ranking puts edges that do not help first and its CPR falls to about random, while its |score|
# ranking still finds them.

# %%
assert mib["eap-ig-inputs"]["cmd"] < rand["cmd"]
assert mib["eap-ig-inputs"]["cpr"] > rand["cpr"]
assert mib["eap-ig-inputs"]["cpr"] > mib["eap"]["cpr"]

# %% [markdown]
# ## Node circuits vs edge circuits at equal faithfulness
#
# A node circuit is an edge circuit too: every edge between its nodes. Rank nodes by the summed |EAP-IG| score of
# their outgoing edges, grow the node set, and count how many edges the node circuit needs to reach the
# faithfulness an edge circuit reaches with far fewer edges.

# %%
eig = scores["eap-ig-inputs"]
node_score = np.zeros(len(g.senders))
np.add.at(node_score, g.edge_index[0], np.abs(eig.scores))
order = [i for i in np.argsort(-node_score) if i != 0]
target = 0.8
node_edges = None
for k in range(1, len(order) + 1):
    keep = [g.senders[i] for i in order[:k]]
    heads = [(int(n[1:].split(".")[0]), int(n.split(".h")[1])) for n in keep if n.startswith("a")]
    mlps = [int(n[1:]) for n in keep if n.startswith("m")]
    e = edges_of_nodes(g, heads, mlps)
    f = ev.score(e).faithfulness
    if f >= target:
        node_edges = (k, len(e), f)
        break
edge_circ = None
for n in range(1, g.n_edges + 1, 2):
    c = eig.circuit(n)
    if c.edges and ev.score(c).faithfulness >= target:
        edge_circ = c
        break
print(f"node circuit: {node_edges[0]} nodes, {node_edges[1]} edges, f = {node_edges[2]:.3f}")
print(f"edge circuit: {len(edge_circ.edges)} edges, f = {ev.score(edge_circ).faithfulness:.3f}")
edge_circ.plot()

# %%
assert len(edge_circ.edges) < node_edges[1]  # the edge circuit is smaller at equal faithfulness

# %% [markdown]
# ## The IOI edge circuit of SmolLM2-135M
#
# SmolLM2 has grouped-query attention (9 query heads share 3 key/value heads). Every query head keeps its own
# k and v receivers (MIB's convention), which gives 123,211 edges. On a CPU a few prompts are enough to see the
# name-mover edges into the logits; the full MIB table is in docs/benchmarks-edges.md.

# %%
smol = interp.load_model("smollm2-135m")
ioi = interp.parse_task("ioi:8" if FAST else "ioi:16")
ioi_disc = ioi.pairs(smol, split="discovery")
ioi_scores = edge_scores(smol, ioi_disc, "eap-ig-inputs", ig_steps=2 if FAST else 5, batch_size=8)
print(ioi_scores, f"{ioi_scores.seconds:.0f} s")
ioi_scores.top(10)

# %%
ioi_ev = EdgeEvaluator(smol, ioi.pairs(smol, split="evaluation"), batch_size=8)
n_keep = int(0.05 * ioi_scores.graph.n_edges)
ioi_circ = ioi_scores.circuit(n_keep)
f_ioi = ioi_ev.score(ioi_circ).faithfulness
print(f"top 5% edges ({n_keep}) -> {len(ioi_circ.edges)} after pruning, faithfulness {f_ioi:.3f}")
ioi_circ.plot(max_edges=150)

# %%
assert f_ioi > 0.3  # 5% of the edges keep a substantial share of the logit difference on held-out prompts
