"""The light web install: ``bin/start`` installs requirements/web.txt only, and the web path needs no more.

The split is read from the requirement files themselves. The web path (``check``, ``setup``,
``collectstatic``, an upload scored with the shipped default model) then runs in a child Python
where every installed package outside web.txt's dependency closure cannot be imported, as in a
fresh ``bin/start`` environment; training commands there end with the install hint of
``mltrain.packages`` instead of a traceback.
"""

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mltrain.packages import TRAINING_IMPORTS, missing_training_package

REPO = Path(__file__).resolve().parents[2]
INCLUDED = ["requirements/web.txt", "requirements/train.txt", "requirements/test.txt"]
# Import names of requirements/test.txt's packages (and schemathesis' hypothesis): never in the web path.
TEST_IMPORTS = {
    "pytest": "pytest", "pytest_django": "pytest-django", "xdist": "pytest-xdist", "playwright": "playwright",
    "skimage": "scikit-image", "fhir": "fhir-resources", "schemathesis": "schemathesis", "moto": "moto", "mkdocs": "mkdocs",
}
# Kept importable in the child: what every virtual environment has, and what Python loads at start.
ALWAYS_THERE = {"pip", "setuptools", "pkg_resources", "_distutils_hack", "wheel"}


def pins(path):
    """The requirements a file pins (not its includes or comments)."""
    lines = (line.split("#", 1)[0].strip() for line in (REPO / path).read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def names(path):
    return [canonicalize_name(requirement.name) for requirement in pins(path)]


def test_requirements_txt_includes_the_three_sets_and_pins_nothing_itself():
    lines = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == [f"-r {path}" for path in INCLUDED]


def test_every_package_is_pinned_exactly_once_and_exactly():
    every = [name for path in INCLUDED for name in names(path)]
    assert len(every) == len(set(every)), sorted({name for name in every if every.count(name) > 1})
    for path in INCLUDED:
        assert all(str(r.specifier).startswith("==") for r in pins(path)), path


def test_the_web_set_has_no_training_or_test_package():
    web = set(names("requirements/web.txt"))
    for heavy in ["tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "scikit-learn", "imbalanced-learn",
                  "matplotlib", "tqdm", "pandas", *TEST_IMPORTS.values()]:
        assert heavy not in web
    assert {"django", "onnxruntime", "numpy", "pillow", "gunicorn", "pydicom"} <= web


def test_the_training_and_test_import_names_match_their_requirement_files():
    assert sorted(TRAINING_IMPORTS.values()) == sorted(names("requirements/train.txt"))
    assert sorted(TEST_IMPORTS.values()) == sorted(names("requirements/test.txt"))


def web_closure():
    """Canonical names of the installed distributions web.txt needs, following their requirements."""
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in pins("requirements/web.txt")]
    seen = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:  # an optional one this platform does not install
            continue
        for requirement in map(Requirement, requires):
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras | {""}):
                todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return {name for name, _ in seen}


def outside_web_imports():
    """Top-level import names installed here whose distributions are all outside the web closure."""
    closure = web_closure()
    return sorted(
        module for module, distributions in metadata.packages_distributions().items()
        if module not in ALWAYS_THERE and not {canonicalize_name(d) for d in distributions} & closure
    )


# The child: block the given imports (an import of a name mapped to None fails), then run the code.
CHILD = """
import json, sys
for name in json.loads(sys.argv[1]):
    if name not in sys.modules:
        sys.modules[name] = None
sys.argv = sys.argv[2:]
"""

WEB_PATH = """
import django
from django.test.utils import setup_test_environment
django.setup()
setup_test_environment()
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from diagnosis.records.models import Patient, XRay

call_command("check")
call_command("setup", verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)
client = Client()
client.force_login(get_user_model().objects.get(username="admin"))
patient = Patient.objects.create(mrn="WEB1", name="Web Only", sex="F")
image = open(sys.argv[0], "rb").read()
client.post(reverse("diagnosis:upload"), {"patient": patient.pk, "image": SimpleUploadedFile("x.png", image)})
xray = XRay.objects.get()
models = sorted({prediction.model_version.name for prediction in xray.predictions.all()})
print(json.dumps({"status": xray.status, "models": models, "scores": xray.predictions.count(),
                  "login": Client().get("/accounts/login/").status_code}))
"""


def run_child(code, args, tmp_path, blocked):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DISPREDO_", "DATABASE_URL"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "dispredo_site.settings", "DISPREDO_DATA_DIR": str(tmp_path / "data"),
        "DISPREDO_STATIC_ROOT": str(tmp_path / "static"), "DISPREDO_ADMIN_PASSWORD": "a long local passphrase",
    }
    return subprocess.run(
        [sys.executable, "-c", CHILD + code, json.dumps(blocked), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture(scope="module")
def blocked():
    names = outside_web_imports()
    # The closure really leaves the heavy packages out (they are installed here, so they are listed).
    assert {"tensorflow", "keras", "tf2onnx", "onnx", "sklearn", "imblearn", "matplotlib", "pytest"} <= set(names)
    return names


def test_the_web_path_runs_without_any_package_outside_the_web_set(nih_sample, tmp_path, blocked):
    image = nih_sample / "images_002" / "images" / "00000075_000.png"
    done = run_child(WEB_PATH, [str(image)], tmp_path, blocked)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    default = json.loads((REPO / "models" / "default" / "metadata.json").read_text())["name"]
    assert result == {"status": "done", "models": [default], "scores": 14, "login": 200}


def test_a_training_command_without_the_training_packages_says_what_to_install(tmp_path, blocked):
    manage = "import runpy; runpy.run_path('manage.py', run_name='__main__')"
    done = run_child(manage, ["manage.py", "train", "--help"], tmp_path, blocked)
    assert done.returncode == 1
    assert done.stdout == ""
    assert re.fullmatch(
        r"manage\.py train needs the training packages, and (\S+) is not installed \(bin/start installs only "
        r"the web application's\)\. Install them all with: " + re.escape(sys.executable)
        + r" -m pip install -r requirements\.txt\n",
        done.stderr,
    ), done.stderr
    assert re.match(r"manage\.py train needs the training packages, and (\S+) ", done.stderr)[1] in set(
        TRAINING_IMPORTS.values()
    )


def test_only_a_missing_training_package_gets_the_hint():
    absent = ModuleNotFoundError("No module named 'no_such_module'", name="no_such_module")
    assert missing_training_package(absent, "train") is None
    # Installed here: a failing import inside it is a fault of its own, shown with its traceback.
    broken = ModuleNotFoundError("No module named 'sklearn.nope'", name="sklearn.nope")
    assert missing_training_package(broken, "train") is None
