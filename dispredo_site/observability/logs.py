"""JSON log lines, each with the id of the request it was written in.

``RequestIdFilter`` (on the console handler) adds the current request's id to every record, from a
context variable the request middleware sets; ``JsonFormatter`` writes one JSON object per line.
No Django import: gunicorn's config can use these before the application is loaded.
"""

import contextvars
import json
import logging
import re
from datetime import datetime, timezone

# The id of the request being answered in this thread (or task), None outside a request.
request_id_var = contextvars.ContextVar("dispredo_request_id", default=None)

# A PostgreSQL error's DETAIL line quotes the row's values, e.g. "Key (mrn)=(MRN001) already exists.":
# dropped from tracebacks, which keep the error itself and the constraint's name.
_ROW_VALUES = re.compile(r"^\s*DETAIL:.*$\n?", re.MULTILINE)


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` to the current request's id (None outside a request)."""

    def filter(self, record):
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, request_id where there is
    one, message, the record's ``fields`` (a dict given as ``extra={"fields": ...}``), and the
    traceback of an exception without the row values a database error quotes."""

    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            ),
            "level": record.levelname,
            "logger": record.name,
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            line["request_id"] = request_id
        line["message"] = record.getMessage()
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = without_row_values(self.formatException(record.exc_info))
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def without_row_values(text):
    """``text`` (a traceback) without the DETAIL lines in which PostgreSQL quotes a row's values."""
    return _ROW_VALUES.sub("", text)


# The project's loggers, at INFO; the rest of the world at WARNING.
APP_LOGGERS = ("diagnosis", "dispredo_core", "api", "dispredo", "dispredo_site")


def logging_config():
    """Django's LOGGING: every line one JSON object on the console (standard error), with the request
    id where there is one. The project's loggers and every library's warnings go through the root
    logger's one console handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "dispredo_site.observability.logs.JsonFormatter"}},
        "filters": {"request_id": {"()": "dispredo_site.observability.logs.RequestIdFilter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]}},
        "root": {"handlers": ["console"], "level": "WARNING"},
        "loggers": {
            **{name: {"level": "INFO"} for name in APP_LOGGERS},
            # Failed sign-ins and lockouts (user name, address, page); successful ones are in Admin > Axes.
            "axes": {"level": "WARNING"},
            # With DEBUG off and no ADMINS, a 500's traceback would otherwise go nowhere. Its own
            # handler and no propagation, as Django's default configuration has it.
            "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        },
    }
