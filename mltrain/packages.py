"""The training packages (requirements/train.txt) by import name, and the message when one is missing.

``bin/start`` installs only requirements/web.txt, so there the training commands (``manage.py
preprocess``, ``train``, ``evaluate`` ...) meet an import that fails. ``manage.py`` passes that
error to ``missing_training_package``, which turns it into one sentence saying what to install.
"""

import importlib.util
import sys

# Import name -> its package in requirements/train.txt (a test checks that the two agree).
TRAINING_IMPORTS = {
    "tensorflow": "tensorflow-cpu",
    "keras": "keras",
    "tf2onnx": "tf2onnx",
    "onnx": "onnx",
    "sklearn": "scikit-learn",
    "imblearn": "imbalanced-learn",
    "matplotlib": "matplotlib",
    "tqdm": "tqdm",
    "pandas": "pandas",
}


def missing_training_package(error, command):
    """The message for ``error`` (a ModuleNotFoundError) when it is a training package that is not
    installed, else None (any other missing module is a real fault and keeps its traceback)."""
    top = (error.name or "").partition(".")[0]
    if top not in TRAINING_IMPORTS or importlib.util.find_spec(top) is not None:
        return None
    return (
        f"manage.py {command} needs the training packages, and {TRAINING_IMPORTS[top]} is not installed "
        "(bin/start installs only the web application's). Install them all with: "
        f"{sys.executable} -m pip install -r requirements.txt"
    )
