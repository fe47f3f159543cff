import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from diagnosis.lifecycle.registry import install_default_model
from diagnosis.storage import xrays as storage
from dispredo_site.security import make_private_file, make_private_folder


class Command(BaseCommand):
    help = (
        "Prepare a Dispredo installation: make its data folder private, apply migrations, register the "
        "shipped default model and, on the first run, create the first staff account. Safe to run on every start."
    )

    def handle(self, *args, verbosity=1, **options):
        self.make_data_private(verbosity)
        call_command("migrate", interactive=False, verbosity=max(verbosity - 1, 0))

        version = install_default_model()
        if version is None:
            self.stdout.write(self.style.WARNING("No default model in models/default: uploads will stay pending."))
        elif verbosity:
            state = "active" if version.is_active else "installed (another version is active)"
            self.stdout.write(f"Default model {version.name}: {state}.")

        User = get_user_model()
        if not User.objects.exists():
            self.create_first_account(User)

    def make_data_private(self, verbosity):
        """The data, upload and model folders 0700 and the SQLite database 0600, created so if new.

        Patient images are written 0600 already; the database holds the same patients' records.
        """
        # The upload folder only when X-ray files are kept locally (not in a shared bucket).
        media = [settings.MEDIA_ROOT] if storage.is_local() else []
        folders = [settings.DATA_DIR, *media, settings.DISPREDO_MODEL_DIR]
        changed = [path for path in folders if make_private_folder(path)]
        if connection.vendor == "sqlite" and not connection.is_in_memory_db():
            database = Path(connection.settings_dict["NAME"])
            make_private_folder(database.parent)
            # SQLite creates its -wal and -shm files with the database's own mode.
            files = [database] + [p for p in (Path(f"{database}-wal"), Path(f"{database}-shm")) if p.exists()]
            changed += [path for path in files if make_private_file(path)]
        if verbosity:
            for path in changed:
                self.stdout.write(f"Made {path} private (readable by this user only).")

    def create_first_account(self, User):
        username = os.environ.get("DISPREDO_ADMIN_USERNAME", "admin")
        password = os.environ.get("DISPREDO_ADMIN_PASSWORD")
        from_environment = bool(password)
        if from_environment:
            # The same rules as a password set in the admin (AUTH_PASSWORD_VALIDATORS).
            try:
                validate_password(password, User(username=username))
            except ValidationError as error:
                raise CommandError(
                    "DISPREDO_ADMIN_PASSWORD is not accepted: " + " ".join(error.messages)
                    + " Choose another password, or leave it unset to have one generated."
                ) from None
        else:
            password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        # Shown once, never stored in the repository; the account can change it after signing in.
        shown = "(from DISPREDO_ADMIN_PASSWORD)" if from_environment else password
        self.stdout.write(
            self.style.SUCCESS(
                "\nCreated the first staff account.\n"
                f"  username: {username}\n"
                f"  password: {shown}\n"
                "Sign in, then change the password under Admin > Users.\n"
            )
        )
