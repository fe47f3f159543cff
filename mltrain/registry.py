"""Register finished artefact directories as ``ModelVersion`` rows.

Only a complete artefact is registered: ``read_metadata`` checks the format version, the 14
findings in order, a threshold for each and the serving model, and a half-written directory
(no metadata.json, which is written last) fails it.
"""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from diagnosis.artefact import read_metadata, resolve
from diagnosis.models import ModelVersion


def stored_location(directory):
    """``directory`` as stored in ``ModelVersion.artefact_path``: relative to the project when inside it."""
    directory = Path(directory).resolve()
    try:
        return str(directory.relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return str(directory)


def register(directory, activate=False):
    """Create the ``ModelVersion`` of the finished artefact at ``directory``; activate it if asked.

    Raises ``diagnosis.artefact.ArtefactError`` for an incomplete or unknown artefact and
    ``ValueError`` when a version of that name is already registered.
    """
    metadata = read_metadata(directory)
    name = metadata["name"]
    if ModelVersion.objects.filter(name=name).exists():
        raise ValueError(f"A model version named {name!r} is already registered.")
    with transaction.atomic():
        version = ModelVersion.objects.create(
            name=name,
            artefact_path=stored_location(directory),
            thresholds=metadata["thresholds"],
            metrics=metadata.get("metrics", {}),
        )
    if activate:
        version.activate()
    return version


def find_version(name=None):
    """The ``ModelVersion`` named ``name``, or the active one when ``name`` is None (or None if none)."""
    if name is None:
        return ModelVersion.active()
    return ModelVersion.objects.filter(name=name).first()


def artefact_directory(version):
    """The absolute artefact directory of ``version``."""
    return resolve(version.artefact_path)
