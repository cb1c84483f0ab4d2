"""The package layout (docs/CONTRIBUTING.md, "Package map"): one level per package, imports point one way, no circles.

`test_imports_point_down_and_have_no_circle` parses every module under ``interp/`` with `ast` (nothing is imported)
and checks each ``import``/``from ... import`` against `LEVELS`:

* direction: a module imports only modules of its own level or a lower one. This holds for module-level imports
  *and* for function-level (lazy) imports: a lazy import delays the cost, not the dependency;
* circles: the graph of module-level imports (the ones that run while a module is being imported) has no cycle.
  An import of ``a.b.c`` also runs the ``__init__`` of ``a.b`` (unless that package is an ancestor of the importer,
  which is already initialising), so those edges are in the graph too. Function-level imports run after every module
  has loaded and cannot deadlock an import, so they are left out of the circle check (but not of the direction one);
* a module that is not a deprecation shim never imports a deprecated path (`interp._compat.DEPRECATED_PATHS`); nor
  do the tests, scripts and notebooks.

A new package must be added to `LEVELS` (an unmapped module fails the test).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from interp._compat import DEPRECATED_PATHS

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "interp"

# module (or package) prefix -> level; the longest matching prefix wins
LEVELS: dict[str, int] = {
    # 0 core: import nothing from interp but each other
    "interp.errors": 0,
    "interp._io": 0,
    "interp._html": 0,
    "interp._compat": 0,
    "interp.sites": 0,
    "interp.metrics": 0,
    "interp.plotting": 0,
    "interp.checks": 0,
    "interp.progress": 0,
    "interp._repr": 0,
    "interp._env": 0,
    "interp.models": 1,
    # optional engines (nnsight): model detection/loading at the models level, each method at its method's level
    "interp.backends": 1,
    "interp.backends.nnsight_patching": 3,
    "interp.backends.nnsight_attribution": 3,
    "interp.backends.nnsight_ablation": 4,
    "interp.tasks": 2,
    "interp.patching": 3,
    "interp.circuits": 4,
    "interp.neurons": 5,
    "interp.vocab": 6,
    "interp.explain": 6,
    "interp.report": 7,
    "interp.cli": 8,
    # the top-level facade: re-exports the public names of core, models, tasks and patching
    "interp": 3,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}
PACKAGES = {m for m, p in MODULES.items() if p.name == "__init__.py"}


def level(mod: str) -> int:
    best = max((k for k in LEVELS if mod == k or mod.startswith(k + ".")), key=len, default=None)
    assert best is not None, f"{mod} is in no package of the layout table LEVELS (tests/unit/test_layout.py)"
    return LEVELS[best]


def is_shim(mod: str) -> bool:
    return mod in DEPRECATED_PATHS


def imports(mod: str, path: Path) -> list[tuple[str, int, bool]]:
    """``(imported module, line, module_level)`` for every interp import of ``mod``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    pkg = mod if mod in PACKAGES else mod.rpartition(".")[0]
    lazy_nodes: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lazy_nodes.update(id(n) for n in ast.walk(node) if n is not node)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            # `from pkg import sub` imports the submodule `pkg.sub`
            targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in MODULES else src for a in node.names]
        else:
            continue
        for t in targets:
            if t == "interp" or t.startswith("interp."):
                out.append((t, node.lineno, id(node) not in lazy_nodes))
    return out


def test_every_module_has_a_level():
    for mod in MODULES:
        level(mod)


def test_imports_point_down_and_have_no_circle():
    wrong, deprecated, graph = [], [], {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for target, line, module_level in imports(mod, path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if not is_shim(mod) and any(target == d or target.startswith(d + ".") for d in DEPRECATED_PATHS):
                deprecated.append(f"{where} imports the deprecated {target}")
            if is_shim(mod):
                continue
            assert target in MODULES, f"{where}: {target} is not a module of interp"
            if level(target) > level(mod):
                kind = "" if module_level else " (function-level)"
                wrong.append(f"{where}: {mod} (level {level(mod)}) imports {target} (level {level(target)}){kind}")
            if module_level:
                graph[mod].add(target)
                parts = target.split(".")
                for i in range(2, len(parts)):  # parent packages that the import initialises
                    parent = ".".join(parts[:i])
                    if parent in PACKAGES and not (mod == parent or mod.startswith(parent + ".")):
                        graph[mod].add(parent)
    assert not wrong, "imports from a higher level:\n" + "\n".join(wrong)
    assert not deprecated, "non-shim modules import deprecated paths:\n" + "\n".join(deprecated)
    cycle = find_cycle(graph)
    assert cycle is None, "module-level import circle: " + " -> ".join(cycle or [])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (c := visit(t)) is not None:
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)) is not None:
            return c
    return None


