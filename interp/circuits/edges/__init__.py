"""Edge-level circuits on TransformerLens 4 bridges: EAP, EAP-IG and exact edge patching, scored the MIB way.

``edge_scores(model, pairs_or_task, method=...)`` scores every edge ``sender -> receiver`` of `EdgeGraph`
(senders: input, heads, MLPs; receivers: each head's q, k and v inputs, each MLP, the logits);
`EdgeScores.circuit` / `select` choose edges; `EdgeEvaluator` measures faithfulness and MIB's CPR / CMD;
`save_mib` / `load_mib` read and write MIB's submission format. See docs/edges.md.
"""

from interp.circuits.edges.evaluate import (
    MIB_BUDGETS,
    EdgeEvaluator,
    EdgeFaithfulness,
    check_budgets,
    mib_curve,
    mib_scores,
    random_curve,
    trapezoid_areas,
)
from interp.circuits.edges.exact import exact_edge_effects, naive_edge_effect
from interp.circuits.edges.forward import EdgeForward
from interp.circuits.edges.graph import EdgeError, EdgeGraph, Unsupported, build_graph
from interp.circuits.edges.mib import load_mib, save_mib, to_mib
from interp.circuits.edges.prep import EDGE_ABLATIONS, EDGE_METRICS
from interp.circuits.edges.result import EdgeCircuit, EdgeScores
from interp.circuits.edges.scores import METHODS, edge_scores
from interp.circuits.edges.select import edges_of_nodes, greedy_edges, prune_edges, threshold_edges, top_n_edges

__all__ = [
    "EDGE_ABLATIONS", "EDGE_METRICS", "METHODS", "MIB_BUDGETS", "EdgeCircuit", "EdgeError", "EdgeEvaluator",
    "EdgeFaithfulness", "EdgeForward", "EdgeGraph", "EdgeScores", "Unsupported", "build_graph", "check_budgets",
    "edge_scores", "edges_of_nodes", "exact_edge_effects", "greedy_edges", "load_mib", "mib_curve", "mib_scores",
    "naive_edge_effect", "prune_edges", "random_curve", "save_mib", "threshold_edges", "to_mib", "top_n_edges",
    "trapezoid_areas",
]
