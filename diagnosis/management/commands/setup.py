import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from diagnosis.registry import install_default_model


class Command(BaseCommand):
    help = (
        "Prepare a Dispredo installation: apply migrations, register the shipped default model "
        "and, on the first run, create the first staff account. Safe to run on every start."
    )

    def handle(self, *args, verbosity=1, **options):
        call_command("migrate", interactive=False, verbosity=max(verbosity - 1, 0))

        version = install_default_model()
        if version is None:
            self.stdout.write(self.style.WARNING("No default model in models/default: uploads will stay pending."))
        elif verbosity:
            state = "active" if version.is_active else "installed (another version is active)"
            self.stdout.write(f"Default model {version.name}: {state}.")

        User = get_user_model()
        if not User.objects.exists():
            username = os.environ.get("DISPREDO_ADMIN_USERNAME", "admin")
            password = os.environ.get("DISPREDO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email="", password=password)
            # Shown once, never stored in the repository; the account can change it after signing in.
            self.stdout.write(
                self.style.SUCCESS(
                    "\nCreated the first staff account.\n"
                    f"  username: {username}\n"
                    f"  password: {password if 'DISPREDO_ADMIN_PASSWORD' not in os.environ else '(from DISPREDO_ADMIN_PASSWORD)'}\n"
                    "Sign in, then change the password under Admin > Users.\n"
                )
            )
