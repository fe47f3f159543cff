"""Dispredo's Prometheus metrics, and their exposition for /metrics.

Labels carry only bounded values (view names, methods, status classes, refusal codes, the model
version's name), never a path, an id, a file name or anything typed into a form.

Under gunicorn's several workers, bin/start sets PROMETHEUS_MULTIPROC_DIR (before any metric is
made) and each worker writes its values there; the scrape adds them up across workers, and
gunicorn's ``child_exit`` hook (dispredo_site/gunicorn_conf.py) marks a finished worker. Without
that variable (tests, runserver) the values live in the process.
"""

import os
import re

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

REQUEST_SECONDS = Histogram(
    "dispredo_http_request_duration_seconds",
    "Time to answer a request, by view (URL name), method and status class.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPLOADS = Counter("dispredo_uploads", "X-ray uploads (page and API), by outcome: stored or refused.", ["outcome"])
REFUSALS = Counter(
    "dispredo_upload_refusals",
    "Reasons uploads were refused: the form's error codes (invalid_image, not_chest_xray, too_large, dicom_*, ...).",
    ["reason"],
)
SCORING_SECONDS = Histogram(
    "dispredo_scoring_duration_seconds",
    "Time the model takes to score one X-ray.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SCORING_FAILURES = Counter("dispredo_scoring_failures", "X-rays the model failed to score (marked failed).")

for _outcome in ("stored", "refused"):
    UPLOADS.labels(_outcome)  # shown as 0 from the start


def observe_request(view, method, status_code, seconds):
    method = method if method in METHODS else "other"
    REQUEST_SECONDS.labels(view, method, f"{status_code // 100}xx").observe(seconds)


def count_stored_upload():
    UPLOADS.labels("stored").inc()


def count_refused_upload(form):
    """A refused upload, and each distinct error code of ``form`` (a bound Django form) once."""
    UPLOADS.labels("refused").inc()
    codes = {error.code or "invalid" for errors in form.errors.as_data().values() for error in errors}
    for code in codes:
        REFUSALS.labels(code if _CODE.match(code) else "other").inc()


def count_refusal(reason):
    """One refusal that never reached the form (e.g. a body over the size limit)."""
    UPLOADS.labels("refused").inc()
    REFUSALS.labels(reason).inc()


class ActiveModelCollector:
    """``dispredo_active_model_info{version="..."} 1``, read from the database at each scrape, so it
    is right whichever worker answers and whenever the version changed."""

    NAME = "dispredo_active_model_info"
    DOCUMENTATION = "The model version uploads are scored with (absent while none is active)."

    def describe(self):
        return [GaugeMetricFamily(self.NAME, self.DOCUMENTATION, labels=["version"])]

    def collect(self):
        from django.db import DatabaseError

        from diagnosis.models import ModelVersion

        family = GaugeMetricFamily(self.NAME, self.DOCUMENTATION, labels=["version"])
        try:
            version = ModelVersion.active()
        except DatabaseError:
            version = None
        if version is not None:
            family.add_metric([version.name], 1)
        yield family


def exposition():
    """The metrics in Prometheus's text format: (body, content type)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
    else:
        registry = CollectorRegistry()
        registry.register(_Everything(REGISTRY))
    registry.register(ActiveModelCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Everything:
    """The process's own registry (its metrics, plus process and Python ones) inside another."""

    def __init__(self, registry):
        self.registry = registry

    def describe(self):
        return []

    def collect(self):
        return self.registry.collect()
