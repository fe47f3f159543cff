"""manage.py evaluate: score a model version on a held-out split and save the report with it."""

from pathlib import Path

from django.core.management.base import CommandError

from diagnosis.management.version_option import ModelVersionCommand
from dispredo_core.artefact import ArtefactError
from dispredo_core.findings import FINDINGS
from mltrain.dataset import SPLITS, DatasetError
from mltrain.evaluation import EvaluationError, evaluate, report_files
from mltrain.registry import find_version


class Command(ModelVersionCommand):
    help = (
        "Evaluate a model version (its exported ONNX model, as served) on a split of patients it never "
        "trained on: AUROC and figures at its thresholds per finding, mean AUROC, ROC curves, a report."
    )

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="version_name", default=None, help="Model version name (default: the active one).")
        parser.add_argument("--split", choices=[s for s in SPLITS if s != "train"], default="test")
        parser.add_argument("--data-dir", type=Path, default=None, help="Preprocessed data (default DISPREDO_MLTRAIN_DIR/preprocessed).")

    def handle(self, *args, version_name, split, data_dir, verbosity, **options):
        version = find_version(version_name)
        if version is None:
            if version_name:
                raise CommandError(f"No model version named {version_name!r}; list them in the admin or train one.")
            raise CommandError("No model version is active; pass --version NAME or activate one.")
        try:
            report = evaluate(version, split=split, data_dir=data_dir)
        except (EvaluationError, DatasetError, ArtefactError) as exc:
            raise CommandError(str(exc)) from exc
        if verbosity == 0:
            return
        self.stdout.write(f"{version.name} on {split}: {report['images']} images of {report['patients']} patients ({report['engine']})")
        self.stdout.write(f"{'finding':<20} {'AUROC':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'acc':>6} {'pos':>4}")
        for name in FINDINGS:
            row = report["findings"][name]
            auc = "n/a" if row["auroc"] is None else f"{row['auroc']:.3f}"
            self.stdout.write(
                f"{name:<20} {auc:>6} {row['precision']:>6.2f} {row['recall']:>6.2f} {row['f1']:>6.2f} "
                f"{row['accuracy']:>6.2f} {row['positives']:>4}"
            )
        mean = report["mean_auroc"]
        self.stdout.write(f"{'mean AUROC':<20} {'n/a' if mean is None else f'{mean:.3f}':>6}")
        self.stdout.write(
            f"flags per image {report['flags_per_image']:.2f} (present: {report['findings_per_image']:.2f}); "
            f"mean probability {report['mean_probability']:.3f} (prevalence {report['prevalence']:.3f}); "
            f"Brier score {report['brier_score']:.3f}"
        )
        for width, row in report.get("per_source", {}).items():
            m = "n/a" if row["mean_auroc"] is None else f"{row['mean_auroc']:.3f}"
            self.stdout.write(f"  source {width:>4} px: {row['images']:>4} images, mean AUROC {m}")
        files = ", ".join(report_files(split).values())
        self.stdout.write(self.style.SUCCESS(f"Saved {files} with {version.name} and in its evaluation[{split!r}]."))
