"""Edge-level circuits: graph, exact/EAP/EAP-IG oracles, evaluation vs the node evaluator, MIB format, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interp.circuits.edges import (
    EdgeCircuit,
    EdgeError,
    EdgeEvaluator,
    EdgeForward,
    EdgeScores,
    build_graph,
    check_budgets,
    edge_scores,
    edges_of_nodes,
    greedy_edges,
    load_mib,
    prune_edges,
    save_mib,
    threshold_edges,
    top_n_edges,
    trapezoid_areas,
)
from interp.circuits.edges.exact import edge_hooks, exact_edge_effects, naive_edge_effect, sender_delta_from_cache
from interp.circuits.edges.prep import prepare_batches
from interp.metrics import MetricContext, make_metric
from tests.conftest import random_pairs, tiny_bridge


@pytest.fixture(scope="module")
def model():
    return tiny_bridge()


@pytest.fixture(scope="module")
def pairs(model):
    return random_pairs(model, batch=4, seq=5, seed=1)


@pytest.fixture(scope="module")
def eap(model, pairs):
    return edge_scores(model, pairs, "eap")


def test_graph_counts_and_names(model):
    g = build_graph(model)
    # layer l: 12 q/k/v receivers fed by 1 + 5l senders, the MLP by 5 + 5l; 16 senders into the logits
    assert g.n_edges == sum(12 * (1 + 5 * l) + 5 + 5 * l for l in range(3)) + 16 == 262
    c = g.counts()
    assert c["q"] == c["k"] == c["v"] == 4 * (1 + 6 + 11) and c["logits"] == 16 and c["mlp"] == 5 + 10 + 15
    assert "input->a0.h0<q>" in g.name_to_edge and "a0.h3->m0" in g.name_to_edge and "m2->logits" in g.names
    assert "a1.h0->a1.h1<q>" not in g.name_to_edge and "m1->a1.h0<k>" not in g.name_to_edge
    gqa = build_graph(tiny_bridge(n_key_value_heads=2))
    assert gqa.n_edges == g.n_edges and gqa.n_kv_heads == 2  # k/v receivers per query head (MIB's convention)


def test_forward_reproduces_bridge(model):
    for m in (model, tiny_bridge(n_key_value_heads=2)):
        toks = torch.randint(0, 50, (3, 6))
        ef = EdgeForward(m)
        with torch.inference_mode():
            ref = m(toks)[:, -1]
            zero = {("qkv", lyr): torch.zeros(3, 6, 12, 32) for lyr in range(3)}
            assert torch.allclose(ef.run(toks).logits, ref, atol=1e-5)
            assert torch.allclose(ef.run(toks, extra=zero).logits, ref, atol=1e-5)  # the per-head path


def _shared_prefix(pairs, k):
    """Pairs whose corrupt prompts repeat the clean prompts' first ``k`` tokens (so the cone starts at ``k``)."""
    corrupt = pairs.corrupt_tokens.clone()
    corrupt[:, :k] = pairs.clean_tokens[:, :k]
    return type(pairs)(pairs.clean_tokens, corrupt, pairs.clean_answers, pairs.corrupt_answers,
                       pairs.position_labels, "prefix")


@pytest.mark.parametrize(("prefix", "metric"), [(0, "logit_diff"), (3, "logit_diff"), (3, "prob"), (4, "ie")])
def test_exact_equals_single_edge_hook_patch_for_every_edge(model, pairs, prefix, metric):
    """Every edge against one plain-hook forward; ``logit_diff`` runs on the two answer columns of the unembedding,
    ``prob``/``ie`` on the whole vocabulary; a shared prefix starts the receiver layer's recomputation at it (with
    ``prefix=4`` only the last position differs)."""
    pairs = _shared_prefix(pairs, prefix) if prefix else pairs
    ef = EdgeForward(model)
    with torch.inference_mode():
        batches = prepare_batches(ef, pairs, ablation="counterfactual", batch_size=3)  # two chunks
        vals, cost = exact_edge_effects(ef, batches, metric, max_rows=24)
        cl, cc = model.run_with_cache(pairs.clean_tokens)
        kl, kc = model.run_with_cache(pairs.corrupt_tokens)
    f = make_metric(metric, MetricContext(cl[:, -1], kl[:, -1], pairs.clean_answers, pairs.corrupt_answers))
    base = f(cl[:, -1]).double().mean()
    got = []
    for name in ef.graph.names:
        s, r = name.split("->")
        delta = sender_delta_from_cache(model, cc, kc, s)
        got.append(float(f(naive_edge_effect(model, pairs.clean_tokens, delta, r)).double().mean() - base))
    scale = max(1.0, float(np.abs(got).max()))
    assert np.abs(np.array(got) - vals).max() <= 1e-5 * scale
    assert np.abs(vals).max() > (0.05 if metric == "logit_diff" else 1e-4) and cost["edges"] == 262


