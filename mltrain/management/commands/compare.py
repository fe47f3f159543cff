"""manage.py compare: two model versions on the same patients neither trained on (mltrain.comparison)."""

from pathlib import Path

from django.core.management.base import CommandError

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.management.version_option import ModelVersionCommand
from dispredo_core.artefact import ArtefactError
from dispredo_core.comparison import table_lines
from mltrain.comparison import ComparisonError, compare_versions
from mltrain.dataset import SPLITS, DatasetError


class Command(ModelVersionCommand):
    help = (
        "Score two model versions with their served models on one split of a preprocessed folder, "
        "keeping only the patients neither trained on, and print per finding AUROC of each and the "
        "difference with a paired 95 % patient-bootstrap interval, then the mean difference."
    )

    def add_arguments(self, parser):
        parser.add_argument("--candidate", required=True, help="Name of the model version to judge.")
        parser.add_argument(
            "--against", default=None, help="Name of the version to compare with (default: the active one)."
        )
        parser.add_argument("--data", type=Path, required=True, help="A preprocessed folder (manage.py preprocess).")
        parser.add_argument("--split", choices=SPLITS, default="test", help="Which split of it (default test).")

    def _version(self, name):
        version = ModelVersion.objects.filter(name=name).first()
        if version is None:
            raise CommandError(f"No model version named {name!r}; list them in the admin.")
        return version

    def handle(self, *args, candidate, against, data, split, verbosity, **options):
        candidate = self._version(candidate)
        against = self._version(against) if against else None
        if verbosity:
            self.stdout.write(f"Scoring the {split} split of {data} with both versions...")
        try:
            result = compare_versions(candidate, against, data_dir=data, split=split)
        except (ComparisonError, DatasetError, ArtefactError) as exc:
            raise CommandError(str(exc)) from exc
        comparison, left_out = result["comparison"], result["left_out"]
        self.stdout.write(
            f"{result['candidate']} (candidate) against {result['against']} on the {split} split of "
            f"{result['data_directory']}: {comparison['images']} images of {comparison['patients']} patients "
            f"neither trained on ({left_out['images']} images of {left_out['patients']} patients left out)."
        )
        for line in table_lines(comparison, result["candidate"], result["against"]):
            self.stdout.write(line)
        for note in result["notes"]:
            self.stdout.write(note)
