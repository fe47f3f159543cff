"""/healthz for load balancers and /metrics for Prometheus: no sign-in, no session, no patient data."""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from . import metrics
from .health import run_checks

# Headers a proxy adds: a request carrying one came through a proxy, whatever its address says.
PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def no_store(response):
    response["Cache-Control"] = "no-store"
    return response


@require_safe
def healthz(request):
    """200 {"status": "ok", "checks": {...}}, or 503 with the reason of each failed check."""
    checks, healthy = run_checks()
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    return no_store(JsonResponse(body, status=200 if healthy else 503))


@require_safe
def metrics_view(request):
    """The metrics for a bearer of DISPREDO_METRICS_TOKEN, or from this machine (not through a proxy).

    401 without credentials (with WWW-Authenticate), 403 with wrong ones."""
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = metrics.exposition()
    return no_store(HttpResponse(body, content_type=content_type))


def metrics_refusal(request):
    """None when ``request`` may read the metrics, else the response refusing it."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, credentials = header.partition(" ")
        token = settings.DISPREDO_METRICS_TOKEN
        if token and scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode()):
            return None
        return no_store(HttpResponse("This token may not read the metrics.\n", status=403, content_type="text/plain"))
    if from_this_machine(request):
        return None
    response = HttpResponse(
        "The metrics need Authorization: Bearer <DISPREDO_METRICS_TOKEN>, or a request from this machine.\n",
        status=401,
        content_type="text/plain",
    )
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return no_store(response)


def from_this_machine(request):
    """Whether the request came straight from a loopback address. Behind the proxy
    (DISPREDO_BEHIND_PROXY) every request arrives from it, often over loopback, so none counts; nor
    does one with a proxy's forwarding header."""
    if settings.SECURE_PROXY_SSL_HEADER or any(name in request.META for name in PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:  # a Unix socket has no address
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback
