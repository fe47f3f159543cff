"""The benchmarks are one package run from the repository root (``python -m bench.load``): every
bench module imports as a package module without editing ``sys.path``, each script answers
``--help`` under its module name, and no file in bench/ touches ``sys.path``. Nothing is measured."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
SCRIPTS = (
    "full_scale", "guard", "inference", "learning_loop", "load", "nih_full_layout", "preprocess", "train_scale",
    "upload_memory",
)
IMPORT_ALL = """
import importlib, json, sys
names = json.loads(sys.argv[1])
before = list(sys.path)
modules = [importlib.import_module(name) for name in names]
print(json.dumps({"sys_path_changed": sys.path != before, "files": [module.__file__ for module in modules]}))
"""


def bench_modules():
    """``{module name: path}`` of every Python file under bench/ (packages by their ``__init__``)."""
    modules = {}
    for path in sorted(BENCH.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def run_python(*arguments):
    """The venv's Python from the repository root, with no PYTHONPATH: only the working folder is on the path."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *arguments], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_every_bench_module_imports_as_a_package_module_without_editing_sys_path():
    modules = bench_modules()
    assert {"bench", "bench._common", "bench.load.__main__", "bench.inference.__main__"} <= set(modules)
    assert {f"bench.{script}" for script in SCRIPTS} <= set(modules)

    done = run_python("-c", IMPORT_ALL, json.dumps(sorted(modules)))

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["sys_path_changed"] is False
    assert [Path(file) for file in result["files"]] == [modules[name] for name in sorted(modules)]


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_benchmark_runs_as_a_module_of_the_bench_package(script):
    done = run_python("-m", f"bench.{script}", "--help")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m bench.{script} ")
    assert done.stderr == ""


def test_no_file_in_bench_touches_sys_path():
    files = [path for path in BENCH.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    assert len(files) > len(SCRIPTS)
    touching = sorted(str(path.relative_to(REPO)) for path in files if b"sys.path" in path.read_bytes())
    assert not touching, f"{touching} mention sys.path: bench imports the project as packages"