def test_eap_equals_hand_written_atp_through_edges(model, pairs, eap):
    """Oracle: (corrupt - clean sender output) . d metric / d receiver input, by plain hooks and autograd."""
    with torch.inference_mode():
        cl, cc = model.run_with_cache(pairs.clean_tokens)
        kl, kc = model.run_with_cache(pairs.corrupt_tokens)
    f = make_metric("logit_diff", MetricContext(cl[:, -1], kl[:, -1], pairs.clean_answers, pairs.corrupt_answers))
    g = eap.graph
    rng = np.random.default_rng(0)
    receivers = sorted(set(g.receivers[j] for j in g.edge_index[1]))
    for rec in receivers:
        probe = torch.zeros(pairs.n, pairs.seq_len, 32, requires_grad=True)
        logits = model.run_with_hooks(pairs.clean_tokens, fwd_hooks=edge_hooks(model, probe, rec))[:, -1]
        (grad,) = torch.autograd.grad(f(logits).sum(), probe)
        edges = [i for i, n in enumerate(g.names) if n.endswith("->" + rec)]
        for i in rng.choice(edges, size=min(3, len(edges)), replace=False):
            delta = sender_delta_from_cache(model, cc, kc, g.names[i].split("->")[0])
            want = float((delta * grad).sum().detach()) / pairs.n
            assert abs(eap.scores[i] - want) <= 1e-5 * max(1.0, abs(want)), g.names[i]


def test_ig_with_one_step_equals_eap(model, pairs, eap):
    # inputs: the same runs as EAP, bit for bit; activations: runs that start at each group's layer from the clean
    # residual (an MLP group's layer takes the clean head outputs), equal up to float32 rounding
    for method, tol in (("eap-ig-inputs", 1e-10), ("eap-ig-activations", 1e-6 * np.abs(eap.scores).max())):
        one = edge_scores(model, pairs, method, ig_steps=1)
        assert np.allclose(one.scores, eap.scores, atol=tol, rtol=0)
    five = edge_scores(model, pairs, "eap-ig-inputs", ig_steps=5)
    assert not np.allclose(five.scores, eap.scores, atol=1e-6)  # interpolation changes the gradient


def _activation_ig_oracle(model, pairs, steps, rule):
    """EAP-IG over activations the slow way: one full run per (group, step), nothing cached or stacked."""
    from interp.circuits.edges.scores import _accumulate, ig_alphas

    ef = EdgeForward(model)
    g = ef.graph
    with torch.inference_mode():
        (b,) = prepare_batches(ef, pairs, ablation="counterfactual", batch_size=pairs.n)
    out = torch.zeros(len(g.senders), len(g.receivers), dtype=torch.float64)
    groups = [(("input", 0), slice(0, 1))]
    for layer in range(g.n_layers):
        s0 = g.sender_index(layer, 0)
        h = ef.n_heads
        groups += [(("attn", layer), slice(s0, s0 + h)), (("mlp", layer), slice(s0 + h, s0 + h + 1))]
    delta = b.values - b.outputs
    with torch.enable_grad():
        for key, rows in groups:
            for a in ig_alphas(steps, rule):
                v, o = b.values[:, :, rows], b.outputs[:, :, rows]
                val = v + a * (o - v)
                over = {key: val if key[0] == "attn" else val[:, :, 0]}
                _accumulate(ef, out, ef.run(b.clean, probes=True, override=over), b.metric("logit_diff"), delta, rows)
    s, r = g.edge_index
    return (out / (pairs.n * steps)).numpy()[s, r]


