"""Which process writes or scores an X-ray, and whether that process is dead.

An identity is ``host:pid:start``. ``start`` is the process's start time (``/proc/<pid>/stat``,
field 22, in clock ticks since boot), so a pid the kernel has since given to another process is
not taken for the dead one. ``host`` is the host name and a short digest of this boot and this pid
namespace: two containers that share a host name (``--network host``) or a host after a reboot are
then other hosts, never looked up in this ``/proc``.

On this host a process is dead when no process has its pid with its start time (or only a zombie
does). On another host its liveness cannot be seen, so its journal row or claim counts as dead only
once it is older than ``STALE_AFTER``: gunicorn kills a worker that is silent for 60 s, and storing
and scoring one X-ray takes seconds, so no live writer holds one that long.
"""

import functools
import hashlib
import os
import socket
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

STALE_AFTER = timedelta(minutes=10)

_PROC = Path("/proc")
_DEAD_STATES = {"Z", "X", "x"}  # a zombie (killed, not yet reaped) or being torn down


def _stat_fields(pid):
    """``/proc/<pid>/stat`` from field 3 on (after the command name, which may hold spaces and
    parentheses), or None when there is no such process."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
        return None
    return text[text.rindex(")") + 2:].split()


def _start_of(pid):
    """The start time of ``pid`` (field 22) and its state (field 3), or (None, None)."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None, None
    return fields[19], fields[0]


@functools.cache
def _host():
    """This host's name and an 8-digit digest of its boot and its pid namespace."""
    parts = []
    for source in (_PROC / "sys" / "kernel" / "random" / "boot_id", _PROC / "self" / "ns" / "pid"):
        try:
            parts.append(os.readlink(source) if source.is_symlink() else source.read_text().strip())
        except OSError:
            parts.append("?")
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]
    return f"{socket.gethostname().replace(':', '_')}/{digest}"


def identity_of(pid):
    """The identity of the process ``pid`` of this host, ``host:pid:start``."""
    start, _ = _start_of(pid)
    return f"{_host()}:{pid}:{start or '0'}"


_identities = functools.cache(identity_of)


def current():
    """This process's identity (looked up once per pid: a forked worker has its own)."""
    return _identities(os.getpid())


def _parse(process):
    host, _, rest = process.partition(":")
    pid, _, start = rest.partition(":")
    return host, (int(pid) if pid.isdigit() else None), start


def is_dead(process, since, now=None):
    """Whether ``process`` (an identity from ``current()``), which has held a journal row or a
    claim since ``since``, is certainly gone: on this host when no process has its pid and start
    time, elsewhere (or when the identity cannot be read) when ``since`` is older than
    ``STALE_AFTER``."""
    host, pid, start = _parse(process or "")
    if host == _host() and pid is not None:
        if start == "0":  # no /proc here: only whether the pid exists can be known
            return not _pid_exists(pid)
        running_start, state = _start_of(pid)
        return running_start != start or state in _DEAD_STATES
    if since is None:
        return True
    return (now or timezone.now()) - since > STALE_AFTER


def _pid_exists(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
