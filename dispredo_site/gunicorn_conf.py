"""gunicorn settings that bin/start passes with --config python:dispredo_site.gunicorn_conf.

The command line in bin/start holds the rest (bind, workers, timeouts, logs). These hooks run in
gunicorn's master process, which never loads Django.
"""

import os
import subprocess
import sys
from pathlib import Path

from diagnosis.intake.crashpoints import VARIABLE as CRASH_AT

MANAGE = Path(__file__).resolve().parents[1] / "manage.py"
REPAIR = [sys.executable, str(MANAGE), "repair_uploads", "--verbosity", "0"]


def child_exit(server, worker):
    """A worker ended (recycled after its requests, timed out, or killed): tell prometheus-client,
    so that its live gauges are dropped (its counters and histograms stay in the totals), and repair
    what an upload it was serving may have left."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
    start_repair(server, worker)


def start_repair(server, worker):
    """Run ``manage.py repair_uploads`` in the background, in its own process: the repair touches only
    dead processes' uploads, so it is cheap after a worker that was merely recycled.

    gunicorn gives the hook no exit status (it reaped the worker already), so it runs after every
    exit while the server is serving; not while it is stopping (its listeners closed): the next
    start repairs then. The repair inherits the environment (the same database and storage) but
    never the tests' fault injection, which is meant for the server only."""
    listening = getattr(server, "LISTENERS", None) or getattr(getattr(server, "cfg", None), "reuse_port", False)
    if not listening:
        return
    environment = {name: value for name, value in os.environ.items() if name != CRASH_AT}
    server.log.info("Worker (pid:%s) exited: repairing the uploads it may have left, in the background", worker.pid)
    # Its output goes to the server's error log; gunicorn reaps it with its workers.
    subprocess.Popen(REPAIR, env=environment, stdin=subprocess.DEVNULL)
