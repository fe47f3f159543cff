"""Sign-in limits (django-axes): a lockout per user name and address, and a throttle per address.

- **Lockout** (axes itself, AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]): after
  AXES_FAILURE_LIMIT wrong passwords for one user name from one address, that user name is refused
  from that address, even with the right password, until AXES_COOLOFF_TIME after the last failure.
  Other users behind the same address, and the same user elsewhere, are not affected, so neither a
  clinic's NAT nor someone who knows a user name can lock everyone (or that user) out.
- **Throttle** (this handler): an address with DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT wrong passwords
  (for any user names) in the last DISPREDO_LOGIN_ADDRESS_WINDOW is refused until the oldest of them
  is older than the window: a sliding window that lets one attempt through for each failure that
  ages out, not a lock. It is counted from axes' failure log (AXES_ENABLE_ACCESS_FAILURE_LOG), one row
  per password that was checked and wrong; a refused attempt checks no password and is not counted.

Both are answered 429 with Retry-After (``lockout_response``, AXES_LOCKOUT_CALLABLE) on every sign-in
door: the sign-in page, the admin's, and an API token request with a password.
"""

import logging
import math

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.db.models import Max
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone

from .security import client_description

logger = logging.getLogger("axes")

# Set on a request refused by the address throttle: the seconds until an attempt is let through.
THROTTLE_ATTRIBUTE = "dispredo_throttle_retry_after"


def _seconds_until(moment, now):
    return max(1, math.ceil((moment - now).total_seconds()))


def address_retry_after(address, now=None):
    """Seconds until ``address`` may try again if it is throttled now, else None."""
    limit = settings.DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT
    window = settings.DISPREDO_LOGIN_ADDRESS_WINDOW
    now = now or timezone.now()
    times = list(
        AccessFailureLog.objects.filter(ip_address=address, attempt_time__gt=now - window)
        .order_by("-attempt_time")
        .values_list("attempt_time", flat=True)[:limit]
    )
    if len(times) < limit:
        return None
    # Once the limit-th most recent failure leaves the window, the address is under its limit again.
    return _seconds_until(times[-1] + window, now)


def lockout_retry_after(request, credentials=None):
    """Seconds until the locked (user name, address) pair of ``request`` may sign in again."""
    now = timezone.now()
    cooloff = settings.AXES_COOLOFF_TIME
    last = AccessAttempt.objects.filter(
        username=get_client_username(request, credentials), ip_address=getattr(request, "axes_ip_address", None)
    ).aggregate(last=Max("attempt_time"))["last"]
    return _seconds_until((last or now) + cooloff, now)


class SignInLimitsHandler(AxesDatabaseHandler):
    """axes' database handler, with the per-address throttle added (AXES_HANDLER)."""

    def is_locked(self, request, credentials=None):
        """Before the password is checked: the pair's lockout, then the address's throttle."""
        if super().is_locked(request, credentials):
            return True
        return self._throttled(request)

    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        if request is not None and getattr(request, "axes_locked_out", False):
            logger.warning(
                "AXES: Refused a sign-in by %s without checking the password (%s).",
                self._who(request, credentials),
                "address throttled" if hasattr(request, THROTTLE_ATTRIBUTE) else "locked out",
            )
        super().user_login_failed(sender, credentials, request, **kwargs)
        # A password checked and wrong: the failure that brings the address to its limit is answered
        # as throttled already, as axes answers the one that reaches the pair's limit.
        if request is not None and not request.axes_locked_out and self._throttled(request):
            logger.warning(
                "AXES: Throttling sign-ins from %s: %d failures in %d minutes.",
                request.axes_ip_address,
                settings.DISPREDO_LOGIN_ADDRESS_FAILURE_LIMIT,
                settings.DISPREDO_LOGIN_ADDRESS_WINDOW.total_seconds() // 60,
            )
            request.axes_locked_out = True
            request.axes_credentials = credentials

    @staticmethod
    def _throttled(request):
        retry_after = address_retry_after(request.axes_ip_address)
        if retry_after is None:
            return False
        setattr(request, THROTTLE_ATTRIBUTE, retry_after)
        return True

    @staticmethod
    def _who(request, credentials):
        return client_description(
            get_client_username(request, credentials), request.axes_ip_address, None, request.axes_path_info, request
        )


API_LOCKOUT_MESSAGE = (
    "Too many failed sign-ins for this account from this address: signing in to it from here is "
    "paused, even with the right password. Try again in {minutes} minutes."
)
API_THROTTLE_MESSAGE = "Too many failed sign-ins from this address. Try again in {minutes} minutes."


def lockout_response(request, original_response=None, credentials=None):
    """The answer to a refused sign-in (429 Too Many Requests, with Retry-After): a page on the site
    and in the admin; under /api/ (token creation) the API's JSON error, as its schema says.

    Two causes: the (user name, address) pair is locked out, or the address is throttled; each
    answer says which, and when to try again."""
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
