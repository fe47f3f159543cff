"""Rules of the code's structure, read from the source with ``ast`` (nothing is imported):

- no import cycle among the project's modules;
- the layers in order: a module never imports one of a higher layer (``LAYERS``);
- the core package (``dispredo_core``) imports no Django and nothing of the web app;
- mltrain's training path reaches no Django model, and only the modules in ``MLTRAIN_TO_RECORDS``
  (registering a version, exporting readings, comparing registered versions) reach the web app;
- no product module over about ``MAX_LINES`` lines, and the main path never imports ``mltrain.lab``.

An edge is drawn for every ``import`` / ``from ... import`` of a project module, at the top of a
module or inside a function.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "bench", "diagnosis", "dispredo_core", "dispredo_site", "mltrain")
MAX_LINES = 300  # "about 300": the bound the rules of the house set for a module
LAB = "mltrain.lab"

# Lowest first. A module belongs to the longest prefix that names it; it may import its own layer
# and the ones below, never one above.
LAYERS = (
    ("dispredo_core",),
    ("diagnosis.storage", "diagnosis.lifecycle"),
    ("diagnosis.records",),
    ("diagnosis.intake", "diagnosis.readings"),
    ("diagnosis.gate",),
    ("diagnosis.pages", "diagnosis.interop", "diagnosis.operations", "api"),
    ("diagnosis", "mltrain", "dispredo_site", "bench"),
)
# mltrain's training path (data, batches, fit, folds, export, package, the orchestration, the
# guard and hold-out figures they write): it uses the core package, never the web app.
TRAINING_PATH = (
    "mltrain.dataset", "mltrain.preprocess", "mltrain.balance", "mltrain.batches", "mltrain.fit",
    "mltrain.folds", "mltrain.export", "mltrain.package", "mltrain.training", "mltrain.hybrid",
    "mltrain.recalibration",
)
# The mltrain modules that touch records, through the web app's service functions.
MLTRAIN_TO_RECORDS = {"mltrain.registry", "mltrain.readings_export", "mltrain.comparison", "mltrain.retrofit"}
WEB_APP = ("diagnosis", "api", "dispredo_site")


def module_name(path):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_test_code(path):
    parts = path.relative_to(REPO).parts
    return "tests" in parts or "testing" in parts or path.name == "conftest.py"


def project_modules(*, tests=False):
    """``{module name: path}`` of the project's source files (migrations left out; tests and test
    helpers only when ``tests``)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" in path.relative_to(REPO).parts or (is_test_code(path) and not tests):
                continue
            modules[module_name(path)] = path
    return modules


