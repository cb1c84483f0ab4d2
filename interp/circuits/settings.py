"""`SearchSettings`: the circuit search's ablation, ranking and evaluation options in one frozen dataclass.

`find_circuit` and `find_circuits` take ``settings=SearchSettings(...)``; their old keyword arguments
(``ablation=``, ``target=``, ``seeds=``, ...) still work and override the fields of ``settings``
(`SearchSettings.build`). Every field is checked when the settings are made, so a bad value fails before any
compute. The CLI flags and the saved JSON fields are unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from interp.circuits.ablation import ABLATIONS, CircuitError, check_ablation
from interp.circuits.effects import DEFAULT_SEEDS, METHODS
from interp.errors import unknown

__all__ = ["SearchSettings", "check_target"]


def check_target(target: float) -> float:
    t = float(target)
    if not 0.0 < t <= 1.0:
        raise CircuitError(f"target faithfulness must lie in (0, 1]; got {target}")
    return t


@dataclass(frozen=True)
class SearchSettings:
    """How `find_circuit` ablates, ranks and evaluates (defaults: the paper's procedure).

    Ablation: ``ablation`` removes the components outside the circuit (``mean``, ``zero``, ``resample``);
    ``sensitivity`` lists the ablations the chosen circuit is re-scored under; ``operand_max`` bounds the operand
    grid of the mean cache. Ranking: ``rank`` is ``exact`` or ``attribution`` patching (``verify`` then also runs
    exact patching, rejects components whose exact effect is 0 and records their agreement); ``rank_mlps`` ranks
    MLPs with heads instead of keeping them all;
    ``metric`` is the patching metric (default the indirect effect, Eq. 1); ``seeds`` the corrupt-prompt seeds;
    ``n_per_op`` discovery prompts per operator; ``corrupt_from`` where corrupt prompts come from. Evaluation:
    ``target`` faithfulness in (0, 1]; ``n_eval`` held-out prompts per operator, drawn with ``eval_seed``;
    ``max_heads`` caps the sweep; ``full_curve=False`` stops the sweep at the target. Memory: ``max_memory``
    (bytes, a size such as ``"2GB"``, or ``"auto"``: 40% of the free memory of the model's device) bounds each
    patching sweep's and each batch of candidate circuits' working memory.
    """

    ablation: str = "mean"
    sensitivity: tuple[str, ...] = ABLATIONS
    operand_max: int | None = None
    rank: str = "exact"
    rank_mlps: bool = False
    metric: str = "ie"
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    n_per_op: int = 50
    corrupt_from: str = "all"
    verify: bool = True
    target: float = 0.9
    n_eval: int = 50
    eval_seed: int = 0
    max_heads: int | None = None
    full_curve: bool = True
    max_memory: int | str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", check_target(self.target))
        check_ablation(self.ablation)
        object.__setattr__(self, "sensitivity", tuple(check_ablation(a) for a in self.sensitivity))
        if self.rank not in METHODS:
            raise unknown("ranking method", self.rank, METHODS)
        from interp.checks import check_int

        if isinstance(self.seeds, (str, bytes)) or not isinstance(self.seeds, Sequence) or not self.seeds:
            raise CircuitError(f"seeds must be a non-empty list of integers, e.g. (42, 412); got {self.seeds!r}")
        object.__setattr__(self, "seeds", tuple(check_int(s, "seed", error=CircuitError) for s in self.seeds))
        for name in ("n_per_op", "n_eval"):
            check_int(getattr(self, name), name, lo=1, error=CircuitError)
        if not (isinstance(self.max_memory, str) and self.max_memory.strip().lower() == "auto"):
            from interp.patching.engine.budget import parse_bytes

            parse_bytes(self.max_memory)  # a bad size fails here, before any compute
        if self.max_heads is not None:
            check_int(self.max_heads, "max_heads", lo=1, error=CircuitError,
                      hint=" (None: no cap; the sweep adds heads until the target is reached)")

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def build(cls, settings: SearchSettings | None = None, **options: Any) -> SearchSettings:
        """``settings`` (default: the defaults) with the keyword ``options`` replacing its fields."""
        bad = sorted(set(options) - set(cls.fields()))
        if bad:
            raise TypeError(f"unexpected keyword argument(s) {', '.join(bad)}; the search settings are "
                            f"{', '.join(cls.fields())}")
        base = cls() if settings is None else settings
        if not isinstance(base, SearchSettings):
            raise TypeError(f"settings must be a SearchSettings, got {type(base).__name__}")
        return dataclasses.replace(base, **options) if options else base

    def replace(self, **options: Any) -> SearchSettings:
        return SearchSettings.build(self, **options)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSettings:
        return cls.build(None, **{k: (tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v)
                                  for k, v in d.items()})
