"""Circuit evaluation through the engine's explicit forward, computing each layer once per distinct ablation state.

A circuit's forward pass up to layer ``l`` depends only on which heads and MLP units it ablates in layers ``< l``.
The circuits of the faithfulness sweep are nested (circuit ``k+1`` adds one component to circuit ``k``), so most of
them agree on the early layers: circuit ``k+1`` computes exactly what circuit ``k`` computes up to the layer of the
component it adds. `SharedForwardScorer` walks the layer stack once for a group of circuits and, at each layer,
computes only the distinct states: rows that entered the layer in the same state and ablate the same units in it
leave it in the same state. For the nested sweep of ``K`` heads over ``L`` layers that is about half of the
``K x L`` layer evaluations of one pass per circuit (the added component's layer is spread over the stack), and the
unembedding is computed only at the last position (a bridge computes logits at every position). Any list of
circuits is valid input; unrelated circuits simply share less.

The explicit forward is `interp.patching.engine.ConeEngine` (verified against the bridge); ablation replaces
``hook_z`` / ``hook_post`` values exactly as `interp.circuits.ablation.ablation_hooks` does (mean: per position;
zero; resample: the resample prompt's own activation, from the engine's forward). The normalized logits equal the
hooked evaluation's up to float32 summation order (tests: ``<= 1e-5`` relative, the same chosen circuit). Models
the engine does not support (or attached hooks) fall back to `interp.circuits.batched.BatchedFaithfulness`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from interp.circuits.batched import BatchedFaithfulness, CircuitSpec
from interp.circuits.faithfulness import FaithfulnessEvaluator
from interp.metrics import normalized_logit
from interp.sites import hook_name

__all__ = ["SharedForwardScorer", "engine_for"]


def engine_for(evaluator: FaithfulnessEvaluator) -> Any:
    """The verified `ConeEngine` of the evaluator's model, or None (with the reason logged) where it does not apply."""
    from interp.patching.engine import ConeEngine

    return ConeEngine.verified(evaluator.model, evaluator.tokens, fallback="circuit evaluation by hooked passes")


