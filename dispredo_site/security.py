"""Helpers of the security settings: who a sign-in attempt came from, and private data files."""

import os
import stat
from pathlib import Path

from django.conf import settings


def client_address(request):
    """The address a request came from, for sign-in lockout and its log.

    Behind the HTTPS proxy (DISPREDO_BEHIND_PROXY) every request arrives from the proxy, so the client
    is the last address of X-Forwarded-For: the one the proxy itself appended (earlier entries are
    whatever the client claimed). Otherwise it is the connection's address.
    """
    if settings.SECURE_PROXY_SSL_HEADER:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if forwarded[-1]:
            return forwarded[-1]
    return request.META.get("REMOTE_ADDR")


def client_description(username, ip_address, user_agent, path_info, request):
    """How django-axes names a sign-in attempt in its log lines: user name, address and page only."""
    if isinstance(path_info, (tuple, list)):
        path_info = path_info[0]
    return f"user {username!r} from {ip_address} ({path_info})"


def make_private_folder(path):
    """Create ``path`` if needed and make it readable by this user only (0700).

    Returns True when the mode had to change.
    """
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return _set_mode(path, 0o700)


def make_private_file(path):
    """Create ``path`` empty if needed and make it readable by this user only (0600).

    Creating it here, before SQLite opens it, means it is never readable by others, even briefly.
    Returns True when the mode of an existing file had to change.
    """
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    return _set_mode(path, 0o600)


def _set_mode(path, mode):
    if stat.S_IMODE(path.stat().st_mode) == mode:
        return False
    os.chmod(path, mode)
    return True
