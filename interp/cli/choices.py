"""Option choices of the command line, kept here so that building the parser (``interp --help``) imports no torch.

Each tuple mirrors a library constant; `tests/unit/test_bad_input_cli.py::test_cli_choices_mirror_the_library`
checks that they are equal, so a new metric or ablation added to the library fails that test until it is added here.
"""

from __future__ import annotations

METRICS = ("ie", "ie_logits", "logit_diff", "logit_diff_change", "logit_diff_norm", "prob", "prob_norm")  # metrics
ABLATIONS = ("mean", "zero", "resample")  # circuits.ablation.ABLATIONS
RANKS = ("exact", "attribution")  # circuits.search.RANKS
GRIDS = ("paper", "code")  # neurons.heuristics.GRIDS
K_RULES = ("paper", "code")  # neurons.heuristics.K_RULES
MAP_MODES = ("hybrid", "k", "kv")  # neurons.heuristics.MAP_MODES
EDGE_ABLATIONS = ("counterfactual", "mean", "zero")  # circuits.edges.EDGE_ABLATIONS
EDGE_METRICS = METRICS + ("nl",)  # circuits.edges.EDGE_METRICS
EDGE_METHODS = ("eap", "eap-ig-inputs", "eap-ig-activations", "exact")  # circuits.edges.METHODS
EDGE_SELECTIONS = ("topn", "greedy")  # circuits.edges.search.SELECTIONS
MIB_SIGNS = ("mib", "metric")  # circuits.edges.mib.MIB_SIGNS
COT_VARIANTS = ("full_cot", "equation_only", "text_only", "add_only", "mult_only", "incorrect_label",
                "incorrect_ood_label", "no_cot")  # vocab.cot.VARIANTS
REPORT_SECTIONS = ("edges", "explain")  # report.OPTIONAL_SECTIONS
# models.toy.ToyArithConfig() defaults that train-toy exposes
TOY_DEFAULTS = {"steps": 4000, "seed": 0, "n_layers": 4, "d_model": 128, "n_heads": 4, "d_mlp": 512,
                "batch_size": 256, "lr": 0.001}
