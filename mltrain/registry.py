"""Register finished artefact directories as ``ModelVersion`` rows.

Only a complete artefact is registered: ``read_metadata`` checks the format version, the 14
findings in order, a threshold for each and the serving model, and a half-written directory
(no metadata.json, which is written last) fails it. Registration itself is the web app's
``diagnosis.registry.register_model_version``; training adds that a name is never reused.
"""

from diagnosis.artefact import read_metadata, resolve
from diagnosis.models import ModelVersion
from diagnosis.registry import register_model_version


def register(directory, activate=False):
    """Create the ``ModelVersion`` of the finished artefact at ``directory``; activate it if asked.

    Raises ``diagnosis.artefact.ArtefactError`` for an incomplete or unknown artefact and
    ``ValueError`` when a version of that name is already registered.
    """
    name = read_metadata(directory)["name"]
    if ModelVersion.objects.filter(name=name).exists():
        raise ValueError(f"A model version named {name!r} is already registered.")
    return register_model_version(directory, activate=activate)


def find_version(name=None):
    """The ``ModelVersion`` named ``name``, or the active one when ``name`` is None (or None if none)."""
    if name is None:
        return ModelVersion.active()
    return ModelVersion.objects.filter(name=name).first()


def artefact_directory(version):
    """The absolute artefact directory of ``version``."""
    return resolve(version.artefact_path)
