"""The house's shape, checked from the source: no import circle (imports inside functions
included), modules and functions of a readable size, inference below apps and tracking, and
each DVC stage naming exactly the code it runs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from _imports import ROOT, SRC, cycles, graph, imports_of, module_name, modules, reachable, subpackage

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 100
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_no_import_circle_between_modules():
    assert cycles(graph()) == []


def test_no_import_circle_between_subpackages():
    edges: dict[str, set[str]] = {}
    for source, targets in graph().items():
        for target in targets:
            a, b = subpackage(source), subpackage(target)
            if a != b and b != "vaeinpaint":  # the root package holds only the version
                edges.setdefault(a, set()).add(b)
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_inference_is_below_apps_and_tracking():
    for name, path in modules().items():
        if name.startswith("vaeinpaint.inference"):
            above = {m for m in reachable(path, module_level_only=False) if m.startswith(("vaeinpaint.apps", "vaeinpaint.tracking"))}
            assert not above, f"{name} imports {sorted(above)}"


# The layers, bottom first: a module imports only from its own layer and those before it
# (docs/development.md's project layout lists them in this order). `vaeinpaint` alone is the package's
# __init__ (its version).
LAYERS = [
    "vaeinpaint",
    "vaeinpaint.paths",
    "vaeinpaint.errors",
    "vaeinpaint.progress",
    "vaeinpaint.files",
    "vaeinpaint.params",
    "vaeinpaint.presets",
    "vaeinpaint.data",
    "vaeinpaint.masks",
    "vaeinpaint.modeling",
    "vaeinpaint.evaluation",
    "vaeinpaint.inference",
    "vaeinpaint.tracking",
    "vaeinpaint.training",
    "vaeinpaint.options",
    "vaeinpaint.console",
    "vaeinpaint.params_reference",
    "vaeinpaint.apps",
    "vaeinpaint.report",
    "vaeinpaint.bench",
    "vaeinpaint.doctor",
    "vaeinpaint.cli",
]


def layer(module: str) -> int:
    return max(i for i, name in enumerate(LAYERS) if module == name or module.startswith(name + ".") or name == "vaeinpaint")


def test_every_import_goes_down_the_layers():
    upward = sorted(f"{a} -> {b}" for a, imported in graph(False).items() for b in imported if layer(b) > layer(a))
    assert upward == []
    assert {subpackage(m) for m in modules()} <= set(LAYERS), "a new module or subpackage: give it its place in LAYERS"


def test_the_pyfunc_model_and_the_apps_share_the_inference_engine():
    for user in ("vaeinpaint.tracking.pyfunc", "vaeinpaint.apps.inpaint", "vaeinpaint.apps.batch", "vaeinpaint.apps.server"):
        assert "vaeinpaint.inference.engine" in imports_of(modules()[user], module_level_only=True), user


@pytest.mark.parametrize("path", sorted((SRC / "vaeinpaint").rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_and_functions_are_of_a_readable_size(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}: {node.name} is {length} lines"


def test_package_inits_only_gather_names():
    """A package's __init__.py holds a docstring, imports and __all__: no code that could decide
    a stage's output, which is why the deps test below does not ask dvc.yaml to list them."""
    for path in (SRC / "vaeinpaint").rglob("__init__.py"):
        for node in ast.parse(path.read_text()).body:
            docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            names = isinstance(node, (ast.Assign, ast.AnnAssign)) and ast.unparse(node).split()[0].rstrip(":") in ("__all__", "__version__")
            assert docstring or names or isinstance(node, (ast.Import, ast.ImportFrom)), f"{path}: {ast.unparse(node)[:60]}"


def stage_code(stage: str) -> tuple[Path, set[str], set[str]]:
    """(the stage's script, the src/ files it surely runs: module-level imports, followed through
    the package; the src/ files it may run: imports inside functions too)."""
    script = ROOT / DVC["stages"][stage]["cmd"].split()[-1]
    as_files = lambda names: {str(modules()[n].relative_to(ROOT)) for n in names if not modules()[n].name == "__init__.py"}  # noqa: E731
    return script, as_files(reachable(script, True)), as_files(reachable(script, False))


def declared_code(stage: str) -> tuple[set[str], set[str]]:
    """(the src/ files the stage's deps name, file by file or through a folder; the deps themselves)."""
    deps = {d for d in DVC["stages"][stage]["deps"] if d.startswith("src/")}
    files = set()
    for dep in deps:
        path = ROOT / dep
        files |= {str(p.relative_to(ROOT)) for p in path.rglob("*.py") if p.name != "__init__.py"} if path.is_dir() else {dep}
    return files, deps


@pytest.mark.parametrize("stage", sorted(DVC["stages"]))
def test_each_stage_names_every_module_it_runs(stage):
    script, surely, _ = stage_code(stage)
    files, _ = declared_code(stage)
    assert str(script.relative_to(ROOT)) in DVC["stages"][stage]["deps"]
    assert sorted(surely - files) == [], f"{stage}: dvc.yaml misses these modules that stages/{script.name} imports"


@pytest.mark.parametrize("stage", sorted(DVC["stages"]))
def test_each_stage_names_no_module_it_cannot_run(stage):
    _, _, maybe = stage_code(stage)
    files, deps = declared_code(stage)
    assert sorted(files - maybe) == [], f"{stage}: dvc.yaml names modules that its script never imports"
    for dep in deps:
        assert (ROOT / dep).exists(), f"{stage}: {dep} does not exist"


def test_the_deps_check_sees_a_missing_module(monkeypatch):
    stage = DVC["stages"]["evaluate"]
    monkeypatch.setitem(stage, "deps", [d for d in stage["deps"] if not d.endswith("checkpoint.py")])
    _, surely, _ = stage_code("evaluate")
    files, _ = declared_code("evaluate")
    assert surely - files == {"src/vaeinpaint/modeling/checkpoint.py"}


def test_module_names_follow_the_files():
    assert module_name(SRC / "vaeinpaint" / "apps" / "server.py") == "vaeinpaint.apps.server"
    assert module_name(SRC / "vaeinpaint" / "inference" / "__init__.py") == "vaeinpaint.inference"


# Params that change no output DVC keeps, left out of the stages that read their block.
CHANGES_NO_OUTPUT = {
    "prepare.workers": "how many processes decode",
    "baselines.workers": "how many processes fill",
    "train.image_every": "what MLflow logs",
    "train.rdzv_endpoint": "where the nodes meet",
    "train.resume_minutes": "how often the resume state (outside DVC's outputs) is written",
}


def test_blocks_listed_key_by_key_leave_out_only_what_changes_no_output():
    """A stage that reads its own block lists it key by key, every key but those above: a new
    param is then either listed or said here to change nothing."""
    from vaeinpaint.params import Params

    every = set(Params().flat())
    for block in ("prepare", "baselines", "train"):
        listed = {p for p in DVC["stages"][block]["params"] if isinstance(p, str)}
        keys = {k for k in every if k.startswith(block + ".")}
        assert keys - listed == {k for k in CHANGES_NO_OUTPUT if k.startswith(block + ".")}, block
        assert listed & keys == listed - {p for p in listed if not p.startswith(block + ".")}, block


def test_train_does_not_rerun_for_what_mlflow_logs():
    assert "train.image_every" not in DVC["stages"]["train"]["params"]
    assert "train" not in DVC["stages"]["train"]["params"]
