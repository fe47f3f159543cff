"""The intake's Prometheus metrics: uploads stored or refused (and why), scoring time and failures.

Labels carry only bounded values (refusal codes), never a path, an id, a file name or anything
typed into a form. ``dispredo_site.observability`` exposes them at /metrics with the rest.
"""

import re

from prometheus_client import Counter, Histogram

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

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
