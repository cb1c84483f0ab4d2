"""Explaining prompts (Zhao et al., "Explainability for Large Language Models: A Survey", §4).

* `saliency` - gradient, gradient × input, integrated gradients (with completeness error) and attention maps,
  aggregated per token, word and in-context demonstration (`interp.explain.saliency`).
* `reading_vector`, `probe_layers` - representation reading (RepE LAT / mean difference; logistic probes per layer,
  held-out and cross-dataset accuracy) (`interp.explain.repe`); `steer`, `dose_response` - representation control
  with a random-vector control (`interp.explain.steering`).
* `icl_experiment` - contrastive demonstrations and the flipped-label test (`interp.explain.icl`);
  `cot_saliency` - question saliency across chain-of-thought steps (`interp.explain.cot_saliency`).
* `uncertainty` - token/sequence/consistency confidence, AUROC/ECE, logit-lens layer (`interp.explain.uncertainty`).
* Built-in stimuli: `load_sentiment` (200 balanced reviews), `load_statements` (cities, animals)
  (`interp.explain.data`).
"""

from interp.explain._common import ExplainError
from interp.explain.cot_saliency import CotSaliencyResult, cot_saliency
from interp.explain.data import Labelled, load_sentiment, load_statements, statement_families
from interp.explain.icl import ICLResult, icl_experiment
from interp.explain.repe import ProbeResult, ReadingVector, activations, fit_probe, probe_layers, reading_vector
from interp.explain.saliency import METHODS, PromptSaliency, SaliencyResult, saliency
from interp.explain.steering import DoseResponse, dose_response, steer
from interp.explain.uncertainty import UncertaintyResult, uncertainty

__all__ = [
    "CotSaliencyResult",
    "DoseResponse",
    "ICLResult",
    "UncertaintyResult",
    "cot_saliency",
    "icl_experiment",
    "uncertainty",
    "ExplainError",
    "Labelled",
    "METHODS",
    "ProbeResult",
    "PromptSaliency",
    "ReadingVector",
    "SaliencyResult",
    "activations",
    "dose_response",
    "fit_probe",
    "load_sentiment",
    "load_statements",
    "probe_layers",
    "reading_vector",
    "saliency",
    "statement_families",
    "steer",
]