@pytest.mark.parametrize(("steps", "rule", "rows"), [(5, "right", 64), (3, "left", 4), (4, "right", 8)])
def test_activation_ig_from_each_groups_layer_equals_full_runs(model, pairs, steps, rule, rows):
    """Runs that start at the interpolated group's layer, with the steps stacked (``rows``: all, one step per
    pass, two per pass), give the scores of one full run per group and step."""
    from interp.circuits.edges.scores import gradient_scores

    ef = EdgeForward(model)
    with torch.inference_mode():
        batches = prepare_batches(ef, pairs, ablation="counterfactual", batch_size=pairs.n)
    s, r = ef.graph.edge_index
    got = gradient_scores(ef, batches, "logit_diff", "eap-ig-activations", steps, rule, ig_rows=rows).numpy()[s, r]
    want = _activation_ig_oracle(model, pairs, steps, rule)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    assert np.abs(want).max() > 0.01


def test_activation_ig_from_each_groups_layer_on_rotary_gqa(tmp_path):
    from interp.circuits.edges.scores import gradient_scores

    m = _tiny_llama(tmp_path, 2)
    pairs = random_pairs(m, batch=3, seq=5, seed=4)
    ef = EdgeForward(m)
    with torch.inference_mode():
        batches = prepare_batches(ef, pairs, ablation="counterfactual", batch_size=pairs.n)
    s, r = ef.graph.edge_index
    got = gradient_scores(ef, batches, "logit_diff", "eap-ig-activations", 3, "right", ig_rows=6).numpy()[s, r]
    want = _activation_ig_oracle(m, pairs, 3, "right")
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max() and np.abs(want).max() > 0.01


def test_ig_rules_are_the_papers_and_the_codes_interpolation_points(model, pairs, eap):
    """right: alpha = k/m, k=1..m (the paper); left: k=0..m-1 (the EAP-IG/MIB code). Scores are means of per-alpha
    gradients, so 2 L(2) - L(1) = g(1/2) = 2 R(2) - R(1), and R(1) = g(1) = EAP while L(1) = g(0) (ablated input)."""
    from interp.circuits.edges.scores import ig_alphas

    assert ig_alphas(4) == [0.25, 0.5, 0.75, 1.0] and ig_alphas(4, "left") == [0.0, 0.25, 0.5, 0.75]
    sc = {(m, r): edge_scores(model, pairs, "eap-ig-inputs", ig_steps=m, ig_rule=r).scores
          for m in (1, 2) for r in ("right", "left")}
    np.testing.assert_allclose(sc[(1, "right")], eap.scores, atol=1e-10, rtol=0)
    assert not np.allclose(sc[(1, "left")], eap.scores, atol=1e-6)
    np.testing.assert_allclose(2 * sc[(2, "left")] - sc[(1, "left")], 2 * sc[(2, "right")] - sc[(1, "right")],
                               atol=1e-9, rtol=1e-7)
    r = edge_scores(model, pairs, "eap-ig-inputs", ig_steps=2, ig_rule="left")
    assert r.meta["ig_rule"] == "left"
    with pytest.raises(KeyError, match="right"):
        edge_scores(model, pairs, "eap-ig-inputs", ig_rule="middle")


def test_faithfulness_of_node_set_equals_node_evaluator(model, pairs):
    from interp.circuits import faithfulness, mean_cache

    heads, mlps = {(0, 1), (1, 2), (2, 0), (2, 3)}, {0, 2}
    ref_tokens = torch.randint(0, 50, (20, pairs.seq_len), generator=torch.Generator().manual_seed(3))
    for node_abl, edge_abl in (("resample", "counterfactual"), ("mean", "mean"), ("zero", "zero")):
        mean = mean_cache(model, None, tokens=ref_tokens) if node_abl == "mean" else None
        node = faithfulness(model, pairs.clean_tokens, pairs.clean_answers, keep_heads=heads, keep_mlps=mlps,
                            ablation=node_abl, mean=mean, resample_tokens=pairs.corrupt_tokens)
        ev = EdgeEvaluator(model, pairs, ablation=edge_abl, metric="nl", mean_tokens=ref_tokens)
        m_circ = ev.values(edges_of_nodes(ev.graph, heads, mlps))
        m_empty = ev.values(edges_of_nodes(ev.graph, [], []))  # input -> logits only = every node ablated
        assert np.allclose(m_circ, node.nl_circuit, atol=1e-5), node_abl
        assert np.allclose(m_empty, node.nl_empty, atol=1e-5), node_abl
        assert np.allclose(ev.m_full, node.nl_full, atol=1e-6)
        ratios = (m_circ - m_empty) / (ev.m_full - m_empty)
        assert abs(np.nanmean(ratios) - node.faithfulness) <= 1e-4


