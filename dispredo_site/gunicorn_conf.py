"""gunicorn settings that bin/start passes with --config python:dispredo_site.gunicorn_conf.

The command line in bin/start holds the rest (bind, workers, timeouts, logs).
"""

import os


def child_exit(server, worker):
    """A worker ended (recycled after its requests, or crashed): tell prometheus-client, so that its
    live gauges are dropped; its counters and histograms stay in the totals."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
