"""Where X-ray files live: the storage of ``STORAGES["xrays"]`` (settings, from DISPREDO_STORAGE).

By default the private local folder (MEDIA_ROOT); with DISPREDO_STORAGE=s3 an S3-compatible bucket
(``diagnosis.storage.s3``), which every server of an installation shares. App code reaches the files
only through this storage (``xray.image.open("rb")``, ``storage.save/exists/delete``), never through
a local path. Either way a file has no URL: only the image view, which checks the user, sends it.
"""

from django.core.files.storage import FileSystemStorage, storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty

ALIAS = "xrays"
NO_PUBLIC_URL = "X-ray files are private and have no public URL."


class PrivateFileSystemStorage(FileSystemStorage):
    """X-rays under MEDIA_ROOT (followed when the setting changes), written 0600, without a URL."""

    def url(self, name):
        raise ValueError(NO_PUBLIC_URL)


class XRayStorage(LazyObject):
    """``storages["xrays"]``, looked up on first use and again after STORAGES changes (tests).

    ``XRay.image`` holds this one object (its field is built once, at import), so the field follows
    the setting instead of keeping the storage it was built with."""

    def _setup(self):
        self._wrapped = storages[ALIAS]


xray_storage = XRayStorage()


@receiver(setting_changed)
def _forget_storage(*, setting, **kwargs):
    if setting == "STORAGES":
        xray_storage._wrapped = empty


def is_local(storage=None):
    """Whether X-ray files are in a local folder (MEDIA_ROOT) rather than a shared store."""
    return isinstance(xray_storage if storage is None else storage, FileSystemStorage)