def test_evaluator_ends_and_single_edge(model, pairs):
    ev = EdgeEvaluator(model, pairs)
    g = ev.graph
    assert abs(ev.score(np.arange(g.n_edges)).faithfulness - 1) < 1e-9
    assert abs(ev.score([], allow_empty=True).faithfulness) < 1e-9
    exact = edge_scores(model, pairs, "exact")
    for e in (0, 57, g.n_edges - 1):  # the whole graph minus one edge = that edge's exact effect
        keep = np.ones(g.n_edges, dtype=bool)
        keep[e] = False
        assert abs((ev.values(keep).mean() - ev.m_full.mean()) - exact.scores[e]) < 1e-5


def test_selection_and_pruning(model):
    g = build_graph(model)
    scores = np.zeros(g.n_edges)
    names = ["input->a0.h1<q>", "a0.h1->m1", "m1->logits", "a1.h2->a2.h0<v>"]  # last one is dangling
    idx = g.edges_from_names(names)
    scores[idx] = [3.0, -2.0, 1.5, 5.0]
    assert set(top_n_edges(scores, 2)) == {idx[3], idx[0]}
    assert set(top_n_edges(scores, 2, absolute=False)) == {idx[3], idx[0]}
    assert set(threshold_edges(scores, 1.9)) == {idx[0], idx[1], idx[3]}
    assert set(prune_edges(g, idx)) == set(idx[:3])
    assert set(prune_edges(g, idx[[0, 2, 3]])) == set()  # m1 is not reached from the input
    # greedy grows from the logits: m1->logits first, then a0.h1->m1, then input->a0.h1<q>; a1.h2 never connects
    assert set(greedy_edges(g, scores, 3)) == set(idx[:3])


def test_trapezoid_and_budgets():
    cpr, cmd = trapezoid_areas([0.0, 0.5, 1.0], [0.0, 1.0, 1.0])
    assert cpr == pytest.approx(0.75) and cmd == pytest.approx(0.25)
    assert check_budgets([0.1, 100]) == [0.1, 100.0]
    for bad in ([0, 10], [10, 101], [-1, 5], [5, 5], [50]):
        with pytest.raises(EdgeError):
            check_budgets(bad)


def test_mib_curve_full_budget_is_one(model, pairs, eap):
    ev = EdgeEvaluator(model, pairs)
    c = ev.curve(eap, budgets=(1, 10, 50, 100))
    assert c["faithfulness"][-1] == pytest.approx(1.0) and c["n_edges"] == [2, 26, 131, 262]
    x = [0.01, 0.1, 0.5, 1.0]
    assert c["cpr"] == pytest.approx(trapezoid_areas(x, c["faithfulness"])[0])


def test_signed_ranking_puts_helpful_edges_first(model, pairs):
    """absolute=False ranks by helpfulness (MIB's signed order): under logit_diff the most negative exact effects
    (ablating the edge lowers the logit difference) first; under ie (which rises toward the corrupt answer) the most
    positive. The old signed order took the largest raw score, the edges that hurt most."""
    ex = edge_scores(model, pairs, "exact")
    g = ex.graph
    order = np.argsort(ex.scores, kind="stable")
    assert ex.scores[order[0]] < 0 < ex.scores[order[-1]]  # the tiny bridge has edges of both signs
    assert np.array_equal(ex.helpfulness, -ex.scores)
    assert ex.top(3, absolute=False) == [(g.names[i], float(ex.scores[i])) for i in order[:3]]
    assert set(ex.circuit(5, absolute=False, prune=False).edges) == set(order[:5].tolist())
    ie = EdgeScores(g, ex.scores.copy(), method="exact", metric="ie")
    assert np.array_equal(ie.helpfulness, ex.scores)
    assert set(ie.circuit(5, absolute=False, prune=False).edges) == set(order[-5:].tolist())


