"""One JSON log line and one latency observation per request, under a request id sent back in
X-Request-ID. First in MIDDLEWARE, so it times and logs everything, static files and refusals included.

The line names the route (the URL pattern, ids as placeholders), never the path or its query
string (a search may be a patient's name), and the user by numeric id, never by name. The line of
a request that raised is the one log line of that error: at ERROR, with the exception's type and
traceback (JsonFormatter writes no exception message); django.request's own line of it is dropped.
"""

import logging
import re
import sys
import time
import uuid

from django.conf import settings
from django.core.signals import got_request_exception
from django.urls import Resolver404, resolve

from diagnosis.intake import metrics as intake_metrics

from . import metrics
from .logs import request_id_var

logger = logging.getLogger("dispredo.requests")

HEADER = "X-Request-ID"
# An incoming id is kept only when it is a short token of safe characters; else a new one is made.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Uploads, where a 413 (refused from its Content-Length before the form saw it) is a refused upload.
UPLOAD_VIEWS = {"diagnosis:upload", "api:xray-list"}
# Where the exception a request raised is kept until its line is written.
EXCEPTION_ATTRIBUTE = "_dispredo_exc_info"


def remember_exception(sender, request=None, **kwargs):
    """Django turns a view's (or middleware's) exception into a 500 and sends this signal while it
    handles it: the exception is kept on the request for its log line."""
    if request is not None:
        setattr(request, EXCEPTION_ATTRIBUTE, sys.exc_info())


got_request_exception.connect(remember_exception, dispatch_uid="dispredo_site.observability.remember_exception")


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            seconds = time.perf_counter() - started
            response[HEADER] = request_id
            # Popped, so the traceback (which holds the request) does not keep it alive.
            exc_info = request.__dict__.pop(EXCEPTION_ATTRIBUTE, None)
            self.record(request, response.status_code, seconds, exc_info if response.status_code >= 500 else None)
        finally:
            request_id_var.reset(token)
        return response

    def record(self, request, status, seconds, exc_info=None):
        view, route = self.route_of(request)
        metrics.observe_request(view, request.method, status, seconds)
        if status == 413 and request.method == "POST" and view in UPLOAD_VIEWS:
            intake_metrics.count_refusal("request_too_large")
        fields = {
            "method": request.method,
            "route": route,
            "view": view,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "user_id": user_id_of(request),
        }
        logger.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "%s %s %s %.1f ms",
            request.method,
            route,
            status,
            fields["duration_ms"],
            extra={"fields": fields},
            exc_info=exc_info,
        )

    def route_of(self, request):
        """(view name, URL pattern) of the request: from its resolved view, else resolved here (a
        middleware answered before the view), "static" for static files, "unmatched" for a 404."""
        match = getattr(request, "resolver_match", None)
        if match is None:
            if request.path_info.startswith(self.static_prefix):
                return "static", self.static_prefix + "*"
            try:
                match = resolve(request.path_info)
            except Resolver404:
                return "unmatched", "unmatched"
        return match.view_name or "unnamed", "/" + match.route


def user_id_of(request):
    """The signed-in user's numeric id, or None (anonymous, a static file, or a session that could
    not be read: the line is written all the same)."""
    user = getattr(request, "user", None)
    try:
        return user.pk if user is not None and user.is_authenticated else None
    except Exception:
        return None
