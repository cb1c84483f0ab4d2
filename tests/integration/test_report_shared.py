"""The report's shared pass (`interp.report.base.grid_pass`): one forward pass over the mean-ablation grid gives
the same correctness flags as running the task's own check and the same mean activations as `mean_cache`."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.integration


def test_grid_pass_equals_separate_accuracy_and_mean_cache():
    from interp.circuits.ablation import mean_cache
    from interp.models import load_model
    from interp.report.base import ReportContext, grid_pass
    from interp.tasks import parse_task

    model = load_model("toy-arith")
    ctx = ReportContext(model_name="toy-arith", task_spec="arith:+-*:0-29", plan=("accuracy", "circuit"))
    assert grid_pass(model, ctx)
    task, ref = ctx.task(), parse_task("arith:+-*:0-29")
    calls = []
    orig = task._is_correct
    # accuracy and correct_prompts must not run the model again (a frozen dataclass: set on the instance)
    object.__setattr__(task, "_is_correct", lambda *a, **k: calls.append(1) or orig(*a, **k))
    acc = task.accuracy(model)
    assert calls == []
    for op in ref.operators:
        want = ref._is_correct(model, ref.prompts(model, op))
        assert acc.n_correct[op] == sum(want) and acc.n_total[op] == len(want)
        got = [p.tokens for p in task.correct_prompts(model, op, seed=42, limit=30)]
        assert got == [p.tokens for p in ref.correct_prompts(model, op, seed=42, limit=30)]
    assert calls == []
    with torch.inference_mode():
        mc = mean_cache(model, ref)
    shared = ctx.results["mean_cache"]
    assert set(shared) == set(mc)
    for k in mc:
        torch.testing.assert_close(shared[k], mc[k], rtol=0, atol=1e-6)


@pytest.mark.parametrize("quick", [False, True])
def test_accuracy_section_uses_the_grid_pass_also_with_quick(quick):
    """--quick must not switch the shared pass off (it did: a 300-prompt accuracy sample, then a second pass over the
    grid for the circuits' mean ablation, made --quick no faster than a full report)."""
    from interp.models import load_model
    from interp.report.arith import accuracy_section
    from interp.report.base import ReportContext
    from interp.tasks import parse_task

    model = load_model("toy-arith")
    ctx = ReportContext(model_name="toy-arith", task_spec="arith:+-:0-29", plan=("accuracy", "circuit"), quick=quick,
                        progress=False)
    accuracy_section(model, ctx)
    assert "mean_cache" in ctx.results
    ref = parse_task("arith:+-:0-29")
    assert ctx.results["accuracy"].n_total == {op: len(ref.prompts(model, op)) for op in ref.operators}
    # without the circuit section there is no grid pass, and --quick samples 300 prompts per operator
    ctx2 = ReportContext(model_name="toy-arith", task_spec="arith:+-:0-29", plan=("accuracy",), quick=quick,
                         progress=False)
    accuracy_section(model, ctx2)
    assert "mean_cache" not in ctx2.results
    n = ctx2.results["accuracy"].n_total
    assert all(v == (min(300, len(ref.prompts(model, op))) if quick else len(ref.prompts(model, op)))
               for op, v in n.items())
