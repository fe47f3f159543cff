"""Per-user rate limits, answered 429 with Retry-After. Rates come from settings (read per
request, so a test or a restart with new environment values changes them).

Counts are ``api.models.RateCount`` rows, counted in fixed windows (a rate of 120/min allows 120
requests in each clock minute) by one atomic statement per request: every worker of every server
shares them, and concurrent requests cannot both take the last place (the cache-based throttle of
the REST framework reads a list, appends and writes it back, so two requests at once both got in).
"""

import math

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from .models import RateCount


class _SettingsRateThrottle(SimpleRateThrottle):
    setting = None

    def get_rate(self):
        return getattr(settings, self.setting)

    def get_cache_key(self, request, view):
        user = request.user
        ident = f"user-{user.pk}" if user and user.is_authenticated else f"address-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.now = self.timer()
        number, self.window_end = RateCount.hit(key, self.duration, self.now)
        return number <= self.num_requests

    def wait(self):
        """Seconds until the window ends and the count starts again."""
        return max(math.ceil(self.window_end - self.now), 1)


class RequestThrottle(_SettingsRateThrottle):
    """Every API request of a user (or, before sign-in, of an address)."""

    scope = "requests"
    setting = "DISPREDO_API_REQUEST_RATE"


class UploadThrottle(_SettingsRateThrottle):
    """X-ray uploads of a user: each one is scored by the model, so they cost far more than a read."""

    scope = "uploads"
    setting = "DISPREDO_API_UPLOAD_RATE"


class SignInThrottle(_SettingsRateThrottle):
    """Token requests with a password, per address: a brake on password guessing."""

    scope = "sign-in"
    setting = "DISPREDO_API_SIGN_IN_RATE"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
