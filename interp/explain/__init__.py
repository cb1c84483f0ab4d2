"""Explaining prompts (Zhao et al., "Explainability for Large Language Models: A Survey", §4).

* `saliency` - gradient, gradient × input, integrated gradients (with completeness error) and attention maps,
  aggregated per token, word and in-context demonstration (`interp.explain.saliency`).
"""

from interp.explain._common import ExplainError
from interp.explain.saliency import METHODS, PromptSaliency, SaliencyResult, saliency

__all__ = ["ExplainError", "METHODS", "PromptSaliency", "SaliencyResult", "saliency"]
