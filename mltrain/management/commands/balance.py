"""manage.py balance: one balanced binary training set per finding (SMOTETomek), training split only."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mltrain.balance import MAX_NEGATIVES, MAX_POSITIVES, METHODS, BalanceError, balance
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
        parser.add_argument(
            "--max-positives",
            type=int,
            default=MAX_POSITIVES,
            help=f"Positives kept per finding, drawn before resampling; 0 keeps all (default {MAX_POSITIVES}).",
        )
        parser.add_argument("--seed", type=int, default=42, help="Seed of the negative draw and of SMOTE (default 42).")

    def handle(self, *args, data, method, max_negatives, max_positives, seed, verbosity, **options):
        data = (data or default_directory()).expanduser().resolve()
        try:
            report = balance(
                data,
                method=method,
                max_negatives=max_negatives,
                max_positives=max_positives,
                seed=seed,
                progress=verbosity == 1,
                on_finding=self.finished if verbosity > 1 else None,
            )
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

    def finished(self, finding, entry):
        """At verbosity 2, a line as each finding is done (a finding takes minutes at full scale)."""
        drawn, after = entry["drawn"], entry["after"]
        result = f"{after['positive']:,} + / {after['negative']:,} -" if after else f"skipped ({entry['skipped']})"
        self.stdout.write(
            f"{finding}: drew {drawn['positive']:,} + / {drawn['negative']:,} -, balanced to {result} "
            f"in {entry['seconds']} s"
        )
        self.stdout.flush()
