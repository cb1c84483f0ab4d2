"""Validation shared by the neuron modules: one error class and the checks every public entry point runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from interp.errors import InterpError, ShapeError, TaskError
from interp.sites import check_layer, check_site_exists, hook_name

__all__ = ["NeuronError", "check_threshold", "check_top", "check_neurons", "check_hook_post", "check_operator"]


class NeuronError(InterpError, ValueError):
    """Bad input to the neuron-level methods: a threshold outside (0, 1], k larger than d_mlp, an unknown operator..."""


def check_threshold(t: float, *, name: str = "threshold") -> float:
    """A matching threshold must lie in (0, 1] (the score is a fraction of top-k prompts)."""
    try:
        t = float(t)
    except (TypeError, ValueError):
        raise NeuronError(f"{name} must be a number in (0, 1]; got {t!r}") from None
    if not 0.0 < t <= 1.0:
        raise NeuronError(f"{name} must lie in (0, 1] (a fraction of the top-k prompts); got {t}")
    return t


def check_arith_task(task: Any, what: str) -> None:
    """Raise `NeuronError` unless ``task`` is an arithmetic task (neurons are classified over operand grids)."""
    if not getattr(task, "operators", None) or not hasattr(task, "prompts"):  # IOI/induction: operators == ()
        name = getattr(task, "name", type(task).__name__)
        raise NeuronError(f"{what} classifies arithmetic heuristics over operand grids and needs an arithmetic task "
                          f"(arith, arith:+, arith:+-:0-99...), not {name!r}")


def check_top(d_mlp: int, *, k: int | None, frac: float | None) -> int:
    """Resolve ``k`` (a count) or ``frac`` (a fraction of d_mlp) to a neuron count per layer in [1, d_mlp]."""
    if (k is None) == (frac is None):
        raise NeuronError(f"give exactly one of k (neurons per layer) or frac (fraction of d_mlp); got {k=}, {frac=}")
    if k is not None:
        if isinstance(k, bool) or int(k) != k:
            raise NeuronError(f"k must be an integer number of neurons per layer; got {k!r}")
        if not 1 <= int(k) <= d_mlp:
            raise NeuronError(f"k={k} neurons per layer is outside 1..d_mlp={d_mlp}")
        return int(k)
    assert frac is not None
    if not 0.0 < float(frac) <= 1.0:
        raise NeuronError(f"frac must lie in (0, 1] (a fraction of d_mlp={d_mlp}); got {frac}")
    return max(1, round(float(frac) * d_mlp))


def check_hook_post(model: Any) -> None:
    """Raise `ShapeError` with a clear message when the model's MLPs have no ``hook_post`` (e.g. attention-only)."""
    names = getattr(model, "hook_dict", None)
    need = hook_name("neuron", 0)
    if names is not None and need not in names:
        raise ShapeError(
            f"neuron-level methods read and ablate MLP neurons at {need!r}, which this model does not have "
            "(an attention-only model, or a bridge not in compatibility mode); nothing to analyse"
        )
    check_site_exists(model, "neuron")


def check_neurons(model: Any, neurons: Mapping[int, Iterable[int]]) -> dict[int, list[int]]:
    """Validate ``{layer: neuron indices}`` against the model; returns sorted, de-duplicated lists."""
    d_mlp = int(model.cfg.d_mlp)
    out: dict[int, list[int]] = {}
    for layer, idx in neurons.items():
        check_layer(model, layer)
        idx = sorted({int(i) for i in idx})
        bad = [i for i in idx if not 0 <= i < d_mlp]
        if bad:
            raise ShapeError(f"neurons {bad[:5]} of layer {layer} are out of range; d_mlp is {d_mlp}")
        if idx:
            out[int(layer)] = idx
    return out


def check_operator(task: Any, op: str) -> str:
    ops: Sequence[str] = getattr(task, "operators", ())
    if op not in ops:
        raise TaskError(f"operator {op!r} is not in the task {getattr(task, 'name', task)!r} "
                          f"(its operators: {' '.join(ops)})")
    return op
