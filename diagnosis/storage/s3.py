"""X-ray files in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW): DISPREDO_STORAGE=s3.

Imported only when settings name it, so an installation that keeps its files locally never loads
boto3. Objects are written with a private ACL (or none, where the bucket has ACLs disabled) and,
when configured, server-side encryption (see dispredo_site.env.xray_storage). ``url()`` refuses, as
for the local folder: no presigned or public link is ever made; the image view streams the file.

The store's own errors (unreachable endpoint, refused credentials, a 5xx) become ``OSError``, as a
local disk's would, so the callers' handling of an unreadable file covers both; a missing object
is ``FileNotFoundError``. The messages name the operation and the error code, not the object key.
"""

import functools

from botocore.exceptions import BotoCoreError, ClientError
from storages.backends.s3 import S3File, S3Storage
from storages.utils import clean_name

from diagnosis.storage.xrays import NO_PUBLIC_URL


def _status(exc):
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(exc, ClientError) else None


def _store_error(operation, exc):
    if isinstance(exc, ClientError):
        detail = exc.response.get("Error", {}).get("Code") or _status(exc)
    else:
        detail = type(exc).__name__
    return OSError(f"The X-ray file store failed to {operation} a file ({detail}).")


def _translated(operation):
    """Re-raise the store's errors from the wrapped method as ``OSError`` (404: ``FileNotFoundError``)."""

    def wrap(method):
        @functools.wraps(method)
        def translated(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except (BotoCoreError, ClientError) as exc:
                if _status(exc) == 404:
                    raise FileNotFoundError(f"The X-ray file store has no such file ({operation}).") from exc
                raise _store_error(operation, exc) from exc

        return translated

    return wrap


class PrivateS3File(S3File):
    """An S3 object opened for reading; downloaded on first read, with the store's errors as OSError."""

    @_translated("read")
    def _get_file(self):
        return super()._get_file()

    file = property(_get_file, S3File._set_file)


class PrivateS3Storage(S3Storage):
    def url(self, name, *args, **kwargs):
        raise ValueError(NO_PUBLIC_URL)

    @_translated("open")
    def _open(self, name, mode="rb"):
        return PrivateS3File(self._normalize_name(clean_name(name)), mode, self)

    @_translated("write")
    def _save(self, name, content):
        return super()._save(name, content)

    @_translated("check")
    def exists(self, name):
        return super().exists(name)

    @_translated("delete")
    def delete(self, name):
        return super().delete(name)

    @_translated("size")
    def size(self, name):
        return super().size(name)

    @_translated("list")
    def listdir(self, name):
        return super().listdir(name)
