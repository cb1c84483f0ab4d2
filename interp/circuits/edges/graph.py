"""The edge graph of a transformer: senders (input, heads, MLPs) -> receivers (q/k/v of each head, MLPs, logits).

Nodes follow MIB's naming: ``input``, ``a{l}.h{h}`` (head ``h`` of layer ``l``), ``m{l}`` (MLP of layer ``l``) and
``logits``. A *sender* writes into the residual stream (input, every head, every MLP); a *receiver* reads it:
``a{l}.h{h}<q>``, ``<k>``, ``<v>`` (the head's query, key and value inputs, separately), ``m{l}`` (the MLP input)
and ``logits``. An edge ``sender->receiver`` exists when the sender writes before the receiver reads:

* into a layer-``l`` head: the input and every head and MLP of layers ``< l``;
* into MLP ``l``: the same, plus the heads of layer ``l`` (pre-norm, attention before the MLP);
* into the logits: every sender.

Grouped-query attention (SmolLM2: 9 query heads share 3 key/value heads): every query head has its *own* k and v
receivers, as in MIB (TransformerLens's ``ungroup_grouped_query_attention``). The input of ``a{l}.h{h}<k>`` is the
residual that the shared key projection of head ``h``'s group reads *as seen by query head h*; patching an edge into
it changes the keys head ``h`` attends with and leaves the other heads of its group alone. Unpatched, the copies
are identical, so the model is unchanged.

The graph is stored as dense ``[n_senders, n_receivers]`` arrays (``real`` marks existing edges); edge ``i`` is the
``i``-th True entry of ``real`` in row-major order (sender-major), which is also the order of `EdgeGraph.names`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from interp.errors import InterpError, unknown
from interp.patching.engine import Unsupported
from interp.sites import edge_hook_name

__all__ = ["EdgeGraph", "EdgeError", "Unsupported", "build_graph", "QKV"]

QKV = ("q", "k", "v")


class EdgeError(InterpError, ValueError):
    """Bad edge-circuit input: unknown edge names, empty circuits, budgets outside (0, 100], ig_steps < 1 ..."""


@dataclass(frozen=True)
class EdgeGraph:
    """Senders, receivers and the edges between them for one model shape (see the module docstring)."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    model: str = ""
    parallel_attn_mlp: bool = False
    senders: tuple[str, ...] = field(init=False)
    receivers: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        s, r = ["input"], []
        for layer in range(self.n_layers):
            s += [f"a{layer}.h{h}" for h in range(self.n_heads)] + [f"m{layer}"]
            r += [f"a{layer}.h{h}<{c}>" for c in QKV for h in range(self.n_heads)] + [f"m{layer}"]
        r.append("logits")
        object.__setattr__(self, "senders", tuple(s))
        object.__setattr__(self, "receivers", tuple(r))

    # ------------------------------------------------------------------ layout
    @property
    def per_layer_senders(self) -> int:
        return self.n_heads + 1

    @property
    def per_layer_receivers(self) -> int:
        return 3 * self.n_heads + 1

    def sender_index(self, layer: int, head: int | None) -> int:
        """Index of head ``head`` (or the MLP when None) of ``layer`` in `senders`."""
        return 1 + layer * self.per_layer_senders + (self.n_heads if head is None else head)

    def receiver_index(self, layer: int, kind: str, head: int | None = None) -> int:
        """Index of receiver ``kind`` in q/k/v/mlp of ``layer`` (``head`` for q/k/v), or ``logits``."""
        if kind == "logits":
            return len(self.receivers) - 1
        base = layer * self.per_layer_receivers
        if kind == "mlp":
            return base + 3 * self.n_heads
        return base + QKV.index(kind) * self.n_heads + int(head)  # type: ignore[arg-type]

    @cached_property
    def sender_layer(self) -> np.ndarray:
        """Layer of each sender (-1 for the input)."""
        out = np.full(len(self.senders), -1)
        for layer in range(self.n_layers):
            i = self.sender_index(layer, 0)
            out[i : i + self.per_layer_senders] = layer
        return out

    @cached_property
    def sender_is_mlp(self) -> np.ndarray:
        return np.array([s.startswith("m") for s in self.senders])

    @cached_property
    def receiver_layer(self) -> np.ndarray:
        """Layer of each receiver (n_layers for the logits)."""
        out = np.full(len(self.receivers), self.n_layers)
        for layer in range(self.n_layers):
            b = layer * self.per_layer_receivers
            out[b : b + self.per_layer_receivers] = layer
        return out

    @cached_property
    def receiver_is_mlp(self) -> np.ndarray:
        return np.array([r.startswith("m") for r in self.receivers])

    @cached_property
    def receiver_node(self) -> np.ndarray:
        """For each receiver, the sender index of the node it feeds (-1 for the logits)."""
        out = np.full(len(self.receivers), -1)
        for layer in range(self.n_layers):
            for c in QKV:
                for h in range(self.n_heads):
                    out[self.receiver_index(layer, c, h)] = self.sender_index(layer, h)
            out[self.receiver_index(layer, "mlp")] = self.sender_index(layer, None)
        return out

    @cached_property
    def real(self) -> np.ndarray:
        """[n_senders n_receivers] bool: the edges that exist."""
        sl, rl = self.sender_layer[:, None], self.receiver_layer[None, :]
        same_layer_head_to_mlp = (sl == rl) & ~self.sender_is_mlp[:, None] & self.receiver_is_mlp[None, :]
        if self.parallel_attn_mlp:
            same_layer_head_to_mlp &= False
        return (sl < rl) | same_layer_head_to_mlp

    @cached_property
    def edge_index(self) -> tuple[np.ndarray, np.ndarray]:
        """(sender, receiver) index arrays of every edge, in `names` order."""
        s, r = np.nonzero(self.real)
        return s, r

    @property
    def n_edges(self) -> int:
        return int(self.real.sum())

    @cached_property
    def names(self) -> list[str]:
        """MIB edge names ``sender->receiver`` in edge order."""
        s, r = self.edge_index
        return [f"{self.senders[i]}->{self.receivers[j]}" for i, j in zip(s.tolist(), r.tolist())]

    @cached_property
    def name_to_edge(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    def edges_from_names(self, names: Any) -> np.ndarray:
        """Edge indices of MIB edge names; unknown names raise `EdgeError` naming them (another model's file)."""
        lookup = self.name_to_edge
        bad = [n for n in names if n not in lookup]
        if bad:
            raise EdgeError(
                f"{len(bad)} edge name(s) do not exist in this model's graph ({self.describe()}), e.g. "
                f"{bad[:3]}; is the file for another model?"
            )
        return np.array([lookup[n] for n in names], dtype=np.int64)

    def mask(self, edges: Any) -> np.ndarray:
        """[n_senders n_receivers] bool with the given edge indices set."""
        s, r = self.edge_index
        m = np.zeros(self.real.shape, dtype=bool)
        idx = np.asarray(list(edges), dtype=np.int64)
        m[s[idx], r[idx]] = True
        return m

    def edges_of_mask(self, mask: np.ndarray) -> np.ndarray:
        s, r = self.edge_index
        return np.nonzero(mask[s, r])[0]

    def counts(self) -> dict[str, int]:
        """Edge counts by receiver kind."""
        s, r = self.edge_index
        rec = np.array(self.receivers, dtype=object)[r]
        out = {c: int(sum(1 for x in rec if x.endswith(f"<{c}>"))) for c in QKV}
        out["mlp"] = int(self.receiver_is_mlp[r].sum())
        out["logits"] = int((r == len(self.receivers) - 1).sum())
        out["total"] = self.n_edges
        return out

    def describe(self) -> str:
        kv = f", {self.n_kv_heads} key/value heads" if self.n_kv_heads != self.n_heads else ""
        return f"{self.n_layers} layers, {self.n_heads} heads{kv}, {self.n_edges} edges"

    def to_cfg(self) -> dict[str, Any]:
        """MIB's ``cfg`` block (plus our key/value head count)."""
        return {"n_layers": self.n_layers, "n_heads": self.n_heads, "n_key_value_heads": self.n_kv_heads,
                "parallel_attn_mlp": self.parallel_attn_mlp, "model": self.model}


def build_graph(model: Any, *, check_hooks: bool = True) -> EdgeGraph:
    """The edge graph of a compatibility-mode bridge; `Unsupported` names what is missing for other architectures.

    Needs additive attention (the heads' outputs summed into the residual: no norm or scale between head sum and
    residual), pre-norm blocks with attention before the MLP, and the hooks of `interp.sites.EDGE_HOOKS`.
    """
    cfg = model.cfg
    if getattr(cfg, "parallel_attn_mlp", False):
        raise Unsupported("parallel attention/MLP blocks are not handled by the edge graph (the MLP reads the layer "
                          "input, not the post-attention residual)")
    if getattr(cfg, "use_normalization_before_and_after", False):
        raise Unsupported("non-additive attention: the heads' summed output is normalized again before the residual "
                          "add (use_normalization_before_and_after), so a head's output is not its residual write")
    if getattr(cfg, "attn_only", False):
        raise Unsupported("attention-only models (no MLPs) are not handled by the edge graph yet")
    names = getattr(model, "hook_dict", None)
    if check_hooks and names is not None:
        n = int(cfg.n_layers)
        need = [edge_hook_name("input"), edge_hook_name("logits_in")] + [
            edge_hook_name(k, layer) for layer in range(n) for k in ("resid_pre", "z", "mlp_out", "q", "k", "v",
                                                                      "mlp_in")
        ]
        missing = [h for h in need if h not in names]
        if missing:
            raise Unsupported(f"the edge graph needs the hook {missing[0]!r}, which this model does not have "
                              f"({len(missing)} missing; is it in compatibility mode?)")
    n_heads = int(cfg.n_heads)
    kv = int(getattr(cfg, "n_key_value_heads", None) or n_heads)
    if n_heads % kv:
        raise Unsupported(f"n_heads={n_heads} is not a multiple of n_key_value_heads={kv}")
    return EdgeGraph(int(cfg.n_layers), n_heads, kv, model=str(getattr(cfg, "model_name", "") or ""))


def check_receiver_kind(kind: str) -> str:
    valid = (*QKV, "mlp", "logits")
    if kind not in valid:
        raise unknown("receiver kind", kind, valid)
    return kind
