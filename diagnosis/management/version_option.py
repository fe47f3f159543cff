"""A ``--version NAME`` option for commands that act on a model version."""

from django.core.management.base import BaseCommand


class ModelVersionCommand(BaseCommand):
    """Lets ``--version`` name a model version (``dest="version_name"``), replacing Django's
    "show the Django version" option of the same name."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)
