"""The intake's Prometheus metrics: uploads stored or refused (and why), scoring time and failures.

Labels carry only bounded values (refusal codes), never a path, an id, a file name or anything
typed into a form. ``dispredo_site.observability`` exposes them at /metrics with the rest.
"""

import re

from prometheus_client import Counter, Histogram

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

UPLOADS = Counter("dispredo_uploads", "Incoming X-rays (page, API, DICOM listener), by outcome: stored or refused.", ["outcome"])
REFUSALS = Counter(
    "dispredo_upload_refusals",
    "Reasons incoming X-rays were refused: the intake's refusal codes (invalid_image, not_chest_xray, too_large, dicom_*, ...).",
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


def count_refusal(codes):
    """A refused upload, and each distinct refusal code (``Refusal.code``, or a door's own such as
    request_too_large) once; ``codes`` is one code or several."""
    UPLOADS.labels("refused").inc()
    for code in sorted({codes} if isinstance(codes, str) else set(codes)):
        REFUSALS.labels(code if _CODE.match(code or "") else "other").inc()
