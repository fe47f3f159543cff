"""The common part of commands that register a new model version made from an ensemble's members
without training them again (``calibrate``, ``addhog``)."""

from pathlib import Path

from django.core.management.base import CommandError

from diagnosis.gate.activation import ActivationRefused
from diagnosis.management.version_option import ModelVersionCommand
from dispredo_core.artefact import ArtefactError
from mltrain.config import TrainingError
from mltrain.dataset import DatasetError
from mltrain.export import ExportError
from mltrain.registry import artefact_directory, find_version

# What making the new version can refuse with, each with its message for the user (the activation
# gate's refusal leaves the new version registered and says how to activate it anyway).
NEW_VERSION_ERRORS = (ValueError, TrainingError, DatasetError, ArtefactError, ExportError, ActivationRefused)


class NewVersionCommand(ModelVersionCommand):
    """A command that registers a new model version made from an ensemble's members without training
    them again: ``--version`` (the source), ``--name``, ``--data-dir``, ``--activate``."""

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="version_name", required=True, help="Name of the ensemble's model version.")
        parser.add_argument("--name", required=True, help="Name of the new model version.")
        parser.add_argument("--data-dir", type=Path, default=None, help="The preprocessed data it was trained on (default: as recorded).")
        parser.add_argument("--activate", action="store_true", help="Make the new version the one uploads use.")

    def source_directory(self, name):
        """The artefact directory of the model version ``name``; ``CommandError`` when there is none."""
        source = find_version(name)
        if source is None:
            raise CommandError(f"No model version named {name!r}; list them in the admin.")
        return artefact_directory(source)