class SharedForwardScorer(BatchedFaithfulness):
    """`BatchedFaithfulness` whose passes run on the engine's explicit forward with per-layer state sharing.

    Same constructor, masks, ablation values, budget and results as `BatchedFaithfulness`; ``stats`` adds
    ``layer_rows`` (rows x layers computed) and ``layer_rows_unshared`` (what one pass per circuit would compute).
    """

    def __init__(self, evaluator: FaithfulnessEvaluator, engine: Any, **kw: Any) -> None:
        super().__init__(evaluator, **kw)
        self.engine = engine
        self.d_model = int(evaluator.model.cfg.d_model)
        # half the budget for one pass's working memory, half for the group's states (`_group_size`)
        self.rows_per_pass = max(1, min(self.rows_per_pass, int(self.budget // 2 // self.row)))
        self.stats.update({"layer_rows": 0, "layer_rows_unshared": 0})

    def _ablation_values(self) -> dict[str, Tensor | None]:
        if self._values is None and self.ev.ablation == "resample":  # the resample prompts' own activations
            assert self.ev.resample_tokens is not None
            n = self.n_layers
            want = {("z", l) for l in range(n)} | ({("post", l) for l in range(n)} if self.d_mlp else set())
            with torch.inference_mode():
                _, acts = self.engine.forward(self.ev.resample_tokens.to(self.device), want)
            self._values = {hook_name("head", l): acts[("z", l)] for l in range(n)}
            if self.d_mlp:
                self._values.update({hook_name("mlp", l): acts[("post", l)] for l in range(n)})
        return super()._ablation_values()

    def _group_size(self) -> int:
        """Circuits per group: every state of a layer (at most one per circuit) held twice (in and out)."""
        per_state = 2 * self.batch * self.seq * self.d_model * 4
        return max(1, int(self.budget // 2 // per_state))

    @torch.inference_mode()
    def nl_chunks(self, circuits: Iterable[Any]) -> Iterator[Tensor]:
        specs = [CircuitSpec.of(c) for c in circuits]
        g = self._group_size()
        self.engine._rope_tables(self.seq)
        try:
            for i in range(0, len(specs), g):
                yield from self._group([self._masks(s) for s in specs[i : i + g]])
        finally:
            self.engine.release()

    def _group(self, masks: list[tuple[Tensor, Tensor | None]]) -> Iterator[Tensor]:
        eng, b, s = self.engine, self.batch, self.seq
        values = self._ablation_values()
        k = len(masks)
        hk = torch.stack([m[0] for m in masks])  # [K layer head]
        mk = None if masks[0][1] is None else torch.stack([m[1] for m in masks])  # type: ignore[misc]
        state = [0] * k  # the state each circuit's rows are in, entering the current layer
        xs = eng.embed(self.tokens).unsqueeze(0)  # [states B S d]
        for layer in range(self.n_layers):
            last = layer == self.n_layers - 1
            keys: dict[tuple[int, bytes, bytes], int] = {}
            rep: list[int] = []
            new_state = []
            for c in range(k):
                key = (state[c], hk[c, layer].numpy().tobytes(),
                       b"" if mk is None else mk[c, layer].numpy().tobytes())
                if key not in keys:
                    keys[key] = len(rep)
                    rep.append(c)
                new_state.append(keys[key])
            n_in = xs.shape[0]
            xs = self._layer(layer, xs, [state[c] for c in rep], hk[rep, layer],
                             None if mk is None else mk[rep, layer], values, last)
            held = (n_in * s + xs.shape[0] * xs.shape[2]) * b * self.d_model * xs.element_size()  # states in + out
            work = min(len(rep), max(1, self.rows_per_pass // b)) * b * self.row
            self.stats["peak_bytes_estimate"] = max(self.stats["peak_bytes_estimate"], held + work)
            state = new_state
            self.stats["layer_rows"] += len(rep) * b
            self.stats["layer_rows_unshared"] += k * b
        per_pass = max(1, self.rows_per_pass // b)
        parts = []
        for j in range(0, xs.shape[0], per_pass):  # last-position logits, a pass's worth of states at a time
            x_last = xs[j : j + per_pass, :, -1]
            logits = eng.logits(x_last.reshape(-1, self.d_model)).float()  # [states*B vocab]
            ans = self.answers.to(logits.device).repeat(x_last.shape[0])
            parts.append(normalized_logit(logits, ans).double().view(-1, b))
        nl = torch.cat(parts).cpu()  # [states B], one host copy per group
        self.stats["circuits"] += k
        self.stats["passes"] += 1
        for c in range(k):
            yield nl[state[c]]

    def _layer(self, layer: int, xs: Tensor, src: list[int], head_keep: Tensor, mlp_keep: Tensor | None,
               values: dict[str, Tensor | None], last: bool) -> Tensor:
        """Layer ``layer`` for each new state ``j``: input state ``src[j]``, keep masks ``head_keep[j]``
        ``[head]`` and ``mlp_keep[j]`` ``[d_mlp]``. Returns ``[n_new B T d]`` (``T`` = 1 in the last layer)."""
        eng, b = self.engine, self.batch
        n_new = len(src)
        per_pass = max(1, self.rows_per_pass // b)  # states per pass (whole prompt sets)
        zval, pval = values[hook_name("head", layer)], values.get(hook_name("mlp", layer)) if self.d_mlp else None
        outs = []
        for j0 in range(0, n_new, per_pass):
            idx = list(range(j0, min(n_new, j0 + per_pass)))
            x = xs[torch.tensor([src[j] for j in idx], device=xs.device)].reshape(len(idx) * b, *xs.shape[2:])
            hk = head_keep[idx].to(x.device)
            mk = None if mlp_keep is None else mlp_keep[idx].to(x.device)

            out = eng.layer(layer, x, 0, 1, last=last, edit=_ablate(hk, mk, zval, pval, len(idx), b))
            outs.append(out.view(len(idx), b, *out.shape[1:]))
        return torch.cat(outs)


def _ablate(head_keep: Tensor, mlp_keep: Tensor | None, zval: Tensor | None, pval: Tensor | None, n: int, b: int,
            ) -> Any:
    """`ConeEngine.layer`'s ``edit`` for ``n`` stacked states of ``b`` prompts: units whose keep mask
    (``[n head]``, ``[n d_mlp]``) is False get the ablation value (None: zero; ``[S ...]``: the per-position mean;
    ``[B S ...]``: each prompt's resample activation), at the positions the layer computes (the last ``T``)."""

    def edit(name: str, act: Tensor) -> Tensor:
        keep, val = (head_keep, zval) if name == "z" else (mlp_keep, pval)
        if keep is None or bool(keep.all()):
            return act
        t = act.shape[1]
        a = act.view(n, b, *act.shape[1:])
        shape = (n, 1, 1, *keep.shape[1:]) + ((1,) if name == "z" else ())
        if val is None:
            v: Tensor = torch.zeros((), dtype=act.dtype, device=act.device)
        elif val.ndim == act.ndim:
            v = val[:, val.shape[1] - t :].to(act.device, act.dtype).unsqueeze(0)
        else:
            v = val[val.shape[0] - t :].to(act.device, act.dtype)
        return torch.where(keep.to(act.device).view(shape), a, v).view(act.shape)  # blocks may sit on other devices

    return edit
