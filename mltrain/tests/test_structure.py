"""Rules of the code's structure: no import cycle among the project's modules, no mltrain module
over ``MAX_LINES`` lines, and the main path never importing ``mltrain.lab``.

The module graph is read from the source with ``ast`` (nothing is imported): an edge for every
``import`` / ``from ... import`` of a project module, at the top of a module or inside a function.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "diagnosis", "dispredo_site", "mltrain")
MAX_LINES = 300  # "about 300": the bound the rules of the house set for a module
LAB = "mltrain.lab"


def module_name(path):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules():
    """``{module name: path}`` of the project's source files (tests and migrations left out)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).parts
            if "tests" in relative or "migrations" in relative:
                continue
            modules[module_name(path)] = path
    return modules


def imported_modules(name, path, known):
    """The project modules that the module ``name`` (at ``path``) imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from package import module" imports the module; "from module import name" the module.
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            # The longest project module the name starts with ("mltrain.fit.fit_network" -> "mltrain.fit").
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def import_graph():
    modules = project_modules()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


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
    assert "diagnosis.serving" in graph["mltrain.package"]  # from diagnosis.serving import ...
    assert "diagnosis.models" in graph["mltrain.registry"]


def test_cycles_are_found_and_named():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_among_the_projects_modules():
    found = cycles(import_graph())
    assert not found, "Import cycles: " + "; ".join(" <-> ".join(component) for component in found)


def test_no_mltrain_module_is_over_the_bound():
    long = {
        str(path.relative_to(REPO)): count
        for path in sorted((REPO / "mltrain").rglob("*.py"))
        if "tests" not in path.relative_to(REPO).parts and (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"mltrain modules over {MAX_LINES} lines: {long}"


def test_the_main_path_never_imports_the_lab():
    graph = import_graph()
    main_path = [name for name in graph if name != LAB and not name.startswith(LAB + ".")]
    importing = sorted(name for name in main_path if any(t == LAB or t.startswith(LAB + ".") for t in graph[name]))
    assert not importing, f"{', '.join(importing)} import {LAB}, which the main path must not."


@pytest.mark.parametrize("entry", ["mltrain.management.commands.train", "diagnosis.inference"])
def test_serving_and_training_entry_points_reach_no_lab_module(entry):
    assert not {name for name in reaches(import_graph(), entry) if name.startswith(LAB)}
