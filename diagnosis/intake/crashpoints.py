"""Fault injection for the crash tests: the dangerous points of storing and scoring an X-ray.

``reached(name)`` does nothing unless the environment variable ``DISPREDO_CRASH_AT`` equals
``name``; then it kills its own process with SIGKILL on the spot, as ``kill -9`` or the kernel's
out-of-memory killer would: no ``finally``, no rollback, no cleanup. The tests start a real server
with it set and check that the repair leaves no file without a row and no row without its file
(diagnosis/intake/tests/test_crash_safety.py).

Only the tests set it. It must never be set in production: an upload reaching the named point
kills the worker serving it.
"""

import os
import signal

VARIABLE = "DISPREDO_CRASH_AT"

# In the order an upload passes them.
JOURNAL_COMMITTED = "journal_committed"  # the journal row committed, no byte of the file written
FILE_PARTLY_WRITTEN = "file_partly_written"  # the file's first chunk written, the rest not
FILE_WRITTEN = "file_written"  # the whole file written (and synced), its row not yet saved
ROW_INSERTED = "row_inserted"  # inside the row's transaction: every row written, not committed
ROW_COMMITTED = "row_committed"  # the row committed, scoring not started
SCORING_CLAIMED = "scoring_claimed"  # the X-ray claimed for scoring, its predictions not written

POINTS = (JOURNAL_COMMITTED, FILE_PARTLY_WRITTEN, FILE_WRITTEN, ROW_INSERTED, ROW_COMMITTED, SCORING_CLAIMED)


def reached(name):
    """Kill this process with SIGKILL if ``DISPREDO_CRASH_AT`` names ``name``; otherwise nothing."""
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