def imports_of(name, path):
    """Every module name ``name`` (at ``path``) imports, absolute, project or not, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from package import module" imports the module; "from module import name" the module.
            found.update([f"{base}.{alias.name}" for alias in node.names] + [base])
    return found


def project_imports(name, path, known):
    """The project modules among ``imports_of``: each name cut to the longest module it starts with."""
    found = set()
    for candidate in imports_of(name, path):
        while candidate and candidate not in known:
            candidate = candidate.rpartition(".")[0]
        if candidate and candidate != name:
            found.add(candidate)
    return found


def import_graph(*, tests=False):
    modules = project_modules(tests=tests)
    return {name: project_imports(name, path, modules) for name, path in modules.items()}


def layer_of(name):
    best = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (level, prefix)
    return best[0] if best else None


def cycles(graph):
    """The strongly connected components of ``graph`` with two or more modules (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reaches(graph, start):
    """Every module ``start`` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_graph_sees_top_level_function_level_and_relative_imports():
    graph = import_graph()
    assert "mltrain.fit" in graph["mltrain.training"]  # from .fit import fit_network (top level)
    assert "mltrain.export" in graph["mltrain.package"]  # from .export import ... (inside a function)
    assert "dispredo_core.serving" in graph["mltrain.package"]  # from dispredo_core.serving import ...
    assert "diagnosis.lifecycle.models" in graph["mltrain.registry"]


def test_cycles_are_found_and_named():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_every_project_module_has_a_layer():
    assert not [name for name in import_graph(tests=True) if layer_of(name) is None]
    assert layer_of("diagnosis.records.models") == 2 and layer_of("diagnosis.models") == 6


@pytest.mark.parametrize("tests", [False, True], ids=["product", "with tests"])
def test_no_import_cycle_among_the_projects_modules(tests):
    found = cycles(import_graph(tests=tests))
    assert not found, "Import cycles: " + "; ".join(" <-> ".join(component) for component in found)


def test_no_module_imports_a_higher_layer():
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in import_graph().items()
        for target in targets
        if layer_of(target) > layer_of(name)
    )
    assert not upward, "Imports of a higher layer: " + "; ".join(upward)


def test_the_layer_rule_finds_an_upward_import():
    assert layer_of("diagnosis.intake.pipeline") > layer_of("diagnosis.records.audit")
    assert layer_of("dispredo_core.imaging") < layer_of("diagnosis.storage.xrays")


def test_the_core_package_imports_no_django_and_nothing_of_the_web_app():
    forbidden = ("django", "rest_framework", *WEB_APP, "mltrain")
    found = sorted(
        f"{name} imports {imported}"
        for name, path in project_modules().items()
        if name.startswith("dispredo_core")
        for imported in imports_of(name, path)
        if imported.split(".")[0] in forbidden
    )
    assert not found, "; ".join(found)


def test_importing_the_whole_core_package_loads_no_django():
    modules = [name for name in project_modules() if name.startswith("dispredo_core")]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'diagnosis', 'api', 'mltrain'))\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("entry", TRAINING_PATH)
def test_the_training_path_reaches_no_django_model_and_nothing_of_the_web_app(entry):
    graph = import_graph()
    modules = project_modules()
    reached = {entry} | reaches(graph, entry)
    assert not sorted(name for name in reached if name.split(".")[0] in WEB_APP)
    assert not sorted(
        f"{name} imports {imported}"
        for name in reached
        for imported in imports_of(name, modules[name])
        if imported.startswith(("django.db", "django.contrib"))
    )


def test_only_the_record_touching_mltrain_modules_reach_the_web_app():
    reaching = {
        name
        for name, targets in import_graph().items()
        if name.startswith("mltrain.") and not name.startswith(("mltrain.management", LAB))
        and any(target.split(".")[0] in WEB_APP for target in targets)
    }
    assert reaching <= MLTRAIN_TO_RECORDS, f"{sorted(reaching - MLTRAIN_TO_RECORDS)} import the web app"


def test_no_product_module_is_over_the_bound():
    long = {
        str(path.relative_to(REPO)): count
        for name, path in project_modules().items()
        if not name.startswith("bench") and (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"Modules over {MAX_LINES} lines: {long}"


def test_the_main_path_never_imports_the_lab():
    graph = import_graph()
    main_path = [name for name in graph if name != LAB and not name.startswith(LAB + ".")]
    importing = sorted(name for name in main_path if any(t == LAB or t.startswith(LAB + ".") for t in graph[name]))
    assert not importing, f"{', '.join(importing)} import {LAB}, which the main path must not."


@pytest.mark.parametrize("entry", ["mltrain.management.commands.train", "diagnosis.lifecycle.predictors"])
def test_serving_and_training_entry_points_reach_no_lab_module(entry):
    assert not {name for name in reaches(import_graph(), entry) if name.startswith(LAB)}


def test_no_test_module_imports_another_test_module():
    """Shared fixtures live in conftest.py files and dispredo_site.testing; helpers in modules not named test_*."""
    modules = project_modules(tests=True)
    found = sorted(
        f"{name} -> {target}"
        for name, path in modules.items()
        for target in project_imports(name, path, modules)
        if target.rpartition(".")[2].startswith("test_") or target.endswith("conftest")
    )
    assert not found, "; ".join(found)
