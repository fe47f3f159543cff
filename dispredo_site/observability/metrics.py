"""Dispredo's Prometheus metrics, and their exposition for /metrics.

The upload and scoring metrics are the intake's (``diagnosis.intake.metrics``); this module adds
the request latency and exposes them all. Labels carry only bounded values (view names, methods, status classes, refusal codes, the model
version's name), never a path, an id, a file name or anything typed into a form.

Under gunicorn's several workers, bin/start sets PROMETHEUS_MULTIPROC_DIR (before any metric is
made) and each worker writes its values there; the scrape adds them up across workers, and
gunicorn's ``child_exit`` hook (dispredo_site/gunicorn_conf.py) marks a finished worker. Without
that variable (tests, runserver) the values live in the process.
"""

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

REQUEST_SECONDS = Histogram(
    "dispredo_http_request_duration_seconds",
    "Time to answer a request, by view (URL name), method and status class.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
def observe_request(view, method, status_code, seconds):
    method = method if method in METHODS else "other"
    REQUEST_SECONDS.labels(view, method, f"{status_code // 100}xx").observe(seconds)


class ActiveModelCollector:
    """``dispredo_active_model_info{version="..."} 1``, read from the database at each scrape, so it
    is right whichever worker answers and whenever the version changed."""

    NAME = "dispredo_active_model_info"
    DOCUMENTATION = "The model version uploads are scored with (absent while none is active)."

    def describe(self):
        return [GaugeMetricFamily(self.NAME, self.DOCUMENTATION, labels=["version"])]

    def collect(self):
        from django.db import DatabaseError

        from diagnosis.lifecycle.models import ModelVersion

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
