"""JSON log lines, each with the id of the request it was written in.

``RequestIdFilter`` (on the console handler) adds the current request's id to every record, from a
context variable the request middleware sets; ``JsonFormatter`` writes one JSON object per line.
No Django import: gunicorn's config can use these before the application is loaded.

An exception is written as its type and its traceback's frames, never its message: a message may
quote whatever the code had in hand (a patient's name, a record number, a file name), and the logs
never carry patient data. Only a database integrity error keeps its first line, which names the
constraint (the DETAIL line after it, which quotes the row's values, is dropped).
"""

import contextvars
import json
import logging
import traceback
from datetime import datetime, timezone

# The id of the request being answered in this thread (or task), None outside a request.
request_id_var = contextvars.ContextVar("dispredo_request_id", default=None)

# Exceptions whose message's first line is kept: it names a constraint, never a value.
_CONSTRAINT_ERRORS = {"IntegrityError"}


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` to the current request's id (None outside a request)."""

    def filter(self, record):
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class NotServerErrorFilter(logging.Filter):
    """Drops django.request's record of a 5xx answer: the request's own line (dispredo.requests)
    logs it, once, with the request id and the exception's type."""

    def filter(self, record):
        return getattr(record, "status_code", 0) < 500


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
        if record.exc_info and record.exc_info[0] is not None:
            line["exception_type"] = type_name(record.exc_info[0])
            line["exception"] = traceback_without_messages(record.exc_info)
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def type_name(exc_type):
    """``module.QualifiedName`` of an exception class (``builtins.`` for the built-in ones)."""
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


def _summary(exception):
    """The line that ends an exception's traceback: its type, and no message (but a constraint's name)."""
    name = type_name(type(exception))
    if type(exception).__name__ in _CONSTRAINT_ERRORS and exception.args:
        first = str(exception.args[0]).strip().splitlines()
        if first:
            return f"{name}: {first[0]}"
    return name


def traceback_without_messages(exc_info):
    """The traceback of ``exc_info`` (with the exceptions it was raised from or during), each
    exception named by its type only: frames (file, line, function, source line) and types."""
    parts = []
    exception, seen = exc_info[1], set()
    chain = []
    while exception is not None and id(exception) not in seen:
        seen.add(id(exception))
        chain.append(exception)
        exception = exception.__cause__ or (None if exception.__suppress_context__ else exception.__context__)
    for position, exception in enumerate(reversed(chain)):
        if position:
            caused = exception.__cause__ is chain[len(chain) - position]
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if caused
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        frames = traceback.extract_tb(exception.__traceback__)
        if frames:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_list(frames))
        parts.append(_summary(exception) + "\n")
    return "".join(parts).rstrip("\n")


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
        "filters": {
            "request_id": {"()": "dispredo_site.observability.logs.RequestIdFilter"},
            "not_server_errors": {"()": "dispredo_site.observability.logs.NotServerErrorFilter"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]}},
        "root": {"handlers": ["console"], "level": "WARNING"},
        "loggers": {
            **{name: {"level": "INFO"} for name in APP_LOGGERS},
            # Failed sign-ins and lockouts (user name, address, page); successful ones are in Admin > Axes.
            "axes": {"level": "WARNING"},
            # Its 500s are left out (the request's own line carries them, with the exception's type
            # and traceback: observability/middleware.py); what else it logs at ERROR is kept. Its own
            # handler and no propagation, as Django's default configuration has it.
            "django.request": {
                "handlers": ["console"], "level": "ERROR", "propagate": False, "filters": ["not_server_errors"],
            },
        },
    }
