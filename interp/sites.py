"""Sites: the one place where hook names are built and parsed.

A *site kind* names a family of activations that can be patched or ablated; a `Site` names one concrete
activation slice (one layer, optionally one head or one neuron). Every other module asks this one for hook names,
so there are no ``"hook_z" in name`` checks anywhere else.

========== ============================== ============================= ==========================
kind       hook                           activation shape              index within the hook
========== ============================== ============================= ==========================
resid_pre  ``blocks.{l}.hook_resid_pre``  [batch pos d_model]           (pos)
attn_out   ``blocks.{l}.hook_attn_out``   [batch pos d_model]           (pos)
mlp_out    ``blocks.{l}.hook_mlp_out``    [batch pos d_model]           (pos)
head       ``blocks.{l}.attn.hook_z``     [batch pos head_index d_head] (pos, head)
mlp        ``blocks.{l}.mlp.hook_post``   [batch pos d_mlp]             (pos) - the whole neuron vector
neuron     ``blocks.{l}.mlp.hook_post``   [batch pos d_mlp]             (pos, neuron)
========== ============================== ============================= ==========================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from interp.checks import check_int
from interp.errors import ShapeError, unknown

__all__ = [
    "SITE_KINDS", "CLI_SITES", "SWEEP_AXES", "Site", "hook_name", "site_kind", "check_layer", "check_site_exists",
    "resolve_layers", "check_layers", "site_units", "EDGE_HOOKS", "edge_hook_name", "EMBED", "UNEMBED", "pattern_hook",
]

_HOOKS: dict[str, str] = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "head": "blocks.{layer}.attn.hook_z",
    "mlp": "blocks.{layer}.mlp.hook_post",
    "neuron": "blocks.{layer}.mlp.hook_post",
}
SITE_KINDS: tuple[str, ...] = tuple(_HOOKS)

# names used on the command line and in `patch(site=...)` -> site kind
CLI_SITES: dict[str, str] = {
    "heads": "head",
    "mlps": "mlp",
    "resid": "resid_pre",
    "attn_out": "attn_out",
    "mlp_out": "mlp_out",
    "neurons": "neuron",
}

# axes of a patching sweep over a site kind, in order (pos is always present)
SWEEP_AXES: dict[str, tuple[str, ...]] = {
    "resid_pre": ("layer", "pos"),
    "attn_out": ("layer", "pos"),
    "mlp_out": ("layer", "pos"),
    "head": ("layer", "pos", "head"),
    "mlp": ("layer", "pos"),
    "neuron": ("layer", "pos", "neuron"),
}

UNEMBED = "ln_final.hook_normalized"
EMBED = "hook_embed"  # token embeddings [batch pos d_model] (input saliency replaces them here)


def pattern_hook(layer: int) -> str:
    """The attention-pattern hook of ``layer``: ``[batch head_index query_pos key_pos]`` (not a patching site)."""
    return f"blocks.{int(layer)}.attn.hook_pattern"

# Edge-level circuits (`interp.circuits.edges`): where each sender writes and each receiver reads. Receivers read
# the residual stream *before* their normalization: a head's q/k/v input is rebuilt from ``resid_pre`` and the
# projection output (``hook_q``/``hook_k``/``hook_v``, [batch pos head d_head]) is replaced head by head; an MLP
# reads what enters ``ln2``; the logits read what enters ``ln_final``. Senders: the input (embeddings, the
# residual entering block 0), each head (``hook_z`` times its slice of W_O) and each MLP (``hook_mlp_out``).
EDGE_HOOKS: dict[str, str] = {
    "input": "blocks.0.hook_resid_pre",
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "z": "blocks.{layer}.attn.hook_z",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "q": "blocks.{layer}.attn.hook_q",
    "k": "blocks.{layer}.attn.hook_k",
    "v": "blocks.{layer}.attn.hook_v",
    "mlp_in": "blocks.{layer}.ln2.hook_in",
    "logits_in": "ln_final.hook_in",
}


def site_kind(name: str) -> str:
    """Resolve a CLI site name (``heads``) or a kind (``head``) to a site kind; unknown names list the options."""
    if name in SITE_KINDS:
        return name
    if name in CLI_SITES:
        return CLI_SITES[name]
    raise unknown("site", name, list(CLI_SITES) + list(SITE_KINDS))


def hook_name(kind: str, layer: int) -> str:
    """The TransformerLens hook name of site ``kind`` in ``layer``."""
    return _HOOKS[site_kind(kind)].format(layer=layer)


def edge_hook_name(kind: str, layer: int = 0) -> str:
    """The hook an edge-level sender writes at or a receiver reads from (`EDGE_HOOKS`)."""
    if kind not in EDGE_HOOKS:
        raise unknown("edge hook kind", kind, EDGE_HOOKS)
    return EDGE_HOOKS[kind].format(layer=layer)


def check_layer(model: Any, layer: int, *, what: str = "layer") -> int:
    """``int(layer)`` when it is an integer layer of ``model`` (not a bool, not 1.7); else `ShapeError`."""
    n_layers = int(model.cfg.n_layers)
    try:
        v = check_int(layer, what)
    except ShapeError:
        raise ShapeError(f"{what} {layer!r} is not a layer number; the model has layers 0..{n_layers - 1}") from None
    if not 0 <= v < n_layers:
        raise ShapeError(f"{what} {layer} is out of range; the model has layers 0..{n_layers - 1}")
    return v


def check_layers(model: Any, layers: Any, *, what: str = "layers", allow_empty: bool = False) -> list[int]:
    """Sorted distinct layers of a list (or one int); each must be a layer of ``model``; ``[]`` only when
    ``allow_empty``. A string or other non-sequence raises `ShapeError` naming the valid layers."""
    n_layers = int(model.cfg.n_layers)
    if isinstance(layers, (int,)) and not isinstance(layers, bool):
        layers = [layers]
    if isinstance(layers, (str, bytes)) or not isinstance(layers, (Sequence, set, frozenset, range)) and not hasattr(
            layers, "tolist"):
        raise ShapeError(f"{what} must be a list of layer numbers in 0..{n_layers - 1}; got {layers!r}")
    if hasattr(layers, "tolist"):
        layers = layers.tolist()
    out = sorted({check_layer(model, x, what=what[:-1] if what.endswith("s") else what) for x in layers})
    if not out and not allow_empty:
        raise ShapeError(f"{what} is empty; give at least one layer in 0..{n_layers - 1} (or None for all)")
    return out


def resolve_layers(model: Any, layers: Sequence[int] | None) -> list[int]:
    """Sorted distinct layers (all when None); out-of-range, non-integer or empty lists raise `ShapeError`."""
    if layers is None:
        return list(range(int(model.cfg.n_layers)))
    return check_layers(model, layers)


def site_units(model: Any, kind: str, neurons: Sequence[int] | None) -> list[int] | None:
    """The unit axis of a site: every head for ``head``, the given (range-checked) or all neurons for ``neuron``,
    None for whole-vector sites."""
    if kind == "head":
        return list(range(int(model.cfg.n_heads)))
    if kind == "neuron":
        d_mlp = int(model.cfg.d_mlp)
        if neurons is None:
            return list(range(d_mlp))
        bad = [n for n in neurons if not 0 <= int(n) < d_mlp]
        if bad:
            raise ShapeError(f"neurons {bad[:5]} are out of range; d_mlp is {d_mlp}")
        return [int(n) for n in neurons]
    return None


def check_site_exists(model: Any, kind: str) -> None:
    """Raise `ShapeError` when ``model`` has no hook for site ``kind`` (e.g. an MLP without ``hook_post``)."""
    kind = site_kind(kind)
    names = getattr(model, "hook_dict", None)
    if names is None:
        return
    missing = hook_name(kind, 0)
    if missing not in names:
        raise ShapeError(
            f"site kind {kind!r} needs the hook {missing!r}, which this model does not have "
            f"(is it attention-only, or not in compatibility mode?)"
        )


@dataclass(frozen=True, order=True)
class Site:
    """One patchable activation slice: ``Site("head", 3, head=1)``, ``Site("neuron", 2, neuron=17)``.

    ``pos`` is None for "every position" (ablations) or an int (patching at one position).
    """

    kind: str
    layer: int
    head: int | None = None
    neuron: int | None = None
    pos: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", site_kind(self.kind))
        if self.kind == "head" and self.head is None:
            raise ShapeError("a 'head' site needs head=<index>")
        if self.kind == "neuron" and self.neuron is None:
            raise ShapeError("a 'neuron' site needs neuron=<index>")

    @property
    def hook_name(self) -> str:
        return hook_name(self.kind, self.layer)

    @property
    def label(self) -> str:
        """Short human label: ``L3H1``, ``MLP2``, ``L2N17``, ``resid_pre3``."""
        if self.kind == "head":
            s = f"L{self.layer}H{self.head}"
        elif self.kind == "mlp":
            s = f"MLP{self.layer}"
        elif self.kind == "neuron":
            s = f"L{self.layer}N{self.neuron}"
        else:
            s = f"{self.kind}{self.layer}"
        return s if self.pos is None else f"{s}@{self.pos}"

    def validate(self, model: Any) -> None:
        """Raise `ShapeError` when the site does not exist in ``model``."""
        check_layer(model, self.layer)
        if self.head is not None and not 0 <= self.head < int(model.cfg.n_heads):
            raise ShapeError(f"head {self.head} is out of range; the model has heads 0..{model.cfg.n_heads - 1}")
        if self.neuron is not None and not 0 <= self.neuron < int(model.cfg.d_mlp):
            raise ShapeError(f"neuron {self.neuron} is out of range; d_mlp is {model.cfg.d_mlp}")
