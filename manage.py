#!/usr/bin/env python
"""Django's command-line utility for Dispredo."""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispredo_site.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ModuleNotFoundError as error:
        # A training command in bin/start's web-only environment: say what to install.
        from mltrain.packages import missing_training_package

        message = missing_training_package(error, sys.argv[1] if len(sys.argv) > 1 else "")
        if message is None:
            raise
        sys.exit(message)


if __name__ == "__main__":
    main()
