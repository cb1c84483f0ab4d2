"""Component effects: patching effects of every head and MLP per position, averaged over corrupt-sampling seeds.

Nikankin et al. (ICLR 2025, methods.md §A.1) patch every head's ``hook_z`` and every MLP's ``hook_post`` at each
position with the activation of a corrupt prompt (a random correct prompt of any operator), measure the indirect
effect (Eq. 1), and average over seeds {42, 412, 32879, 123, 436} that only change the corrupt sample. Components
are then ranked by their effect averaged over the positions 1..4 (every position but BOS).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interp._io import read_json, write_json_atomic
from interp.errors import ShapeError, TaskError, unknown
from interp.metrics import FALLING
from interp.patching import PatchResult, patch
from interp.patching.result import rank_order
from interp.tasks.base import TASK_METHODS, require

__all__ = ["ComponentEffects", "component_effects", "component_effects_by_operator", "PAPER_SEEDS", "DEFAULT_SEEDS",
           "METHODS", "discovery_pairs"]

PAPER_SEEDS: tuple[int, ...] = (42, 412, 32879, 123, 436)
DEFAULT_SEEDS: tuple[int, ...] = (42, 412, 32879)
METHODS: tuple[str, ...] = ("exact", "attribution")


def metric_sign(metric: str) -> float:
    """+1 when a larger metric value means a larger effect (ie, ie_logits, *_norm), -1 otherwise."""
    return -1.0 if metric in FALLING else 1.0  # falling metrics: rank by -effect


@dataclass(frozen=True)
class ComponentEffects:
    """Seed-averaged effects of heads ``[layer pos head]`` and MLPs ``[layer pos]`` with standard errors.

    ``heads``/``mlps`` are `PatchResult` whose ``effects`` are the mean over seeds and whose ``stderr`` combines the
    per-seed standard errors over prompts, ``sqrt(sum_s se_s²) / n_seeds`` (treating seeds as independent; seeds
    that drew identical pairs - a task whose pairs ignore the seed, e.g. IOI - are one sweep, run once and counted as
    one dependent sample: ``meta["n_distinct_draws"]``).
    ``*_per_seed`` keep each seed's map. Rankings average over ``rank_positions`` (default: every position but BOS).
    """

    heads: PatchResult
    mlps: PatchResult
    seeds: tuple[int, ...]
    heads_per_seed: np.ndarray
    mlps_per_seed: np.ndarray
    rank_positions: tuple[int, ...]
    operator: str | None = None
    method: str = "exact"
    meta: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        from interp._repr import short_repr

        h, m = self.head_scores(), self.mlp_scores()
        ranked = sorted([(f"L{self.heads.index['layer'][l]}H{self.heads.index['head'][k]}", h[l, k])
                         for l in range(h.shape[0]) for k in range(h.shape[1])]
                        + [(f"MLP{self.mlps.index['layer'][l]}", m[l]) for l in range(m.shape[0])],
                        key=lambda t: -abs(t[1]))
        op = f", operator {self.operator}" if self.operator else ""
        return short_repr("ComponentEffects", f"{self.method} {self.heads.metric}{op}, seeds {list(self.seeds)}",
                          shape=f"{h.shape[0]} layers x {h.shape[1]} heads + MLPs", top=ranked,
                          top_label="top (mean over positions)")

    # ------------------------------------------------------------------------------------------- rankings
    def _pos_mask(self, result: PatchResult) -> list[int]:
        idx = [result.index["pos"].index(p) for p in self.rank_positions if p in result.index["pos"]]
        if not idx:
            raise ShapeError(f"rank positions {self.rank_positions} are not among the patched positions")
        return idx

    @property
    def sign(self) -> float:
        return metric_sign(self.heads.metric)

    def head_scores(self) -> np.ndarray:
        """Position-averaged head effects ``[layer head]``, signed so that larger = more important."""
        return self.sign * self.heads.effects[:, self._pos_mask(self.heads), :].mean(1)

    def mlp_scores(self) -> np.ndarray:
        """Position-averaged MLP effects ``[layer]``, signed so that larger = more important."""
        return self.sign * self.mlps.effects[:, self._pos_mask(self.mlps)].mean(1)

    def head_ranking(self) -> list[tuple[int, int]]:
        """Heads ``(layer, head)`` by position-averaged effect, largest first (ties: lower layer, head first;
        NaN scores last, with a warning)."""
        s = self.head_scores()
        layers, heads = self.heads.index["layer"], self.heads.index["head"]
        order = rank_order(s.ravel(), what="heads")
        return [(layers[i // s.shape[1]], heads[i % s.shape[1]]) for i in order]

    def ranking(self, *, include_mlps: bool = False) -> list[tuple[str, int, int | None, float]]:
        """Components ``(kind, layer, head, score)`` by position-averaged effect; MLPs too when asked (NaN scores
        last, with a warning)."""
        s = self.head_scores()
        layers, heads = self.heads.index["layer"], self.heads.index["head"]
        rows: list[tuple[str, int, int | None, float]] = [
            ("head", layers[i], heads[j], float(s[i, j])) for i in range(s.shape[0]) for j in range(s.shape[1])
        ]
        if include_mlps:
            m = self.mlp_scores()
            rows += [("mlp", self.mlps.index["layer"][i], None, float(m[i])) for i in range(len(m))]
        order = rank_order(np.array([r[3] for r in rows]), what="components")
        return [rows[int(i)] for i in order]

    # ------------------------------------------------------------------------------------------- output
    def to_frame(self) -> Any:
        """Tidy DataFrame: one row per (component, position) with effect and stderr."""
        import pandas as pd

        h = self.heads.to_frame().assign(kind="head")
        m = self.mlps.to_frame().assign(kind="mlp")
        return pd.concat([h, m], ignore_index=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "heads": self.heads.to_dict(),
            "mlps": self.mlps.to_dict(),
            "seeds": list(self.seeds),
            "heads_per_seed": self.heads_per_seed.tolist(),
            "mlps_per_seed": self.mlps_per_seed.tolist(),
            "rank_positions": list(self.rank_positions),
            "operator": self.operator,
            "method": self.method,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ComponentEffects:
        return cls(
            heads=PatchResult.from_dict(d["heads"]),
            mlps=PatchResult.from_dict(d["mlps"]),
            seeds=tuple(d["seeds"]),
            heads_per_seed=np.asarray(d["heads_per_seed"], dtype=np.float64),
            mlps_per_seed=np.asarray(d["mlps_per_seed"], dtype=np.float64),
            rank_positions=tuple(d["rank_positions"]),
            operator=d.get("operator"),
            method=d.get("method", "exact"),
            meta=d.get("meta", {}),
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ComponentEffects:
        return cls.from_dict(read_json(path))

    def plot(self, *, title: str | None = None) -> Any:
        """Position-averaged effects as a [layer x (heads, MLP)] heatmap (the paper's Fig. 2a layout)."""
        from interp.circuits.plots import plot_effects

        return plot_effects(self, title=title)


def check_operator(task: Any, operator: str | None) -> None:
    """``operator`` must be None or one of the task's operators (tasks without operators, e.g. IOI, take None)."""
    if operator is None:
        return
    ops = tuple(getattr(task, "operators", ()) or ())
    if not ops:
        raise TaskError(f"task {getattr(task, 'name', task)} has no operators; leave operator unset "
                        f"(got {operator!r})")
    if operator not in ops:
        raise TaskError(f"operator {operator!r} is not in task {getattr(task, 'name', task)} "
                        f"(operators: {' '.join(ops)})")


def discovery_pairs(model: Any, task: Any, *, operator: str | None, n_per_op: int, seed: int, corrupt_from: str) -> Any:
    """Discovery-split pairs (clean prompts of ``operator``, or all operators when None; corrupt from the task)."""
    require(task, "component_effects", *TASK_METHODS["pairs"])
    check_operator(task, operator)
    pairs = task.pairs(model, n_per_op=n_per_op, seed=seed, corrupt_from=corrupt_from, split="discovery")
    return pairs if operator is None else pairs.by_group()[operator]


def _pairs_key(pairs: Any) -> bytes:
    """What a patching sweep reads of ``pairs`` (tokens and answers), as bytes: equal keys, equal sweeps."""
    import hashlib

    h = hashlib.sha1()
    for t in (pairs.clean_tokens, pairs.corrupt_tokens, pairs.clean_answers, pairs.corrupt_answers):
        a = t.detach().cpu().contiguous()
        h.update(str((a.dtype, tuple(a.shape))).encode())
        h.update(a.numpy().tobytes())
    return h.digest()


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise TaskError("no seeds given; pass at least one corrupt-sampling seed")
    return seeds


def _seed_pairs(model: Any, task: Any, seeds: tuple[int, ...], **kw: Any) -> Iterator[tuple[Any, int | None]]:
    """Each seed's discovery pairs (``discovery_pairs(..., **kw)``) with the index of the earlier seed that drew the
    same pairs (a task whose pairs ignore the seed, e.g. IOI: its sweep can be reused), or None for a new draw."""
    seen: dict[bytes, int] = {}
    for i, s in enumerate(seeds):
        pairs = discovery_pairs(model, task, seed=s, **kw)
        key = _pairs_key(pairs)
        yield pairs, seen.get(key)
        seen.setdefault(key, i)


def _combine(results: list[PatchResult], seeds: Sequence[int], method: str,
             draws: Sequence[int] | None = None) -> tuple[PatchResult, np.ndarray]:
    """Mean over seeds; the standard error treats *distinct* prompt draws as independent. ``draws[i]`` names seed
    ``i``'s draw: seeds with the same draw (a task whose pairs do not depend on the seed, e.g. IOI) are one sample
    counted ``c`` times, so the mean's error is ``sqrt(sum_g (c_g se_g)^2) / n_seeds`` (= ``se`` when every seed
    drew the same pairs), not ``sqrt(n_seeds) se / n_seeds`` as for independent draws."""
    per_seed = np.stack([r.effects for r in results])
    se = np.stack([r.stderr if r.stderr is not None else np.zeros_like(r.effects) for r in results])
    draws = list(range(len(results))) if draws is None else list(draws)
    n = len(results)
    # (c_g / n) se_g per distinct draw; hypot sums the squares without overflow, as the mean divides before summing
    groups = {g: (draws.count(g) / n) * se[draws.index(g)] for g in dict.fromkeys(draws)}
    r0 = results[0]
    combined = PatchResult(
        effects=(per_seed / n).sum(0),
        axes=r0.axes,
        index=r0.index,
        labels=r0.labels,
        site=r0.site,
        metric=r0.metric,
        model=r0.model,
        task=r0.task,
        direction=r0.direction,
        n_prompts=r0.n_prompts,
        n_forward_passes=sum(results[draws.index(g)].n_forward_passes for g in groups),
        seconds=sum(results[draws.index(g)].seconds for g in groups),
        stderr=np.hypot.reduce(np.stack(list(groups.values())), axis=0),
        baseline={k: float(np.mean([r.baseline.get(k, np.nan) for r in results])) for k in r0.baseline},
        meta={"seeds": list(seeds), "method": method, "n_distinct_draws": len(groups),
              "n_undefined_total": sum(int(r.meta.get("n_undefined_total", 0)) for r in results)},
    )
    return combined, per_seed


def component_effects(
    model: Any,
    task: Any,
    *,
    operator: str | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    n_per_op: int = 50,
    positions: str | int | Sequence[int] = "all",
    metric: str = "ie",
    method: str = "exact",
    corrupt_from: str = "all",
    rank_positions: Sequence[int] | None = None,
    max_rows: int = 4096,
    progress: bool = False,
    model_name: str = "",
    max_memory: int | str = "auto",
) -> ComponentEffects:
    """Effects of every head and MLP at ``positions`` on discovery prompts, averaged over corrupt seeds.

    ``operator`` restricts the clean prompts to one operator (corrupt prompts still come from every operator of the
    task, as in the paper); None pools all. ``method="attribution"`` estimates the same maps by attribution
    patching (`attribution_patch`), 2 forwards + 1 backward per seed instead of one forward per
    component.
    """
    if method not in METHODS:
        raise unknown("ranking method", method, METHODS)
    seeds = _check_seeds(seeds)
    heads: list[PatchResult] = []
    mlps: list[PatchResult] = []
    draws: list[int] = []
    for i, (pairs, same) in enumerate(_seed_pairs(model, task, seeds, operator=operator, n_per_op=n_per_op,
                                                  corrupt_from=corrupt_from)):
        draws.append(i if same is None else same)
        if same is not None:  # this seed drew the same pairs as an earlier one (IOI ignores the seed): same sweep
            heads.append(heads[same])
            mlps.append(mlps[same])
            continue
        for site, out in (("heads", heads), ("mlps", mlps)):
            if method == "exact":
                r = patch(model, pairs, site=site, positions=positions, metric=metric, max_rows=max_rows,
                          progress=progress, model_name=model_name, max_memory=max_memory)
            else:
                from interp.patching.attribution import attribution_patch

                r = attribution_patch(model, pairs, site=site, positions=positions, metric=metric,
                                      model_name=model_name)
            out.append(r)
    return _assemble(heads, mlps, seeds, method, draws, pairs.position_labels, rank_positions, operator=operator,
                     metric=metric, corrupt_from=corrupt_from)


def component_effects_by_operator(
    model: Any,
    task: Any,
    *,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    n_per_op: int = 50,
    positions: str | int | Sequence[int] = "all",
    metric: str = "ie",
    corrupt_from: str = "all",
    rank_positions: Sequence[int] | None = None,
    max_rows: int = 4096,
    progress: bool = False,
    model_name: str = "",
    max_memory: int | str = "auto",
) -> dict[str | None, ComponentEffects]:
    """Exact `component_effects` of the pooled prompts (key None) and of each operator's (keys: the task's
    operators) from one patching sweep per seed and site.

    A per-operator call measures the pooled discovery pairs' rows of that operator (``pairs.by_group()[op]``), so
    its sweep repeats part of the pooled one: here every prompt is patched once and each operator's means, standard
    errors and baselines are taken over its own rows (`interp.patching.exact.patch_by_group`). The values equal
    ``component_effects(operator=op)`` up to float32 rounding of the differently sized passes (a test); the time of
    the per-operator sweeps is saved (``interp circuit`` runs the pooled circuit and one per operator).
    """
    from interp.patching.exact import patch_by_group

    seeds = _check_seeds(seeds)
    keys: list[str | None] = [None, *getattr(task, "operators", ())]
    runs: dict[str | None, dict[str, list[PatchResult]]] = {k: {"heads": [], "mlps": []} for k in keys}
    draws: list[int] = []
    pairs = None
    for i, (pairs, same) in enumerate(_seed_pairs(model, task, seeds, operator=None, n_per_op=n_per_op,
                                                  corrupt_from=corrupt_from)):
        draws.append(i if same is None else same)
        if same is not None:  # the same pairs as an earlier seed: the same sweep
            for k in keys:
                for site in ("heads", "mlps"):
                    runs[k][site].append(runs[k][site][same])
            continue
        for site in ("heads", "mlps"):
            pooled, groups = patch_by_group(model, pairs, site=site, positions=positions, metric=metric,
                                            max_rows=max_rows, progress=progress, model_name=model_name,
                                            max_memory=max_memory)
            runs[None][site].append(pooled)
            for k in keys[1:]:
                if k not in groups:
                    raise TaskError(f"the discovery pairs have no prompts of operator {k!r} (groups: "
                                    f"{' '.join(groups)}); use component_effects(operator=...) for it")
                runs[k][site].append(groups[k])
    assert pairs is not None
    return {k: _assemble(runs[k]["heads"], runs[k]["mlps"], seeds, "exact", draws, pairs.position_labels,
                         rank_positions, operator=k, metric=metric, corrupt_from=corrupt_from) for k in keys}


def _assemble(heads: list[PatchResult], mlps: list[PatchResult], seeds: tuple[int, ...], method: str,
              draws: list[int], labels: Sequence[str], rank_positions: Sequence[int] | None, *,
              operator: str | None, metric: str, corrupt_from: str) -> ComponentEffects:
    """`ComponentEffects` from each seed's head and MLP sweeps (``draws[i]``: the sweep seed ``i`` reused)."""
    peaks = [int(r.meta.get("peak_bytes_estimate", 0)) for r in heads + mlps]
    h, h_seed = _combine(heads, seeds, method, draws)
    m, m_seed = _combine(mlps, seeds, method, draws)
    if rank_positions is None:
        rank_positions = [p for p in h.index["pos"] if labels[p] != "BOS"] or list(h.index["pos"])
    return ComponentEffects(
        heads=h,
        mlps=m,
        seeds=seeds,
        heads_per_seed=h_seed,
        mlps_per_seed=m_seed,
        rank_positions=tuple(int(p) for p in rank_positions),
        operator=operator,
        method=method,
        meta={"n_prompts": h.n_prompts, "metric": metric, "corrupt_from": corrupt_from,
              "n_distinct_draws": len(set(draws)), "peak_bytes_estimate": max(peaks, default=0)},
    )
