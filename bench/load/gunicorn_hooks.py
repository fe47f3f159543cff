"""gunicorn's config module for the load benchmark (``--config python:bench.load.gunicorn_hooks``).

Its one hook sends Django's request errors (500s) with their tracebacks to the server log, where
the settings (DEBUG off) would otherwise drop them, so the run can print them. Everything else
comes from the command line in ``bench.load.servers``.
"""

import logging
import sys


def post_worker_init(worker):
    """Log Django's request errors, with tracebacks, to stderr (the server log)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.ERROR)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("django.request").addHandler(handler)