def test_mib_scores_cpr_signed_cmd_absolute(model, pairs):
    """MIB reports CPR from the signed ranking's curve and CMD from the |score| ranking's curve
    (MIB-circuit-track print_results.py); checked against curves built by hand from ev.score."""
    ex = edge_scores(model, pairs, "exact")
    ev = EdgeEvaluator(model, pairs)
    g = ev.graph
    budgets = (1, 5, 20, 50, 100)
    m = ev.mib_scores(ex, budgets=budgets)

    def by_hand(key):
        fs = [ev.score(prune_edges(g, top_n_edges(key, int(b / 100 * g.n_edges), absolute=False)),
                       allow_empty=True).faithfulness
              for b in budgets]
        return fs, trapezoid_areas([b / 100 for b in budgets], fs)

    f_signed, (cpr_signed, _) = by_hand(-ex.scores)
    f_abs, (cpr_abs, cmd_abs) = by_hand(np.abs(ex.scores))
    assert m["signed"]["faithfulness"] == pytest.approx(f_signed, abs=1e-12)
    assert m["absolute"]["faithfulness"] == pytest.approx(f_abs, abs=1e-12)
    assert m["cpr"] == pytest.approx(cpr_signed, abs=1e-12) and m["cmd"] == pytest.approx(cmd_abs, abs=1e-12)
    assert m["cpr"] != pytest.approx(cpr_abs)  # the two rankings differ on this model
    assert m["n_evaluations"] < 2 * len(budgets)  # the 100% circuit (and any other shared one) is evaluated once


def test_mib_file_sign(model, pairs, eap, tmp_path):
    """sign="mib" writes positive scores for helpful edges (MIB's run_attribution uses the negated logit
    difference), so MIB's signed selection (largest file score first, ``Graph.apply_topn(absolute=False)``) picks
    our signed circuit; sign="metric" writes our scores; both load back to our scores."""
    save_mib(tmp_path / "mib.json", eap)
    d = json.loads((tmp_path / "mib.json").read_text())
    file_scores = np.array([d["edges"][n]["score"] for n in eap.graph.names])
    assert np.array_equal(file_scores, -eap.scores)
    mib_top = np.argsort(-file_scores, kind="stable")[:10]
    assert set(mib_top.tolist()) == set(eap.circuit(10, absolute=False, prune=False).edges)
    save_mib(tmp_path / "raw.json", eap, sign="metric")
    raw = json.loads((tmp_path / "raw.json").read_text())
    assert np.array_equal(np.array([raw["edges"][n]["score"] for n in eap.graph.names]), eap.scores)
    assert np.array_equal(load_mib(tmp_path / "raw.json", eap.graph, sign="metric")[0].scores, eap.scores)
    assert np.array_equal(load_mib(tmp_path / "mib.json", eap.graph)[0].scores, eap.scores)
    as_ie = load_mib(tmp_path / "mib.json", eap.graph, metric="ie")[0]
    assert as_ie.metric == "ie" and np.array_equal(as_ie.scores, -eap.scores)  # helpfulness = +score under ie


def test_save_load_and_mib_round_trip(model, pairs, eap, tmp_path):
    p = eap.save(tmp_path / "s.json")
    back = EdgeScores.load(p)
    assert np.array_equal(back.scores, eap.scores) and back.graph == eap.graph and back.method == "eap"
    circ = eap.circuit(20)
    assert 0 < len(circ.edges) <= 20
    cb = EdgeCircuit.load(circ.save(tmp_path / "c.json"))
    assert cb.edges == circ.edges and np.array_equal(cb.scores, circ.scores)
    save_mib(tmp_path / "mib.json", eap, circ)
    d = json.loads((tmp_path / "mib.json").read_text())
    assert set(d) == {"cfg", "nodes", "edges"} and d["edges"]["input->a0.h0<q>"].keys() == {"score", "in_graph"}
    s2, c2 = load_mib(tmp_path / "mib.json", eap.graph)
    assert np.allclose(s2.scores, eap.scores, rtol=0, atol=0) and c2.edges == circ.edges
    circ.plot()
    eap.plot()


