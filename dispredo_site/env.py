"""Reading settings from the environment: small helpers that fail loudly on a bad value."""

import ipaddress
import os
import secrets
import sys
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


def env_int(name, default, low=None, high=None):
    """A whole number from the environment, optionally from ``low`` to ``high``."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ImproperlyConfigured(f"{name} must be a whole number {bounds}, not {raw!r}.")
    return value


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


def env_rate(name, default):
    """A rate like "120/min" (per second, minute, hour or day) from the environment."""
    value = env_str(name, default).strip()
    count, _, period = value.partition("/")
    if not (count.isdigit() and period[:1] in ("s", "m", "h", "d")):
        raise ImproperlyConfigured(f"{name} must be a rate such as 120/min (per s, min, hour or day), not {value!r}.")
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
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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


def _bind_host(bind):
    """The host part of a gunicorn --bind value, or None for a unix socket or file descriptor."""
    if bind.startswith(("unix:", "fd://")):
        return None
    if bind.startswith("["):
        return bind[1:].split("]", 1)[0]
    if bind.count(":") > 1:  # a bare IPv6 address
        return bind
    return bind.rsplit(":", 1)[0] if ":" in bind else bind


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name (or the empty host, all interfaces): it may be reached from elsewhere
        return False


def bind_warning(bind, behind_proxy):
    """The warning to print when gunicorn would be reached directly from other machines, else None.

    gunicorn alone serves plain HTTP and a few idle connections tie up its threads: beyond loopback it
    belongs behind an HTTPS reverse proxy, which DISPREDO_BEHIND_PROXY declares.
    """
    host = _bind_host(bind.strip())
    if host is None or behind_proxy or _is_loopback(host):
        return None
    return (
        f"Warning: gunicorn listens on {bind}, beyond this machine, without DISPREDO_BEHIND_PROXY. "
        "Reached directly it serves plain HTTP, and a few idle connections can stall it. Put it behind an "
        "HTTPS reverse proxy and set DISPREDO_BEHIND_PROXY=true, or bind to 127.0.0.1 (DISPREDO_BIND)."
    )


def print_bind_warning():
    """bin/start's check of DISPREDO_BIND and DISPREDO_BEHIND_PROXY, printed to standard error."""
    warning = bind_warning(env_str("DISPREDO_BIND", "127.0.0.1:8000"), env_bool("DISPREDO_BEHIND_PROXY"))
    if warning:
        print(warning, file=sys.stderr)


# ---- X-ray file storage (issue 19): STORAGES["xrays"] --------------------------------------------

_S3_ACLS = {"private": "private", "bucket-owner-full-control": "bucket-owner-full-control", "none": None}
_S3_ENCRYPTIONS = {"none": None, "aes256": "AES256", "aws:kms": "aws:kms"}
_S3_ADDRESSING = ("auto", "path", "virtual")


def _choice(name, default, allowed):
    raw = os.environ.get(name)
    value = (raw or "").strip().lower() or default
    if value not in allowed:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(allowed)}, not {raw!r}.")
    return value


def xray_storage():
    """The STORAGES entry for X-ray files: the private local folder, or an S3-compatible bucket.

    DISPREDO_STORAGE=local (default) keeps them under MEDIA_ROOT. DISPREDO_STORAGE=s3 puts them in
    DISPREDO_S3_BUCKET (under DISPREDO_S3_PREFIX) at DISPREDO_S3_ENDPOINT_URL (empty: AWS) in
    DISPREDO_S3_REGION, with DISPREDO_S3_ACCESS_KEY_ID / DISPREDO_S3_SECRET_ACCESS_KEY, else the
    standard AWS variables and credential chain. Objects get a private ACL (DISPREDO_S3_ACL) and,
    with DISPREDO_S3_ENCRYPTION, server-side encryption. No URL is ever handed out.
    """
    kind = _choice("DISPREDO_STORAGE", "local", ("local", "s3"))
    if kind == "local":
        return {"BACKEND": "diagnosis.storage.xrays.PrivateFileSystemStorage"}
    bucket = env_str("DISPREDO_S3_BUCKET").strip()
    if not bucket:
        raise ImproperlyConfigured("DISPREDO_STORAGE=s3 needs DISPREDO_S3_BUCKET, the name of the bucket for X-ray files.")
    endpoint = env_str("DISPREDO_S3_ENDPOINT_URL").strip()
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ImproperlyConfigured(
                f"DISPREDO_S3_ENDPOINT_URL must look like https://s3.clinic.example:9000, not {endpoint!r}."
            )
    key_id = env_str("DISPREDO_S3_ACCESS_KEY_ID").strip()
    secret = env_str("DISPREDO_S3_SECRET_ACCESS_KEY").strip()
    if bool(key_id) != bool(secret):
        raise ImproperlyConfigured(
            "Set both DISPREDO_S3_ACCESS_KEY_ID and DISPREDO_S3_SECRET_ACCESS_KEY, or neither "
            "(then AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS credential chain are used)."
        )
    acl = _S3_ACLS[_choice("DISPREDO_S3_ACL", "private", tuple(_S3_ACLS))]
    encryption = _S3_ENCRYPTIONS[_choice("DISPREDO_S3_ENCRYPTION", "none", tuple(_S3_ENCRYPTIONS))]
    kms_key = env_str("DISPREDO_S3_KMS_KEY_ID").strip()
    if kms_key and encryption != "aws:kms":
        raise ImproperlyConfigured("DISPREDO_S3_KMS_KEY_ID needs DISPREDO_S3_ENCRYPTION=aws:kms.")
    parameters = {}
    if encryption:
        parameters["ServerSideEncryption"] = encryption
    if kms_key:
        parameters["SSEKMSKeyId"] = kms_key
    # A MinIO or Ceph endpoint seldom has a DNS name per bucket: path style unless told otherwise.
    addressing = _choice("DISPREDO_S3_ADDRESSING_STYLE", "path" if endpoint else "auto", _S3_ADDRESSING)
    options = {
        "bucket_name": bucket,
        "location": env_str("DISPREDO_S3_PREFIX").strip().strip("/"),
        "endpoint_url": endpoint or None,
        "region_name": env_str("DISPREDO_S3_REGION").strip() or None,
        "addressing_style": None if addressing == "auto" else addressing,
        "default_acl": acl,
        "object_parameters": parameters,
        # Never replace a stored X-ray (names are random; this makes a clash impossible, not unlikely).
        "file_overwrite": False,
        # Signed even if a URL were ever made (url() refuses anyway), and never on a custom domain.
        "querystring_auth": True,
        "custom_domain": None,
    }
    if key_id:
        options.update(access_key=key_id, secret_key=secret)
    return {"BACKEND": "diagnosis.storage.s3.PrivateS3Storage", "OPTIONS": options}
