"""Help pages of the subcommands: a description, one or two examples and a typical runtime each, and a formatter that
states every option's default (unless its help text already does).

`interp.cli.build_parser` applies `HELP` to each subcommand's parser after ``register``, so the command modules keep
only their options. Runtimes were measured on an idle 2-core CPU machine (docs/benchmarks*.md); a loaded machine is
slower.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends ``(default: X)`` to options whose help does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or action.option_strings == []
            or default == ""
        ):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


# name -> (description, examples, typical runtime)
HELP: dict[str, tuple[str, tuple[str, ...], str]] = {
    "models": (
        "List the built-in models and whether each can be loaded now (nothing is downloaded).",
        ("interp models", "interp models --json"),
        "under 1 s",
    ),
    "train-toy": (
        "Train the toy arithmetic model (1000 single-token numbers, operands 0-99, + - * /) deterministically with "
        "an answer-only loss and write it as a model directory that --model DIR loads. With --checkpoint-every N it "
        "also saves step_N checkpoints for `interp dynamics`. An interrupted run leaves no checkpoint folder behind.",
        ("interp train-toy --out runs/toy",
         "interp train-toy --out runs/toy --checkpoint-every 500   # 8 checkpoints for interp dynamics"),
        "about 7 min for the default 4000 steps (--steps 200: about 20-30 s)",
    ),
    "patch": (
        "Exact activation patching of one site family (heads, MLPs, residual stream, attention/MLP outputs or "
        "single neurons) at every layer and the chosen positions, on clean/corrupt prompt pairs of a task. Prints "
        "the top effects as a table; --out also writes the full result as JSON and --plot a heatmap. With --path-to, "
        "path patching of each head along the direct path to the logits or through receiver heads.",
        ("interp patch --model toy-arith --task arith:+ --site heads --positions last",
         "interp patch --model smollm2-135m --task ioi:32 --metric logit_diff --out ioi.json --plot ioi.html"),
        "toy-arith: 2-10 s; smollm2-135m ioi:32 heads: about 1 min",
    ),
    "report": (
        "The main job: one self-contained HTML report on a model's arithmetic (accuracy, patching maps, circuit, "
        "neuron heuristics for toy-arith; accuracy, patching, concept neurons and IOI heads for pretrained models).",
        ("interp report --model toy-arith --out report.html",
         "interp report --model smollm2-135m --quick --out smollm.html"),
        "toy-arith: about 40 s; smollm2-135m: several minutes",
    ),
    "circuit": (
        "Circuit discovery: rank heads (exact or attribution patching, averaged over seeds), add them until the "
        "circuit reaches the target faithfulness (Eq. 2) with every MLP kept, evaluate on held-out prompts and "
        "write the circuit as JSON. --level edges finds an edge-level circuit instead.",
        ("interp circuit --model toy-arith --task arith --out circuit.json --ablation mean --target 0.9",
         "interp circuit --model smollm2-135m --task ioi:32 --metric logit_diff_change --seeds 0 --out ioi.json"),
        "toy-arith: about 1 min; smollm2-135m ioi:32: about 6 min",
    ),
    "neurons": (
        "Find the important MLP neurons of an arithmetic task (attribution or exact patching), classify them into "
        "arithmetic heuristics (Algorithm 1: result/operand ranges, mod n, patterns), knock out heuristic classes "
        "and prompt-guided neurons against random ones, and write it all as JSON. Needs an arithmetic task.",
        ("interp neurons --model toy-arith --task arith --out neurons.json --plot neurons.html",
         "interp neurons --model toy-arith --task arith:+ --top-k 20 --layers 2,3 --out n.json"),
        "toy-arith: about 30 s (all four operators)",
    ),
    "dynamics": (
        "The neuron pipeline at every training checkpoint of a toy model (Fig. 10): accuracy, classified share, "
        "intersection with the final model's heuristic neurons, knockouts and mutual-neuron faithfulness per step.",
        ("interp train-toy --out run --checkpoint-every 500 && "
         "interp dynamics --checkpoints run --task arith --out dynamics.json",),
        "about 5 min for 8 checkpoints",
    ),
    "concepts": (
        "Concept neurons by vocabulary projection: MLP neurons whose value vectors promote the tokens of a concept "
        "(+ - * / =, 'so', 'then', formula words), by Rai & Yao's lexicon rule, optionally confirmed by a judge.",
        ("interp concepts --model smollm2-135m --out concepts.json",
         "interp concepts --model smollm2-135m --concepts add,subtract --skip-layers none --out c.json"),
        "smollm2-135m: 10-60 s (vocabulary projection of all 46,080 neurons)",
    ),
    "cot": (
        "Chain-of-thought variants of word problems: accuracy of each exemplar variant and how strongly the concept "
        "neurons activate while the model writes its answer.",
        ("interp cot --model smollm2-135m --concepts concepts.json --out cot.json",
         "interp cot --model smollm2-135m --variants full_cot,no_cot --n-problems 8 --no-activation --out cot.json"),
        "smollm2-135m: about 33 min for all 64 problems of the variants (80 new tokens); --n-problems 8: a few min",
    ),
    "edges": (
        "Edge-level circuits: score every sender -> receiver edge with EAP, EAP-IG or exact patching, optionally "
        "select a circuit (--top-n / --threshold), measure MIB's CPR/CMD (--curve), write MIB's format (--mib).",
        ("interp edges --model toy-arith --task arith:+ --method eap-ig-inputs --out edges.json --curve",
         "interp edges --model smollm2-135m --task ioi:16 --method eap --out e.json --mib mib.json"),
        "toy-arith: 5-30 s; smollm2-135m ioi:16: eap 43 s, eap-ig-inputs about 2.5 min (exact: much longer)",
    ),
    "explain": (
        "Explanations of prompts: token saliency (gradients, integrated gradients, attention), in-context "
        "demonstrations, representation reading and steering, uncertainty vs correctness, saliency along a "
        "chain of thought. Each writes JSON with the settings that produced it.",
        ("interp explain saliency --model smollm2-135m --prompt 'When Mary and John went to the store, John gave a "
         "drink to' --target ' Mary' --out sal.json",
         "interp explain uncertainty --model toy-arith --source arith:+:0-99 --n 60 --k 0 --out unc.json"),
        "saliency: seconds; icl/repe/uncertainty on smollm2-135m: 5-40 min",
    ),
}


# `interp explain WHAT`: examples and runtime of each
EXPLAIN_HELP: dict[str, tuple[tuple[str, ...], str]] = {
    "saliency": (("interp explain saliency --model toy-arith --prompt '12+7=' --target 19 --out sal.json",
                  "interp explain saliency --model smollm2-135m --prompt 'When Mary and John went to the store, John "
                  "gave a drink to' --target ' Mary' --contrast ' John' --out sal.json --plot sal.html"),
                 "seconds per prompt (32 integrated-gradient steps)"),
    "icl": (("interp explain icl --model smollm2-135m --shots 0,2,4,8 --n-queries 40 --out icl.json",),
            "smollm2-135m: about 8 min for 40 queries"),
    "repe": (("interp explain repe --model smollm2-135m --concept truth --family cities --out truth.json",
              "interp explain repe --model smollm2-135m --concept sentiment --steer-layer 18 --out sent.json"),
             "smollm2-135m: about 20 min"),
    "uncertainty": (("interp explain uncertainty --model toy-arith --source arith:+:0-99 --n 60 --k 0 --out u.json",
                     "interp explain uncertainty --model smollm2-135m --source arith:+:10-99 --n 60 --k 5 "
                     "--out unc.json"),
                    "toy-arith: about 50 s; smollm2-135m: 4-30 min"),
    "cot": (("interp explain cot --model smollm2-135m --variants no_cot,full_cot --out cot_sal.json",),
            "smollm2-135m: about 15 min for 4 problems"),
}


def _epilog(examples: tuple[str, ...], runtime: str) -> str:
    return "examples:\n" + "\n".join(f"  {e}" for e in examples) + f"\n\ntypical runtime: {runtime}"


def apply_help(parser: argparse.ArgumentParser, name: str) -> None:
    """Set the description, examples and runtime of subcommand ``name`` (and the default-stating formatter on it and
    on its own subcommands)."""
    desc, examples, runtime = HELP[name]
    parser.description = textwrap.fill(desc, width=100)
    parser.epilog = _epilog(examples, runtime)
    _set_formatter(parser)
    if name == "explain":
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for what, sub in action.choices.items():
                    if what in EXPLAIN_HELP:
                        sub.epilog = _epilog(*EXPLAIN_HELP[what])


def _set_formatter(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if sub.description is None:
                    sub.description = _sub_help(action, sub)
                _set_formatter(sub)


def _sub_help(action: Any, sub: argparse.ArgumentParser) -> str | None:
    for choice in action._choices_actions:
        if action.choices.get(choice.dest) is sub:
            return choice.help
    return None