def test_bad_input(model, pairs, tmp_path):
    with pytest.raises(EdgeError, match="ig_steps"):
        edge_scores(model, pairs, "eap-ig-inputs", ig_steps=0)
    with pytest.raises(KeyError, match="valid"):
        edge_scores(model, pairs, "acdc")
    with pytest.raises(KeyError, match="valid"):
        edge_scores(model, pairs, "eap", ablation="resample")
    # a circuit file for another model: edge names that do not exist here
    other = build_graph(tiny_bridge(n_layers=4))
    circ = EdgeCircuit.from_names(other, ["a3.h0->logits"])
    circ.save(tmp_path / "other.json")
    loaded = EdgeCircuit.load(tmp_path / "other.json")
    with pytest.raises(EdgeError, match="do not exist"):
        build_graph(model).edges_from_names(loaded.names)
    with pytest.raises(EdgeError, match="4 layers"):
        load_mib({"cfg": other.to_cfg(), "edges": {"a3.h0->logits": {"score": 1.0}}}, build_graph(model))
    ev = EdgeEvaluator(model, pairs)
    with pytest.raises(EdgeError, match="empty"):
        ev.score([])
    # identical clean and corrupt prompts: counterfactual ablation changes nothing, f is undefined
    same = random_pairs(model, batch=3, seq=5, seed=2)
    same = type(same)(same.clean_tokens, same.clean_tokens, same.clean_answers, same.corrupt_answers,
                      same.position_labels, "same")
    with pytest.raises(EdgeError, match="same mean"):
        EdgeEvaluator(model, same).score([0])
    with pytest.raises(EdgeError, match="non-finite"):  # zero-ablating every edge zeroes the residual: NL = 0/0
        EdgeEvaluator(model, pairs, ablation="zero", metric="nl").score([0])


def _tiny_llama(tok_dir, kv_heads):
    from tokenizers import Tokenizer, models
    from transformer_lens import TransformerBridge
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(64)}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")),
                                  bos_token="t1", eos_token="t2", unk_token="t0")
    tok.save_pretrained(tok_dir)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=32,
                      rope_theta=100000.0, tie_word_embeddings=True)
    torch.manual_seed(0)
    hf = LlamaForCausalLM(cfg).eval()
    model = TransformerBridge.boot_transformers("tiny-llama", hf_model=hf, tokenizer=tok, device="cpu")
    model.enable_compatibility_mode()
    model.eval()
    return model


def test_eap_equals_transformer_lens_edge_attribution(tmp_path):
    """TL 4.3's edge attribution (``attribution_patch(granularity="edge")``) runs on HF Llama bridges with as many
    key/value heads as query heads. TL is denoising (gradient on the corrupt run, clean - corrupt) and scores each
    edge per position: our noising EAP on the swapped pairs, summed over positions, is the same quantity."""
    from transformer_lens.tools.analysis.attribution_patching import EdgeAttributionConfig, attribution_patch

    model = _tiny_llama(tmp_path, 4)
    pairs = random_pairs(model, batch=3, seq=5, seed=1)
    mine = edge_scores(model, pairs.swapped(), "eap")
    r, r2 = pairs.clean_answers, pairs.corrupt_answers
    tl: dict[str, float] = {}
    names = {"embed": "input", "q_input": "<q>", "k_input": "<k>", "v_input": "<v>"}
    for i in range(pairs.n):
        res = attribution_patch(model, pairs.clean_tokens[i : i + 1], pairs.corrupt_tokens[i : i + 1],
                                lambda lg, i=i: lg[0, -1, r2[i]] - lg[0, -1, r[i]],
                                EdgeAttributionConfig(granularity="edge"))
        for (w, rd), v in res.edge_scores.items():
            s = names.get(w.kind) or (f"a{w.layer}.h{w.head}" if w.kind == "attn_head_out" else f"m{w.layer}")
            if rd.kind in ("q_input", "k_input", "v_input"):
                t = f"a{rd.layer}.h{rd.head}{names[rd.kind]}"
            else:
                t = "logits" if rd.kind == "logits" else f"m{rd.layer}"
            tl[f"{s}->{t}"] = tl.get(f"{s}->{t}", 0.0) + v / pairs.n
    assert set(tl) == set(mine.graph.names)
    ref = np.array([tl[n] for n in mine.graph.names])
    scale = np.abs(ref).max()
    assert np.abs(mine.scores - ref).max() <= 1e-5 * scale
    assert np.all(np.abs(mine.scores - ref) <= 1e-4 * np.maximum(np.abs(ref), 1e-2 * scale))


