"""Edge circuits on the built-in models: the CLI on toy-arith (scores, MIB file, circuit to a target) and the
SmolLM2 edge graph (grouped-query attention) against the bridge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_edges_cli_on_toy_arith(tmp_path):
    from interp.circuits.edges import EdgeCircuit, EdgeScores, load_mib
    from interp.cli import main

    out, mib = tmp_path / "e.json", tmp_path / "mib.json"
    assert main(["edges", "--model", "toy-arith", "--task", "arith:+", "--method", "eap-ig-inputs", "--n", "12",
                 "--out", str(out), "--top-n", "60", "--mib", str(mib), "--curve"]) == 0
    sc = EdgeScores.load(out)
    assert sc.graph.n_edges == 479 and sc.method == "eap-ig-inputs" and sc.ig_steps == 5
    m = sc.meta["mib"]  # MIB's pair: CPR of the signed curve, CMD of the |score| curve, both curves kept
    assert len(m["faithfulness_signed"]) == len(m["faithfulness_absolute"]) == len(m["budgets"]) == 10
    x = [b / 100 for b in m["budgets"]]
    fs, fa = m["faithfulness_signed"], m["faithfulness_absolute"]
    assert m["cpr"] == pytest.approx(sum((x[i + 1] - x[i]) * (fs[i] + fs[i + 1]) / 2 for i in range(9)))
    assert m["cmd"] == pytest.approx(sum((x[i + 1] - x[i]) * (abs(1 - fa[i]) + abs(1 - fa[i + 1])) / 2
                                         for i in range(9)))
    d = json.loads(mib.read_text())
    assert len(d["edges"]) == 479 and 0 < sum(e["in_graph"] for e in d["edges"].values()) <= 60
    assert all(d["edges"][n]["score"] == -v for n, v in zip(sc.graph.names, sc.scores))  # MIB's sign
    s2, _ = load_mib(mib, sc.graph)
    assert np.allclose(s2.scores, sc.scores, rtol=1e-12, atol=0)
    circ = tmp_path / "c.json"
    assert main(["circuit", "--level", "edges", "--model", "toy-arith", "--task", "arith:+", "--n-per-op", "12",
                 "--n-eval", "12", "--ablation", "resample", "--target", "0.8", "--out", str(circ)]) == 0
    c = EdgeCircuit.load(circ)
    assert c.faithfulness >= 0.8 and len(c.edges) < 479 and c.curve["reached"]
    assert main(["edges", "--model", "toy-arith", "--out", str(out), "--ig-steps", "0"]) == 2


def test_smollm2_edge_graph_and_exact():
    import interp
    from interp.circuits.edges import EdgeEvaluator, EdgeForward
    from interp.circuits.edges.exact import exact_edge_effects
    from interp.circuits.edges.prep import prepare_batches

    model = interp.load_model("smollm2-135m")
    pairs = interp.parse_task("ioi:4").pairs(model)
    ef = EdgeForward(model)
    g = ef.graph
    assert (g.n_heads, g.n_kv_heads, g.n_edges) == (9, 3, 123211)
    with torch.inference_mode():
        ref = model(pairs.clean_tokens)[:, -1]
        assert (ef.run(pairs.clean_tokens).logits - ref).abs().max() <= 1e-4 * ref.abs().max()
        batches = prepare_batches(ef, pairs, ablation="counterfactual")
    edges = [g.name_to_edge[n] for n in ("input->a0.h4<k>", "a10.h2->a20.h5<v>", "m29->logits")]
    vals, _ = exact_edge_effects(ef, batches, "logit_diff", edges=np.array(edges))
    ev = EdgeEvaluator(model, pairs)
    for e, v in zip(edges, vals):
        keep = np.ones(g.n_edges, dtype=bool)
        keep[e] = False
        assert abs((ev.values(keep).mean() - ev.m_full.mean()) - v) <= 1e-3 * max(1.0, abs(v))
