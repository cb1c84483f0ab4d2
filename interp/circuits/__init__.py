"""Circuit discovery (Nikankin et al., ICLR 2025, methods.md §A.1): rank components, sweep, score faithfulness.

``component_effects`` patches every head and MLP per position over several corrupt seeds; ``find_circuit`` adds
heads in rank order (all MLPs kept) until faithfulness on held-out prompts reaches a target, and re-scores the
chosen circuit under every ablation. The `Circuit` result saves to JSON and plots its curve and diagram.

Level 4 (circuits): ablation hooks and mean cache (`ablation`), Eq. 2 (`faithfulness`), `Circuit` (`circuit`),
component effects (`effects`), the search and its `SearchSettings` (`search`, `settings`), plots, attention-head
detectors (`heads`). May import levels 0-3 (core, models, tasks, patching); never neurons, vocab, report, cli.
"""

from interp.circuits.ablation import ABLATIONS, CircuitError, mean_cache
from interp.circuits.circuit import Circuit
from interp.circuits.effects import DEFAULT_SEEDS, PAPER_SEEDS, ComponentEffects, component_effects
from interp.circuits.faithfulness import FaithfulnessResult, faithfulness
from interp.circuits.plots import plot_curve, plot_curves, plot_diagram, plot_effects
from interp.circuits.search import RANKS, evaluation_pairs, find_circuit, find_circuits, sweep
from interp.circuits.settings import SearchSettings

__all__ = [
    "ABLATIONS",
    "Circuit",
    "CircuitError",
    "ComponentEffects",
    "DEFAULT_SEEDS",
    "FaithfulnessResult",
    "PAPER_SEEDS",
    "RANKS",
    "SearchSettings",
    "component_effects",
    "evaluation_pairs",
    "faithfulness",
    "find_circuit",
    "find_circuits",
    "mean_cache",
    "plot_curve",
    "plot_curves",
    "plot_diagram",
    "plot_effects",
    "sweep",
]