def test_grouped_query_attention(tmp_path):
    """SmolLM2-like GQA (4 query heads, 2 key/value heads): TL refuses it; our graph has k/v receivers per query
    head, the explicit forward reproduces the bridge, and one-edge exact effects equal the evaluator's."""
    from transformer_lens.tools.analysis.attribution_patching import EdgeAttributionConfig, attribution_patch

    model = _tiny_llama(tmp_path, 2)
    pairs = random_pairs(model, batch=3, seq=5, seed=2)
    with pytest.raises(ValueError, match="GQA"):
        attribution_patch(model, pairs.clean_tokens[:1], pairs.corrupt_tokens[:1], lambda lg: lg[0, -1, 0],
                          EdgeAttributionConfig(granularity="edge"))
    ef = EdgeForward(model)
    with torch.inference_mode():
        assert torch.allclose(ef.run(pairs.clean_tokens).logits, model(pairs.clean_tokens)[:, -1], atol=1e-5)
    exact = edge_scores(model, pairs, "exact")
    ev = EdgeEvaluator(model, pairs)
    g = ev.graph
    # a k edge into query head 1 only changes the keys head 1 sees: not the same as into its group sibling head 0
    e1, e0 = g.name_to_edge["input->a1.h1<k>"], g.name_to_edge["input->a1.h0<k>"]
    assert exact.scores[e1] != pytest.approx(exact.scores[e0], abs=1e-7)
    for e in (e0, e1, g.name_to_edge["a0.h3->a1.h2<v>"]):
        keep = np.ones(g.n_edges, dtype=bool)
        keep[e] = False
        assert abs((ev.values(keep).mean() - ev.m_full.mean()) - exact.scores[e]) < 1e-5


def test_exact_on_rotary_gqa_with_shared_prefix_equals_evaluator_for_every_edge(tmp_path):
    """Rotary keys rotated from the first recomputed position, grouped-query key/value heads, receivers in the last
    layer (last position only): every edge's exact effect equals the evaluator with only that edge ablated."""
    model = _tiny_llama(tmp_path, 2)
    pairs = _shared_prefix(random_pairs(model, batch=3, seq=6, seed=3), 3)
    exact = edge_scores(model, pairs, "exact")
    ev = EdgeEvaluator(model, pairs)
    g = ev.graph
    want = []
    for e in range(g.n_edges):
        keep = np.ones(g.n_edges, dtype=bool)
        keep[e] = False
        want.append(ev.values(keep).mean() - ev.m_full.mean())
    assert np.abs(np.array(want) - exact.scores).max() <= 1e-5 * max(1.0, float(np.abs(want).max()))
    assert np.abs(exact.scores).max() > 0.01


def test_unsupported_architectures(model):
    import types

    from interp.circuits.edges import Unsupported

    cfg = types.SimpleNamespace(n_layers=2, n_heads=4, parallel_attn_mlp=False, attn_only=False)
    fake = types.SimpleNamespace(cfg=cfg, hook_dict={"blocks.0.hook_resid_pre": None})
    with pytest.raises(Unsupported, match="needs the hook 'ln_final.hook_in'"):
        build_graph(fake)
    for flag, msg in (("use_normalization_before_and_after", "non-additive"), ("parallel_attn_mlp", "parallel"),
                      ("attn_only", "attention-only")):
        with pytest.raises(Unsupported, match=msg):
            build_graph(types.SimpleNamespace(cfg=types.SimpleNamespace(**{**vars(cfg), flag: True}), hook_dict={}))
    handle = model.blocks[0].attn.hook_z.add_hook(lambda a, hook: a)
    try:
        with pytest.raises(Unsupported, match="forward hook"):
            EdgeForward(model)
    finally:
        model.reset_hooks()
    del handle
