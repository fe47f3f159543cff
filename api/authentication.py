"""Token authentication: ``Authorization: Bearer <key>`` (``Token <key>`` also accepted)."""

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from .models import ApiToken

KEYWORDS = (b"bearer", b"token")
BAD_HEADER = "Invalid Authorization header: send 'Bearer <token>'."
EXPIRED = "This token expired on {when:%Y-%m-%d %H:%M} UTC. Create a new one (POST /api/tokens/) and revoke this one."


class ApiTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in KEYWORDS:
            return None  # not ours: the session may still authenticate the request
        if len(parts) != 2:
            raise AuthenticationFailed(BAD_HEADER)
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed(BAD_HEADER) from None
        token = ApiToken.find(key)
        if token is None or not token.user.is_active:
            raise AuthenticationFailed("Invalid or revoked token.")
        if token.has_expired:
            raise AuthenticationFailed(EXPIRED.format(when=token.expires_at), code="token_expired")
        token.mark_used()
        return token.user, token

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="api"'
