"""Request and response checks that apply to every page: body size, anonymous posts, idle
sessions and caching of patient data."""

from csp.utils import build_policy
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from diagnosis.intake.content import TOO_LARGE_MESSAGE

# Room for the upload form's other fields and the multipart framing around the file.
FORM_MARGIN_BYTES = 1024 * 1024
# The most an anonymous request may send: a sign-in form is a few hundred bytes.
ANONYMOUS_MAX_BYTES = 64 * 1024
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}


def declared_length(request):
    """The request's Content-Length header as a number (0 when absent or not a number)."""
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


SIGN_IN_TOO_LARGE_MESSAGE = "A sign-in form is never this large."


def too_large(request, message, back=("diagnosis:upload", "Back to the upload page")):
    """The 413 answer: the API's JSON error under /api/, else a page with ``message`` as the form
    would show it and a link ``back`` (URL name, text).

    Answered before the middleware that adds the security headers runs, so it sets them itself."""
    if request.path_info.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=413)
    else:
        context = {"message": message, "back_url": reverse(back[0]), "back_label": back[1]}
        response = render(request, "413.html", context, status=413)
        response["Content-Security-Policy"] = build_policy()
        response["X-Frame-Options"] = settings.X_FRAME_OPTIONS
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


class BodySizeLimitMiddleware:
    """Answers 413 to a request that declares more than the largest upload, before anything reads it.

    Django checks DISPREDO_MAX_UPLOAD_BYTES only once the upload has been received and spooled; this
    refuses it from the headers alone, with the upload form's message (a page in the browser, the
    JSON error in the API). First in MIDDLEWARE.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if declared_length(request) > settings.DISPREDO_MAX_UPLOAD_BYTES + FORM_MARGIN_BYTES:
            # The upload form's own message for a file over the limit.
            return too_large(request, TOO_LARGE_MESSAGE.format(limit=settings.DISPREDO_MAX_UPLOAD_BYTES // (1024 * 1024)))
        return self.get_response(request)


class AnonymousBodyMiddleware:
    """Anonymous requests that would send a body are turned away before the body is read.

    Only the sign-in and sign-out pages (DISPREDO_ANONYMOUS_POST_URLS) take a small anonymous body;
    signing out after the session has ended just goes back to sign-in. Anything else is sent to sign in, which the
    page would have done anyway, but after CSRF had parsed the whole upload. Requests with an
    Authorization header and the /api/ prefix (DISPREDO_ANONYMOUS_BODY_EXEMPT) are left to the REST
    framework, which authenticates before it parses a body. After AuthenticationMiddleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in SAFE_METHODS or request.user.is_authenticated:
            return self.get_response(request)
        if "HTTP_AUTHORIZATION" in request.META or request.path_info.startswith(
            tuple(settings.DISPREDO_ANONYMOUS_BODY_EXEMPT)
        ):
            return self.get_response(request)
        if request.path in {reverse(name) for name in settings.DISPREDO_ANONYMOUS_POST_URLS}:
            if declared_length(request) > ANONYMOUS_MAX_BYTES:
                return too_large(request, SIGN_IN_TOO_LARGE_MESSAGE, back=("login", "Back to sign in"))
            return self.get_response(request)
        return redirect_to_login(request.get_full_path())


class IdleSessionMiddleware:
    """Keeps a signed-in session alive while it is used: each request (at most once a minute, to spare
    the database a write per request) renews its expiry to SESSION_COOKIE_AGE from now, so a session
    left idle for that long ends. After AuthenticationMiddleware."""

    KEY = "_dispredo_last_seen"
    RESOLUTION_SECONDS = 60

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            now = int(timezone.now().timestamp())
            if now - request.session.get(self.KEY, 0) >= self.RESOLUTION_SECONDS:
                request.session[self.KEY] = now  # modified: SessionMiddleware saves it with a new expiry
        return self.get_response(request)


class NoStoreMiddleware:
    """Cache-Control: no-store on every response to a signed-in user, so that pages and images with
    patient data stay neither in the browser's cache nor in any proxy's on a shared workstation.

    Static files never reach it (WhiteNoise answers them earlier). It replaces whatever a view set,
    such as the image view's "private, max-age=3600". After AuthenticationMiddleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.user.is_authenticated:
            response["Cache-Control"] = "no-store"
            response.headers.pop("Expires", None)
        return response
