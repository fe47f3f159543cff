"""The checks behind /healthz: the database answers, the active model loads, X-ray storage takes a write.

Each check returns None when it passes, else a short reason (shown to anyone, so never an exception's
text: that goes to the log, by class only). Cheap enough for a load balancer polling every few
seconds: one trivial query, one indexed query for the active version (its model is loaded once per
process, then cached), and one small file written and deleted.
"""

import logging
import uuid

from django.core.files.base import ContentFile
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

DATABASE_DOWN = "the database does not answer"
NO_ACTIVE_MODEL = "no active model version"
MODEL_NOT_LOADED = "the active model version cannot be loaded"
MODEL_NOT_CHECKED = "not checked: the database does not answer"
MEDIA_NOT_WRITABLE = "the media storage cannot be written to"

PROBE_FOLDER = "healthz"


def check_database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("Health check: the database does not answer (%s)", type(exc).__name__)
        return DATABASE_DOWN
    return None


def check_model(database_ok=True):
    from diagnosis.lifecycle.models import ModelVersion
    from diagnosis.lifecycle.predictors import predictor_for

    if not database_ok:
        return MODEL_NOT_CHECKED
    try:
        version = ModelVersion.active()
    except DatabaseError:
        return MODEL_NOT_CHECKED
    if version is None:
        return NO_ACTIVE_MODEL
    try:
        predictor_for(version)
    except Exception as exc:  # whatever the artefact or ONNX Runtime raise, the check must answer
        logger.warning("Health check: model version %s cannot be loaded (%s)", version.name, type(exc).__name__)
        return MODEL_NOT_LOADED
    return None


def xray_storage():
    """The storage X-ray files are written to (that of ``XRay.image``, whatever STORAGES configures)."""
    from diagnosis.records.models import XRay

    return XRay._meta.get_field("image").storage


def check_media():
    storage = xray_storage()
    try:
        name = storage.save(f"{PROBE_FOLDER}/probe-{uuid.uuid4().hex}.txt", ContentFile(b"ok\n"))
        storage.delete(name)
    except Exception as exc:  # OSError locally, the client library's errors for a remote store
        logger.warning("Health check: the media storage cannot be written to (%s)", type(exc).__name__)
        return MEDIA_NOT_WRITABLE
    return None


def run_checks():
    """{"database": ..., "model": ..., "media": ...}: "ok" or the reason, and whether all passed."""
    database = check_database()
    results = {"database": database, "model": check_model(database is None), "media": check_media()}
    return {name: reason or "ok" for name, reason in results.items()}, not any(results.values())
