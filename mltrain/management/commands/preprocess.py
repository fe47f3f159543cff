"""manage.py preprocess: data folders in the NIH ChestX-ray14 layout -> memory-mappable training arrays."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mltrain.dataset import CHART_FILE, SPLITS, default_directory
from mltrain.preprocess import PreprocessError, preprocess


class Command(BaseCommand):
    help = (
        "Convert the NIH ChestX-ray14 dataset (Data_Entry_2017.csv and images_*/images/), and any "
        "exports of manage.py export_readings in the same layout, into grayscale size x size arrays "
        "split by patient into train, val and test."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--data-dir",
            required=True,
            type=Path,
            action="append",
            dest="data_dirs",
            help="Folder in the NIH layout (label file and image folders): the NIH download or an export "
            "of export_readings. Repeat it to take several; a Patient ID may be in one folder only.",
        )
        parser.add_argument("--size", type=int, default=100, help="Side of the model image in pixels (default 100).")
        parser.add_argument("--workers", type=int, default=None, help="Worker processes (default: all cores).")
        parser.add_argument("--out", type=Path, default=None, help=f"Output folder (default {default_directory()}).")
        parser.add_argument("--seed", type=int, default=42, help="Seed of the patient split (default 42).")
        parser.add_argument(
            "--official-split",
            action="store_true",
            help="Require the official train_val_list.txt and test_list.txt beside each label file "
            "(refuse a folder without them instead of splitting it by patient with --seed).",
        )

    def handle(self, *args, data_dirs, size, workers, out, seed, official_split, verbosity, **options):
        out = out or default_directory()
        try:
            manifest = preprocess(
                data_dirs, out, size=size, workers=workers, seed=seed, progress=verbosity > 0, official_split=official_split
            )
        except PreprocessError as exc:
            raise CommandError(str(exc)) from exc
        if verbosity == 0:
            return
        listed = manifest["images_found"] + manifest["missing_images"]
        self.stdout.write(
            f"{manifest['images_found']:,} of {listed:,} listed images converted to {manifest['size']} px; "
            f"{manifest['missing_images']:,} listed but absent (skipped)."
        )
        if len(manifest["sources"]) > 1:
            for source in manifest["sources"]:
                counts = ", ".join(f"{source['splits'][split]:,} {split}" for split in SPLITS)
                self.stdout.write(
                    f"  {source['name']}: {source['images']:,} images of {source['patients']:,} patients "
                    f"({source['kind']}, {source['split_method']} split): {counts}"
                )
        for split in SPLITS:
            summary = manifest["splits"][split]
            self.stdout.write(
                f"  {split:<5} {summary['count']:>7,} images  {summary['patients']:>6,} patients  "
                f"{summary['no_finding']:>7,} with no finding"
            )
        if verbosity > 1:
            self.stdout.write(f"  {'images with':<20} " + "  ".join(f"{split:>6}" for split in SPLITS))
            for name in manifest["findings"]:
                counts = "  ".join(f"{manifest['splits'][split]['per_finding'][name]:>6,}" for split in SPLITS)
                self.stdout.write(f"  {name:<20} {counts}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {Path(out).resolve()} ({manifest['split_method']} split by patient, chart {CHART_FILE})."
            )
        )
