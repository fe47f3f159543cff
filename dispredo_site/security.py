"""Helpers of the security settings: who a sign-in attempt came from, the answer to a refused
sign-in, and private data files."""

import math
import os
import stat
from pathlib import Path

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render


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


API_LOCKOUT_MESSAGE = (
    "Too many failed sign-ins for this account from this address: signing in to it from here is "
    "paused, even with the right password. Try again in {minutes} minutes."
)
API_THROTTLE_MESSAGE = "Too many failed sign-ins from this address. Try again in {minutes} minutes."


def lockout_response(request, original_response=None, credentials=None):
    """The answer to a refused sign-in (429 Too Many Requests, with Retry-After): a page on the site
    and in the admin; under /api/ (token creation) the API's JSON error, as its schema says.

    Two causes (``dispredo_site.lockout``): the (user name, address) pair is locked out, or the
    address is throttled; each answer says which, and when to try again."""
    from .lockout import THROTTLE_ATTRIBUTE, lockout_retry_after

    throttled = hasattr(request, THROTTLE_ATTRIBUTE)
    seconds = getattr(request, THROTTLE_ATTRIBUTE) if throttled else lockout_retry_after(request, credentials)
    minutes = math.ceil(seconds / 60)
    if request.path_info.startswith("/api/"):
        message = API_THROTTLE_MESSAGE if throttled else API_LOCKOUT_MESSAGE
        response = JsonResponse({"detail": message.format(minutes=minutes)}, status=429)
    else:
        context = {
            "throttled": throttled,
            "retry_minutes": minutes,
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "cooloff_minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
            "address_limit": settings.DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT,
            "address_window_minutes": int(settings.DISPREDO_LOGIN_ADDRESS_WINDOW.total_seconds() // 60),
        }
        response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response


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
