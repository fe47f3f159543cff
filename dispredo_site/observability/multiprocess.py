"""The folder of prometheus-client's multiprocess mode, kept between starts (bin/start).

No metric is made here: importing this module writes nothing to the folder.
"""

import os
import re
from pathlib import Path

# prometheus-client's multiprocess files are named <kind>_<pid>.db.
_PROCESS_FILE = re.compile(r"^[a-z_]+_(?P<pid>\d+)\.db$")


def remove_files_of_ended_processes(folder):
    """Remove the multiprocess files of processes no longer running (bin/start, before gunicorn):
    the counts start again from the running processes', such as a DICOM listener that shares the
    folder. Returns how many files went."""
    removed = 0
    for path in Path(folder).glob("*.db"):
        match = _PROCESS_FILE.match(path.name)
        if match and not _running(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True
