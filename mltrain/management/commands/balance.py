"""manage.py balance: one balanced binary training set per finding (SMOTETomek), training split only."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mltrain.balance import MAX_NEGATIVES, METHODS, BalanceError, balance
from mltrain.dataset import BALANCE_REPORT_FILE, BALANCED_DIR, default_directory


class Command(BaseCommand):
    help = (
        "For each finding, build a balanced binary training set from the TRAINING split of the "
        "preprocessed data (validation and test are never touched)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--data", type=Path, default=None, help=f"Preprocessed data folder (default {default_directory()})."
        )
        parser.add_argument("--method", choices=METHODS, default="smotetomek", help="Resampling (default smotetomek).")
        parser.add_argument(
            "--max-negatives",
            type=int,
            default=MAX_NEGATIVES,
            help=f"Negatives kept per finding, drawn before resampling; 0 keeps all (default {MAX_NEGATIVES}).",
        )
        parser.add_argument("--seed", type=int, default=42, help="Seed of the negative draw and of SMOTE (default 42).")

    def handle(self, *args, data, method, max_negatives, seed, verbosity, **options):
        data = (data or default_directory()).expanduser().resolve()
        try:
            report = balance(data, method=method, max_negatives=max_negatives, seed=seed, progress=verbosity > 0)
        except BalanceError as exc:
            raise CommandError(str(exc)) from exc
        if verbosity == 0:
            return
        self.stdout.write(f"{'finding':<20} {'before +':>9} {'before -':>9} {'after +':>9} {'after -':>9}")
        for finding, entry in report["findings"].items():
            before, after = entry["before"], entry["after"]
            line = f"{finding:<20} {before['positive']:>9,} {before['negative']:>9,}"
            if after is None:
                line += f"  skipped: {entry['skipped']}"
            else:
                line += f" {after['positive']:>9,} {after['negative']:>9,}"
            self.stdout.write(line)
        self.stdout.write(
            self.style.SUCCESS(f"Wrote {data / BALANCED_DIR} (method {method}; report {BALANCE_REPORT_FILE}).")
        )
