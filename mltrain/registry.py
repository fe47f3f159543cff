"""Register finished artefact directories as ``ModelVersion`` rows: where training meets the records.

The training path (``mltrain.training``, ``package``, ``fit``, ...) writes artefacts and knows no
database; this module registers them. Only a complete artefact is registered: ``read_metadata``
checks the format version, the 14 findings in order, a threshold for each and the serving model,
and a half-written directory (no metadata.json, which is written last) fails it. Registration
itself is the web app's ``diagnosis.lifecycle.registry.register_model_version``; training adds
that a name is never reused.
"""

from diagnosis.gate import activation as gate
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.lifecycle.registry import register_model_version
from mltrain import training
from dispredo_core.artefact import read_metadata, resolve


def register(directory, activate=False, force=False):
    """Create the ``ModelVersion`` of the finished artefact at ``directory``; activate it if asked,
    through the activation gate (``diagnosis.gate.activation``; ``force`` overrides a refusal). The
    gate's result is on the version as ``activation`` (None when activation was not asked).

    Raises ``dispredo_core.artefact.ArtefactError`` for an incomplete or unknown artefact,
    ``ValueError`` when a version of that name is already registered, and
    ``ActivationRefused`` when the gate refuses: the version then stays registered, not active.
    """
    name = read_metadata(directory)["name"]
    if ModelVersion.objects.filter(name=name).exists():
        raise ValueError(f"A model version named {name!r} is already registered.")
    version = register_model_version(directory)
    version.activation = None
    if activate:
        try:
            version.activation = gate.activate(version, force=force)
        except gate.ActivationRefused as refused:
            raise gate.ActivationRefused(
                refused.result,
                advice=f"{name} is registered but not active; manage.py activate --version {name} --force "
                "activates it anyway.",
            ) from None
    return version


def name_taken(name):
    """Whether a model version of that name is registered (a new run must choose another)."""
    return ModelVersion.objects.filter(name=name).exists()


def train_and_register(config, stdout=None, verbosity=1, force=False):
    """Train per ``config`` (``training.train``), then register the artefact, activating it when
    ``config.activate`` asks and the activation gate allows it (or ``force``); returns the ModelVersion."""
    directory = training.train(config, stdout=stdout, verbosity=verbosity, name_taken=name_taken)
    return register(directory, activate=config.activate, force=force)


def find_version(name=None):
    """The ``ModelVersion`` named ``name``, or the active one when ``name`` is None (or None if none)."""
    if name is None:
        return ModelVersion.active()
    return ModelVersion.objects.filter(name=name).first()


def artefact_directory(version):
    """The absolute artefact directory of ``version``."""
    return resolve(version.artefact_path)
