# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 1. Which components carry the answer? Exact activation patching on `toy-arith`
#
# This notebook teaches the first step of circuit discovery (Nikankin et al., *Arithmetic Without Algorithms*,
# ICLR 2025, §2): run the model on a **clean** prompt, replace one component's activation by its value on a
# **corrupt** prompt (a different problem with a different answer), and measure how much the prediction moves.
#
# We use `toy-arith`, a 4-layer transformer that ships with `interp` and whose vocabulary has every number
# 0–999 as a single token — the setting in which the paper's method is faithful.

# %%
import os

import numpy as np

import interp
from interp.tasks import parse_task

FAST = os.environ.get("INTERP_FAST") == "1"
N_PER_OP = 20 if FAST else 50

model = interp.load_model("toy-arith")
print(model.cfg.n_layers, "layers,", model.cfg.n_heads, "heads per layer, d_mlp =", model.cfg.d_mlp)

# %% [markdown]
# ## The task and the model's accuracy
#
# Prompts follow the paper's template `"{a}{op}{b}="` with BOS prepended: positions are 0 BOS, 1 op1,
# 2 operator, 3 op2, 4 `=`. The legal grid keeps results non-negative and single-token.

# %%
task = parse_task("arith")  # all four operators, operands 0-99
acc = task.accuracy(model, max_prompts=500 if FAST else None)
for op, a in acc.accuracy.items():
    print(f"{op}: {100 * a:.1f}% of {acc.n_total[op]} prompts")
assert all(a > 0.9 for a in acc.accuracy.values())

# %% [markdown]
# ## Clean/corrupt pairs
#
# Patching uses only prompts the model answers correctly. Each clean prompt gets a corrupt partner drawn from the
# correct prompts of **all** operators (the paper's choice) with a different answer; `seed` changes only that draw.

# %%
pairs = task.pairs(model, n_per_op=N_PER_OP, seed=0)
for c, k in list(zip(pairs.clean, pairs.corrupt))[:3]:
    print(f"clean {c}   corrupt {k}")
print(pairs.clean_tokens.shape, pairs.position_labels)

# %% [markdown]
# ## Patching MLPs and attention heads
#
# `interp.patch` replaces one site at one position for every (layer, position[, head]) and reports the mean
# **indirect effect** (Eq. 1): ½[(P\*(r′) − P(r′))/P(r′) + (P(r) − P\*(r))/P\*(r)], large when the patch moves
# probability from the clean answer r to the corrupt answer r′. Many patches are stacked in one forward pass.

# %%
add = pairs.by_group()["+"]
mlps = interp.patch(model, add, site="mlps", positions="all", progress=False)
heads = interp.patch(model, add, site="heads", positions="all", progress=False)
print(mlps.n_forward_passes, "forward passes for", mlps.effects.size, "MLP patches")
mlps.plot()

# %%
heads.plot()

# %% [markdown]
# Reading the maps: BOS is identical in clean and corrupt prompts, so patching it changes nothing — a sanity
# check. The strongest effects sit in MLPs; heads matter at the last position, where they move operand and
# operator information to the `=` token.

# %%
assert np.allclose(mlps.values(pos=0), 0, atol=1e-5) and np.allclose(heads.values(pos=0), 0, atol=1e-5)
print("top MLP sites:", mlps.top(3))
print("top head sites:", heads.top(3))
assert mlps.effects.max() > heads.effects.max()

# %% [markdown]
# ## Results are data
#
# Every result has named axes and labels, converts to a tidy DataFrame, and saves/loads as JSON.

# %%
df = heads.to_frame()
print(df.sort_values("effect", ascending=False).head())
import tempfile  # noqa: E402

path = os.path.join(tempfile.mkdtemp(), "heads.json")
heads.save(path)
assert np.allclose(interp.PatchResult.load(path).effects, heads.effects)

# %% [markdown]
# ## The same sweep is TransformerLens's `patching` module, only faster
#
# `interp`'s exact patching is tested to equal `transformer_lens.patching` on the same inputs (max difference
# ≤ 1e-4). Here is the check for the residual stream on a few prompts, with the logit-difference metric.
# (With Eq. 1 the check is relative: IE divides by probabilities near 1e-8 on this confident model, so float32
# rounding of ~1e-6 in the logits already moves IE values of 1e7 by whole units, in TL and interp alike.)

# %%
import torch  # noqa: E402
import transformer_lens.patching as tlp  # noqa: E402

from interp.metrics import MetricContext, make_metric  # noqa: E402

small = add.select(range(8))
ours = interp.patch(model, small, site="resid", positions="all", metric="logit_diff", progress=False)
with torch.no_grad():
    base = model(small.clean_tokens)[:, -1]
    src, cache = model.run_with_cache(small.corrupt_tokens)
f = make_metric("logit_diff", MetricContext(base, src[:, -1], small.clean_answers, small.corrupt_answers))
tl = tlp.get_act_patch_resid_pre(model, small.clean_tokens, cache, lambda lg: f(lg[:, -1]).mean())
print("max |interp - TL| =", float((torch.tensor(ours.effects) - tl).abs().max()))
assert float((torch.tensor(ours.effects) - tl).abs().max()) < 1e-4

# %% [markdown]
# ## Every position at once: `positions="together"`
#
# The sweep users run first on a new task patches each head at *every* position at once (TransformerLens's
# `get_act_patch_attn_head_out_all_pos`). `positions="together"` does this for heads, MLPs, resid, attn_out and
# mlp_out, through the same cone engine (recomputing from the first position where clean and corrupt differ), and the
# result simply has no `pos` axis. Checked against TL's function here:

# %%
together = interp.patch(model, small, site="heads", positions="together", metric="logit_diff", progress=False)
tl_all = tlp.get_act_patch_attn_head_out_all_pos(model, small.clean_tokens, cache, lambda lg: f(lg[:, -1]).mean())
print(together.axes, together.effects.shape, "max |interp - TL| =",
      float((torch.tensor(together.effects) - tl_all).abs().max()))
assert together.axes == ("layer", "head")
assert float((torch.tensor(together.effects) - tl_all).abs().max()) < 1e-4