def test_the_checker_catches_a_circle_and_an_upward_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert level("interp.report.base") == 7 > level("interp.circuits.ablation") == 4 > level("interp.sites") == 0
    # the report package used to be a four-module circle; its sections now import report.base only
    tgt = {t for t, _, top in imports("interp.report.pretrained", MODULES["interp.report.pretrained"]) if top}
    assert "interp.report.base" in tgt and "interp.report" not in tgt and "interp.report.build" not in tgt


def test_tests_scripts_and_notebooks_use_the_new_paths():
    bad = []
    for path in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("notebooks/*.py")]:
        if path.name == "test_layout.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                    if any(n == d or n.startswith(d + ".") for d in DEPRECATED_PATHS)]
    assert not bad, bad


def _forget_shims() -> None:
    for name in list(sys.modules):
        if name in DEPRECATED_PATHS:
            del sys.modules[name]


@pytest.mark.parametrize("old", sorted(DEPRECATED_PATHS))
def test_old_path_imports_warns_and_gives_the_same_objects(old):
    """Every fresh import of an old path warns (pytest's filter hides DeprecationWarning: caught explicitly here)."""
    new = [importlib.import_module(m) for m in DEPRECATED_PATHS[old]]
    _forget_shims()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mod = importlib.import_module(old)
        msgs = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
        parts = old.split(".")  # a submodule alias warns through its parent shim package
        top = next(p for p in (".".join(parts[:i]) for i in range(2, len(parts) + 1)) if p in DEPRECATED_PATHS)
        assert any(top in m and DEPRECATED_PATHS[top][0] in m for m in msgs), msgs
        if mod.__name__ != old:  # a submodule alias: the very module of its new home
            assert [mod] == new
        else:
            names = [n for m in new for n in m.__all__]
            assert names and sorted(mod.__all__) == sorted(names)
            for m in new:
                for n in m.__all__:
                    assert getattr(mod, n) is getattr(m, n), (old, n)
            # a second fresh import warns again (not once per process)
            with warnings.catch_warnings(record=True) as again:
                warnings.simplefilter("always")
                importlib.reload(mod)
            assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in again)
    finally:
        _forget_shims()


def test_old_private_names_resolve_and_unknown_names_fail():
    ablation = importlib.import_module("interp.circuits.ablation")
    faithfulness = importlib.import_module("interp.circuits.faithfulness")  # (the attribute is the function)
    _forget_shims()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = importlib.import_module("interp.ablation")
        from interp.concepts.find import find_concept_neurons  # the submodule alias, in a from-import
    _forget_shims()
    assert old._replace_hook is ablation._replace_hook
    assert old.FaithfulnessEvaluator is faithfulness.FaithfulnessEvaluator
    assert find_concept_neurons is importlib.import_module("interp.vocab.concepts.find").find_concept_neurons
    with pytest.raises(AttributeError, match="interp.ablation.*no attribute 'nope'"):
        old.nope  # noqa: B018


def test_fresh_process_import_of_an_old_path_warns():
    """In a new interpreter (no pytest filters) the warning fires at import and points at the importing line."""
    code = "import interp.heads"
    r = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "DeprecationWarning: interp.heads is deprecated" in r.stderr
    assert "import interp.circuits.heads instead" in r.stderr


def test_public_names_kept():
    import interp
    import interp.report
    import interp.vocab

    assert set(interp.__all__) == {
        "METRICS", "ArithTask", "InterpError", "ModelLoadError", "PatchResult", "PromptPairs", "ShapeError", "Site",
        "TaskError", "UnknownNameError", "list_models", "load_model", "parse_task", "patch"}
    assert {"Section", "ReportContext", "build_report", "SECTIONS", "render_html"} <= set(interp.report.__all__)
    assert {"scan_values", "top_tokens", "intervene", "compare_generation", "dominant_subupdates", "VocabError",
            "ValueProjection", "normalize_neurons", "vocab_strings"} <= set(interp.vocab.__all__)
    from interp.patching import engine

    assert {"ConeEngine", "EngineStats", "Unsupported", "parse_bytes", "format_bytes", "top_neurons_per_layer",
            "CHECK_RTOL"} <= set(engine.__all__)
