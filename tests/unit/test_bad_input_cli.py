"""Bad input on the command line: one table row per case, each exit status 2, a message naming what is valid, and no
output file left behind.

Every case calls `interp.cli.main(argv)` in this process (a subprocess per case would cost ~3 s). Most cases fail
before a model loads; those that need one use toy-arith, loaded once per session (`interp.models.load_model` is
wrapped with a cache for it). Placeholders in argv: ``{tmp}`` the test's folder, ``{ro}`` a folder this user cannot
write to, ``{file}`` an existing file, ``{dir}`` an existing folder, ``{bad_toy}`` / ``{bad_json}`` / ``{no_cfg}``
damaged model folders, ``{broken_ckpt}`` a checkpoint folder left by an interrupted run.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from interp.cli import main
from tests.toy_cache import cached_load_model

ROOT = Path(__file__).resolve().parents[2]
P = ["--model", "toy-arith"]  # most cases run on toy-arith
OUT = ["--out", "{tmp}/o.json"]

# (id, argv, regex the message must match)
CASES: list[tuple[str, list[str], str]] = [
    # ---------------------------------------------------------------- argparse: names, choices, types
    ("no command", [], r"required: COMMAND"),
    ("unknown command", ["nope"], r"invalid choice: 'nope' \(choose from .*patch"),
    ("patch without model", ["patch"], r"required: --model"),
    ("unknown site", ["patch", *P, "--site", "head"], r"invalid choice: 'head' \(choose from .*heads"),
    ("unknown metric", ["patch", *P, "--metric", "acc"], r"invalid choice: 'acc' \(choose from .*logit_diff"),
    ("unknown direction", ["patch", *P, "--direction", "up"], r"choose from .*noising"),
    ("unknown engine", ["patch", *P, "--engine", "turbo"], r"choose from .*cone"),
    ("n-per-op not int", ["patch", *P, "--n-per-op", "abc"],
     r"argument --n-per-op: must be an integer >= 1; got 'abc'"),
    ("corrupt-from bad", ["patch", *P, "--corrupt-from", "x"], r"choose from .*same"),
    ("number-mode bad", ["patch", *P, "--number-mode", "two"], r"choose from .*multi"),
    ("circuit ablation bad", ["circuit", *P, *OUT, "--ablation", "drop"], r"choose from .*resample"),
    ("circuit rank bad", ["circuit", *P, *OUT, "--rank", "fast"], r"choose from .*attribution"),
    ("circuit level bad", ["circuit", *P, *OUT, "--level", "x"], r"choose from .*edges"),
    ("neurons grid bad", ["neurons", *P, *OUT, "--grid", "x"], r"choose from .*paper"),
    ("neurons k and frac", ["neurons", *P, *OUT, "--top-k", "5", "--top-frac", "0.1"], r"not allowed with"),
    ("neurons method bad", ["neurons", *P, *OUT, "--method", "x"], r"choose from .*atp"),
    ("models unknown option", ["models", "--bogus"], r"unrecognized arguments: --bogus"),
    ("verbose and quiet", ["-v", "-q", "models"], r"not allowed with"),
    ("explain without what", ["explain"], r"required: WHAT"),
    ("explain unknown what", ["explain", "lime"], r"choose from .*saliency"),
    ("edges method bad", ["edges", *P, *OUT, "--method", "x"], r"choose from .*eap"),
    ("edges ablation bad", ["edges", *P, *OUT, "--ablation", "x"], r"choose from .*counterfactual"),
    ("report unknown section", ["report", *P, "--out", "{tmp}/r.html", "--with", "cats"],
     r"unknown section.*valid: edges, explain"),
    ("circuit seeds not ints", ["circuit", *P, *OUT, "--seeds", "a,b"], r"comma-separated integers"),
    ("circuit seeds empty", ["circuit", *P, *OUT, "--seeds", ","], r"at least one seed"),
    ("circuit max-memory bad", ["circuit", *P, *OUT, "--max-memory", "lots"],
     r"max_memory 'lots' is not a size; use a positive number of bytes, 'auto' or a size like"),
    ("neurons layers not ints", ["neurons", *P, *OUT, "--layers", "a"], r"comma-separated integers"),
    ("cot variant bad", ["cot", *P, *OUT, "--variants", "nope"], r"nope.*(valid|choose)"),
    ("concepts norm bad", ["concepts", *P, *OUT, "--norm", "x"], r"choose from .*final_norm"),
    ("repe concept bad", ["explain", "repe", *P, *OUT, "--concept", "x"], r"choose from .*truth"),
    ("dynamics without checkpoints", ["dynamics", *OUT], r"required: --checkpoints"),
    # ---------------------------------------------------------------- models, devices, backends
    ("model typo", ["patch", "--model", "toy-arth"], r"unknown model 'toy-arth'.*did you mean: toy-arith"),
    ("device foo", ["patch", *P, "--device", "foo"], r"(?i)device.*'foo'.*(valid|cpu)"),
    ("device cuda without cuda", ["patch", *P, "--device", "cuda"],
     r"device 'cuda' does not exist on this machine; devices present: cpu"),
    ("device cuda:7", ["patch", *P, "--device", "cuda:7"], r"'cuda:7' does not exist.*devices present: cpu"),
    ("device meta", ["patch", *P, "--device", "meta"], r"(?i)meta.*(valid|cpu)"),
    ("dtype bad", ["patch", *P, "--dtype", "float8"], r"(?i)dtype.*float8.*float32"),
    ("device and device-map", ["patch", *P, "--device", "cpu", "--device-map", "auto"], r"mutually exclusive"),
    ("n-devices 0", ["patch", *P, "--n-devices", "0"], r"n_devices must be a positive integer"),
    ("n-devices 4", ["patch", *P, "--n-devices", "4"], r"CUDA GPU"),
    ("backend bad", ["patch", *P, "--backend", "jax"], r"(?i)backend.*jax.*bridge"),
    ("remote without nnsight", ["patch", *P, "--remote"], r"add --backend nnsight"),
    ("circuit on nnsight", ["circuit", *P, *OUT, "--backend", "nnsight"], r"not supported.*--backend bridge"),
    ("model dir without config", ["patch", "--model", "{no_cfg}"], r"has no config.json"),
    ("model dir invalid config.json", ["patch", "--model", "{bad_json}"], r"config.json.*not valid JSON"),
    ("model truncated safetensors", ["patch", "--model", "{bad_toy}"], r"model.safetensors cannot be loaded"),
    ("model missing gguf", ["patch", "--model", "{tmp}/m.gguf"], r"GGUF file .* does not exist"),
    ("model is a plain file", ["patch", "--model", "{file}"], r"is a file but not a .gguf"),
    # ---------------------------------------------------------------- tasks
    ("task family bad", ["patch", *P, "--task", "mul"], r"unknown task family 'mul'.*valid: arith, ioi, induction"),
    ("task operator bad", ["patch", *P, "--task", "arith:%"], r"choose from \+ - \* /"),
    ("task range reversed", ["patch", *P, "--task", "arith:+:5-3"], r"need 0 <= lo <= hi"),
    ("task range huge", ["patch", *P, "--task", "arith:+:0-100000"], r"at most 1,000,000 .*smaller range"),
    ("task range negative", ["patch", *P, "--task", "arith:+:-5-3"], r"must look like LO-HI, e.g. 0-99"),
    ("task too many parts", ["patch", *P, "--task", "arith:+:0-9:x"], r"arith\[:OPS\[:LO-HI\]\]"),
    ("ioi negative", ["patch", *P, "--task", "ioi:-3"], r"must be an integer >= 1, e.g. ioi:32; got '-3'"),
    ("ioi zero", ["patch", *P, "--task", "ioi:0"], r"n_prompts must be >= 1"),
    ("ioi corruption bad", ["patch", *P, "--task", "ioi:8:xyz"], r"unknown IOI corruption 'xyz'; valid: abc, swap"),
    ("induction zero", ["patch", *P, "--task", "induction:0"], r"seq_len must be >= 2"),
    ("induction too long", ["patch", *P, "--task", "induction:100000"], r"exceed the model's context"),
    ("single mode beyond vocab", ["patch", *P, "--task", "arith:+:500-1200", "--number-mode", "single"],
     r"not single tokens.*up to 999"),
    ("prefix unknown chars", ["patch", *P, "--task", "arith:+", "--prefix", "hello "],
     r"prefix 'hello ' contains text this tokenizer does not know.*numbers 0-999"),
    ("n-per-op 0", ["patch", *P, "--n-per-op", "0"], r"argument --n-per-op: must be an integer >= 1; got '0'"),
    ("n-per-op negative", ["patch", *P, "--n-per-op", "-5"], r"argument --n-per-op: must be an integer >= 1; got '-5'"),
    ("n-per-op huge", ["patch", *P, "--task", "arith:+", "--n-per-op", "100000000"],
     r"more prompts per operator than the 10,000 of the operand grid"),
    ("prefix on ioi", ["patch", *P, "--task", "ioi:8", "--prefix", "x"], r"applies to arithmetic tasks only"),
    # ---------------------------------------------------------------- patch numbers and combinations
    ("positions out of range", ["patch", *P, "--task", "arith:+:0-9", "--positions", "9"], r"valid: 0\.\.4"),
    ("positions words", ["patch", *P, "--task", "arith:+:0-9", "--positions", "first"], r"'all', 'last'"),
    ("positions empty", ["patch", *P, "--task", "arith:+:0-9", "--positions", ","], r"no positions given"),
    ("max-memory 1e999", ["patch", *P, "--max-memory", "1e999"], r"not a usable size.*'512MB'"),
    ("max-memory nan", ["patch", *P, "--max-memory", "nan"], r"not a size.*'512MB'"),
    ("max-memory inf", ["patch", *P, "--max-memory", "inf"], r"not a size.*'512MB'"),
    ("max-memory negative", ["patch", *P, "--max-memory=-1GB"], r"not a size.*'2GB'"),
    ("max-memory zero", ["patch", *P, "--max-memory", "0"], r"at least 1 byte"),
    ("max-memory unit bad", ["patch", *P, "--max-memory", "2 parsecs"], r"not a size.*'1GiB'"),
    ("max-rows 0", ["patch", *P, "--max-rows", "0"], r"argument --max-rows: must be an integer >= 1; got '0'"),
    ("top negative", ["patch", *P, "--top", "-1"], r"argument --top: must be an integer >= 0; got '-1'"),
    ("path-to with mlps", ["patch", *P, "--path-to", "logits", "--site", "mlps"], r"use it with --site heads"),
    ("freeze-mlps alone", ["patch", *P, "--freeze-mlps"], r"only applies to path patching"),
    ("path-to bad receiver", ["patch", *P, "--task", "arith:+:0-9", "--path-to", "L9H0"],
     r"L9H0.*do not exist; the model has layers 0\.\.3 and heads 0\.\.3"),
    ("path-to garbage", ["patch", *P, "--task", "arith:+:0-9", "--path-to", "heads"], r"(?i)receiver.*'logits'"),
    ("path-to on nnsight", ["patch", *P, "--path-to", "logits", "--backend", "nnsight"], r"bridge only"),
    # ---------------------------------------------------------------- circuit numbers
    ("max-heads negative", ["circuit", *P, *OUT, "--max-heads", "-1"],
     r"argument --max-heads: must be an integer >= 1; got '-1'"),
    ("max-heads zero", ["circuit", *P, *OUT, "--max-heads", "0"],
     r"argument --max-heads: must be an integer >= 1; got '0'"),
    ("target zero", ["circuit", *P, *OUT, "--target", "0"], r"(?i)target.*\(0, 1\]"),
    ("target above one", ["circuit", *P, *OUT, "--target", "1.5"], r"(?i)target.*\(0, 1\]"),
    ("target nan", ["circuit", *P, *OUT, "--target", "nan"], r"(?i)target.*\(0, 1\]"),
    ("n-eval zero", ["circuit", *P, *OUT, "--n-eval", "0"], r"argument --n-eval: must be an integer >= 1; got '0'"),
    ("circuit n-per-op zero", ["circuit", *P, *OUT, "--n-per-op", "0"],
     r"argument --n-per-op: must be an integer >= 1; got '0'"),
    ("operand-max negative", ["circuit", *P, *OUT, "--task", "arith:+:0-9", "--operand-max", "-1"],
     r"argument --operand-max: must be an integer >= 0; got '-1'"),
    # ---------------------------------------------------------------- neurons numbers and task kind
    ("neurons on ioi", ["neurons", *P, *OUT, "--task", "ioi:8"], r"needs an arithmetic task .*not 'ioi"),
    ("neurons on induction", ["neurons", *P, *OUT, "--task", "induction"], r"needs an arithmetic task"),
    ("n-random 0", ["neurons", *P, *OUT, "--n-random", "0"], r"argument --n-random: must be an integer >= 1; got '0'"),
    ("knockout-prompts 0", ["neurons", *P, *OUT, "--knockout-prompts", "0"],
     r"argument --knockout-prompts: must be an integer >= 1; got '0'"),
    ("min-neurons 0", ["neurons", *P, *OUT, "--min-neurons", "0"],
     r"argument --min-neurons: must be an integer >= 1; got '0'"),
    ("top-k 0", ["neurons", *P, *OUT, "--top-k", "0"], r"argument --top-k: must be an integer >= 1; got '0'"),
    ("top-k too many", ["neurons", *P, *OUT, "--top-k", "100000"], r"outside 1\.\.d_mlp=512"),
    ("top-frac 0", ["neurons", *P, *OUT, "--top-frac", "0"],
     r"argument --top-frac: must be a number in \(0, 1]; got '0'"),
    ("top-frac 2", ["neurons", *P, *OUT, "--top-frac", "2"],
     r"argument --top-frac: must be a number in \(0, 1]; got '2'"),
    ("threshold 0", ["neurons", *P, *OUT, "--threshold", "0"],
     r"argument --threshold: must be a number in \(0, 1]; got '0'"),
    ("threshold nan", ["neurons", *P, *OUT, "--threshold", "nan"],
     r"argument --threshold: must be a number in \(0, 1]; got 'nan'"),
    ("neurons layers 99", ["neurons", *P, *OUT, "--layers", "99"], r"layers 0\.\.3"),
    ("neurons layers empty", ["neurons", *P, *OUT, "--layers", ","], r"empty; give at least one layer in 0\.\.3"),
    ("per-layer negative", ["neurons", *P, *OUT, "--per-layer", "-1"], r"per_layer entry .*in 0\.\.512"),
    ("budget-mb 0", ["neurons", *P, *OUT, "--budget-mb", "0"],
     r"argument --budget-mb: must be a finite number > 0; got '0'"),
    ("budget-mb nan", ["neurons", *P, *OUT, "--budget-mb", "nan"],
     r"argument --budget-mb: must be a finite number > 0; got 'nan'"),
    # ---------------------------------------------------------------- dynamics
    ("dynamics missing folder", ["dynamics", "-c", "{tmp}/none", *OUT], r"checkpoint directory .* does not exist"),
    ("dynamics empty folder", ["dynamics", "-c", "{dir}", *OUT], r"no step_N checkpoint directories"),
    ("dynamics interrupted run", ["dynamics", "-c", "{broken_ckpt}", *OUT], r"interrupted training run"),
    ("dynamics on ioi", ["dynamics", "-c", "{dir}", *OUT, "--task", "ioi:8"], r"needs an arithmetic task"),
    ("dynamics device absent", ["dynamics", "-c", "{dir}", *OUT, "--device", "cuda:99"],
     r"--device 'cuda:99' does not exist on this machine; devices present: cpu"),
    ("train-toy device absent", ["train-toy", "--out", "{tmp}/toy_dev", "--device", "cuda:99"],
     r"--device 'cuda:99' does not exist on this machine; devices present: cpu"),
    ("train-toy device bad", ["train-toy", "--out", "{tmp}/toy_dev", "--device", "gpu"], r"'gpu' is not a device"),
    ("dynamics top-k 0", ["dynamics", "-c", "{dir}", *OUT, "--top-k", "0"],
     r"argument --top-k: must be an integer >= 1; got '0'"),
    # ---------------------------------------------------------------- concepts and cot
    ("skip-layers out of range", ["concepts", *P, *OUT, "--skip-layers", "99"],
     r"skip_layer 99 is out of range.*0\.\.3"),
    ("skip-layers words", ["concepts", *P, *OUT, "--skip-layers", "early"], r"comma-separated layer numbers or 'none'"),
    ("skip-layers all", ["concepts", *P, *OUT, "--skip-layers", "0,1,2,3"], r"skips every layer"),
    ("concepts top-k 0", ["concepts", *P, *OUT, "--top-k", "0"], r"argument --top-k: must be an integer >= 1; got '0'"),
    ("concepts min-matches 0", ["concepts", *P, *OUT, "--min-matches", "0"],
     r"argument --min-matches: must be an integer >= 1; got '0'"),
    ("concepts lexicon missing", ["concepts", *P, *OUT, "--lexicon", "{tmp}/lex.json"], r"lex.json"),
    ("concepts unknown concept", ["concepts", *P, *OUT, "--concepts", "dogs"], r"(?i)unknown concept 'dogs'"),
    ("concepts judge bad", ["concepts", *P, *OUT, "--judge", "nomodule_xyz:f"], r"(?i)judge.*nomodule_xyz"),
    ("cot concepts missing", ["cot", *P, *OUT, "--concepts", "{tmp}/missing.json"], r"missing.json.*No such file"),
    ("cot n-problems 0", ["cot", *P, *OUT, "--n-problems", "0"],
     r"argument --n-problems: must be an integer >= 1; got '0'"),
    ("cot batch-size 0", ["cot", *P, *OUT, "--batch-size", "0"],
     r"argument --batch-size: must be an integer >= 1; got '0'"),
    ("cot max-new-tokens 0", ["cot", *P, *OUT, "--max-new-tokens", "0"],
     r"argument --max-new-tokens: must be an integer >= 1; got '0'"),
    # ---------------------------------------------------------------- edges and explain
    ("edges ig-steps 0", ["edges", *P, *OUT, "--ig-steps", "0"],
     r"argument --ig-steps: must be an integer >= 1; got '0'"),
    ("edges ig-rule bad", ["edges", *P, *OUT, "--ig-rule", "middle"],
     r"argument --ig-rule: invalid choice: 'middle' \(choose from '?right'?, '?left'?\)"),
    ("edges mib-sign bad", ["edges", *P, *OUT, "--mib", "{tmp}/m.json", "--mib-sign", "positive"],
     r"argument --mib-sign: invalid choice: 'positive' \(choose from '?mib'?, '?metric'?\)"),
    ("edges batch-size 0", ["edges", *P, *OUT, "--batch-size", "0"],
     r"argument --batch-size: must be an integer >= 1; got '0'"),
    ("edges top-n negative", ["edges", *P, *OUT, "--top-n", "-1"],
     r"argument --top-n: must be an integer >= 1; got '-1'"),
    ("edges n zero", ["edges", *P, *OUT, "--n", "0"], r"argument --n: must be an integer >= 1; got '0'"),
    ("edges task bad", ["edges", *P, *OUT, "--task", "ioi:-3"], r"must be an integer >= 1, e.g. ioi:32"),
    ("saliency steps 0", ["explain", "saliency", *P, *OUT, "--prompt", "1+2=", "--target", "3", "--steps", "0"],
     r"argument --steps: must be an integer >= 1; got '0'"),
    ("uncertainty k 1", ["explain", "uncertainty", *P, *OUT, "--k", "1"], r"k >= 2 samples \(or --k 0"),
    ("repe alpha nan", ["explain", "repe", *P, *OUT, "--alphas=nan"], r"alpha must be a finite number"),
    ("repe alphas words", ["explain", "repe", *P, *OUT, "--alphas=a,b"], r"(?i)alphas.*numbers"),
    ("icl shots words", ["explain", "icl", *P, *OUT, "--shots", "a"], r"(?i)shots.*integers"),
    # ---------------------------------------------------------------- train-toy
    ("train-toy without out", ["train-toy"], r"give --out DIR .* or --install"),
    ("train-toy steps 0", ["train-toy", "--out", "{tmp}/t", "--steps", "0"],
     r"argument --steps: must be an integer >= 1; got '0'"),
    ("train-toy d-model 0", ["train-toy", "--out", "{tmp}/t", "--d-model", "0"],
     r"argument --d-model: must be an integer >= 1; got '0'"),
    ("train-toy d-model odd", ["train-toy", "--out", "{tmp}/t", "--d-model", "6"], r"divisible by n_heads"),
    ("train-toy n-layers 0", ["train-toy", "--out", "{tmp}/t", "--n-layers", "0"],
     r"argument --n-layers: must be an integer >= 1; got '0'"),
    ("train-toy lr nan", ["train-toy", "--out", "{tmp}/t", "--lr", "nan"],
     r"argument --lr: must be a finite number > 0; got 'nan'"),
    ("train-toy lr negative", ["train-toy", "--out", "{tmp}/t", "--lr", "-1"],
     r"argument --lr: must be a finite number > 0; got '-1'"),
    ("train-toy batch-size 0", ["train-toy", "--out", "{tmp}/t", "--batch-size", "0"],
     r"argument --batch-size: must be an integer >= 1; got '0'"),
    ("train-toy checkpoint-every negative", ["train-toy", "--out", "{tmp}/t", "--checkpoint-every", "-1"],
     r"argument --checkpoint-every: must be an integer >= 0; got '-1'"),
    ("train-toy checkpoint-every > steps", ["train-toy", "--out", "{tmp}/t", "--steps", "10", "--checkpoint-every",
                                            "20"], r"larger than --steps"),
    ("train-toy checkpoint-dir alone", ["train-toy", "--out", "{tmp}/t", "--checkpoint-dir", "{tmp}/c"],
     r"needs --checkpoint-every"),
    ("train-toy out is a file", ["train-toy", "--out", "{file}"], r"is an existing file; give a directory"),
    # ---------------------------------------------------------------- report
    ("report n-per-op 0", ["report", *P, "--out", "{tmp}/r.html", "--n-per-op", "0"],
     r"argument --n-per-op: must be an integer >= 1; got '0'"),
    ("report task bad", ["report", *P, "--out", "{tmp}/r.html", "--task", "arith:?"], r"choose from \+ - \* /"),
    ("report task ioi", ["report", *P, "--out", "{tmp}/r.html", "--task", "ioi:4"],
     r"takes an arithmetic task .*or your own task file .*got 'ioi:4'.*interp patch --task ioi"),
    ("edges threshold nan", ["edges", *P, "--task", "arith:+", *OUT, "--threshold", "nan"],
     r"argument --threshold: must be a finite number >= 0; got 'nan'"),
    ("edges threshold negative", ["edges", *P, "--task", "arith:+", *OUT, "--threshold", "-1"],
     r"argument --threshold: must be a finite number >= 0; got '-1'"),
    ("circuit task the model cannot do", ["circuit", *P, *OUT, "--task", "induction:4"],
     r"evaluation set for task 'induction:4:16' is empty: pairs are built from the prompts the model answers "
     r"correctly"),
    ("explain stimulus longer than the context", ["explain", "repe", *P, "--concept", "truth", *OUT],
     r"a stimulus text has \d+ tokens, more than the model's context of 16 tokens"),
    ("report task induction", ["report", *P, "--out", "{tmp}/r.html", "--task", "induction"],
     r"takes an arithmetic task .*got 'induction'"),
]

# ---------------------------------------------------------------- output paths, for every command that writes
_WRITERS: dict[str, list[str]] = {
    "patch": ["patch", *P],
    "circuit": ["circuit", *P],
    "neurons": ["neurons", *P],
    "dynamics": ["dynamics", "-c", "{dir}"],
    "edges": ["edges", *P],
    "explain saliency": ["explain", "saliency", *P, "--prompt", "1+2=", "--target", "3"],
    "explain repe": ["explain", "repe", *P],
    "concepts": ["concepts", *P],
    "cot": ["cot", *P],
    "report": ["report", *P],
}
for _name, _argv in _WRITERS.items():
    CASES += [
        (f"{_name}: --out is a folder", [*_argv, "--out", "{dir}"], r"is a directory; give a file name"),
        (f"{_name}: --out parent is a file", [*_argv, "--out", "{file}/o.json"], r"is a file, not a folder"),
        (f"{_name}: --out in a read-only folder", [*_argv, "--out", "{ro}/o.json"], r"not writable"),
        (f"{_name}: --out empty", [*_argv, "--out", ""], r"empty path"),
    ]
    if _name not in ("concepts", "cot", "report"):
        CASES += [
            (f"{_name}: --plot in a read-only folder", [*_argv, "--out", "{tmp}/o.json", "--plot", "{ro}/p.html"],
             r"--plot .*not writable"),
            (f"{_name}: --out and --plot the same", [*_argv, "--out", "{tmp}/o.json", "--plot", "{tmp}/o.json"],
             r"--out and --plot are the same path"),
        ]
CASES += [
    ("edges: --mib is a folder", ["edges", *P, "--out", "{tmp}/o.json", "--mib", "{dir}"], r"--mib .*is a directory"),
    ("train-toy: --out parent is a file", ["train-toy", "--out", "{file}/m"], r"is a file, not a folder"),
    ("train-toy: --out in a read-only folder", ["train-toy", "--out", "{ro}/m"], r"not writable"),
    ("train-toy: --checkpoint-dir is a file", ["train-toy", "--out", "{tmp}/m", "--checkpoint-every", "5",
                                               "--checkpoint-dir", "{file}"], r"existing file; give a directory"),
]


@pytest.fixture(scope="session")
def _damaged(tmp_path_factory):
    """Damaged model and checkpoint folders, made once."""
    from interp.models.toy import TOY_DIR

    root = tmp_path_factory.mktemp("damaged")
    bad_toy = root / "bad_toy"
    shutil.copytree(TOY_DIR, bad_toy)
    w = bad_toy / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    bad_json = root / "bad_json"
    bad_json.mkdir()
    (bad_json / "config.json").write_text('{"interp_toy_arith": {')
    (root / "no_cfg").mkdir()
    broken = root / "broken_ckpt" / "checkpoints" / "step_100"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{}")
    return {"bad_toy": str(bad_toy), "bad_json": str(bad_json), "no_cfg": str(root / "no_cfg"),
            "broken_ckpt": str(root / "broken_ckpt")}


@pytest.fixture
def inputs(tmp_path, monkeypatch, _damaged):
    """The placeholders' files and folders, and `load_model` answering toy-arith from one shared copy."""
    import interp.models as models

    monkeypatch.setattr(models, "load_model", cached_load_model(models.load_model))
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    if os.geteuid() == 0:  # root writes anywhere but here
        ro = "/proc/sys"
    else:
        ro = str(tmp_path / "ro")
        os.mkdir(ro, 0o555)
    return {"tmp": str(tmp_path), "ro": ro, "file": str(tmp_path / "file"), "dir": str(tmp_path / "dir"), **_damaged}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)  # argparse's usage errors come back as status 2 too
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv,pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_cli_input_exits_2_with_a_clear_message(argv, pattern, inputs, tmp_path, capsys):
    before = _files(tmp_path)
    code, err = run_cli([a.format(**inputs) for a in argv], capsys)
    assert code == 2, err
    assert re.search(pattern, err, flags=re.S), err
    assert "Traceback" not in err
    assert _files(tmp_path) == before, "a failed run left files behind"


def test_case_count():
    assert len(CASES) >= 150
    assert len({c[0] for c in CASES}) == len(CASES)
