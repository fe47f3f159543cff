"""Per-user rate limits, answered 429 with Retry-After. Rates come from settings (read per
request, so a test or a restart with new environment values changes them)."""

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle


class _SettingsRateThrottle(SimpleRateThrottle):
    setting = None

    @property
    def cache(self):
        # In the database: shared by every worker of every server (see DISPREDO_API_THROTTLE_CACHE in settings).
        return caches[settings.DISPREDO_API_THROTTLE_CACHE]

    def get_rate(self):
        return getattr(settings, self.setting)

    def get_cache_key(self, request, view):
        user = request.user
        ident = f"user-{user.pk}" if user and user.is_authenticated else f"address-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


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
