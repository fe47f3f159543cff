"""Reading settings from the environment: small helpers that fail loudly on a bad value."""

import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name, default=""):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of true/false/1/0/yes/no, not {raw!r}.")


def env_int(name, default):
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None


def env_float(name, default, low, high):
    """A number from ``low`` to ``high`` from the environment."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}.") from None
    if not low <= value <= high:  # NaN too
        raise ImproperlyConfigured(f"{name} must be a number from {low:g} to {high:g}, not {raw!r}.")
    return value


def env_list(name, default):
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(name, default):
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else Path(default)


def secret_key(name, key_file):
    """The secret key from the environment, else a random one kept in a private file.

    Nothing secret is ever in the repository: a fresh install generates its own key
    on first start and keeps it, so sessions survive restarts.
    """
    value = os.environ.get(name)
    if value:
        return value
    key_file = Path(key_file)
    if key_file.exists():
        return key_file.read_text().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(50)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def database(name, sqlite_path):
    """SQLite by default; PostgreSQL when the variable holds postgres://user:pass@host:port/db."""
    url = os.environ.get(name)
    if not url:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(sqlite_path)}
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql") or not parsed.path.strip("/"):
        raise ImproperlyConfigured(
            f"{name} must look like postgres://user:password@host:5432/dbname, not {url!r}."
        )
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")),
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
    }
