"""What a door hands the intake (``Incoming``) and what it gets back (``Outcome``, with ``Refusal``s).

Each door turns its own input into an ``Incoming`` and the ``Outcome`` into its own answer: the
upload page into form errors, the API into an HTTP status, the DICOM listener into a DIMSE status.
"""

from dataclasses import dataclass, field

from diagnosis.records.models import Source

# How the audit trail and the messages name each door.
DOOR_NAMES = {Source.PAGE: "the upload page", Source.API: "the API", Source.DICOM: "the DICOM listener"}


@dataclass(frozen=True)
class Refusal:
    """Why an incoming X-ray was not stored: a stable ``code`` (metrics, DIMSE statuses), the
    ``message`` staff or a PACS log read, and the ``field`` of the upload form it belongs to
    ("image" for the file's content, a patient field, or None for the submission as a whole).
    ``offer_override``: the input guard doubted the image, and staff may score it anyway."""

    code: str
    message: str
    field: str | None = None
    offer_override: bool = False

    @property
    def is_about_the_file(self):
        return self.field == "image"


@dataclass(frozen=True)
class Incoming:
    """An X-ray arriving by a door.

    ``upload`` is the file (an uploaded file with ``size`` and ``read()``, or the bytes a DICOM
    association delivered), ``name`` the name to show for it (``names.display_name``). The patient is
    ``patient`` (one chosen on the form), or the typed ``new_patient`` fields (mrn, name, sex,
    date_of_birth; empty when none was typed), or, with neither, the one a DICOM header names.
    ``unparsed`` holds the door's own refusals of fields it could not read (a date that is not one):
    the intake puts them in their place among its checks, after the file's content.
    """

    upload: object
    name: str
    source: str
    user: object
    patient: object = None
    new_patient: dict = field(default_factory=dict)
    view_position: str = ""
    clinical_note: str = ""
    score_anyway: bool = False
    calling_ae_title: str = ""
    unparsed: tuple = ()

    @property
    def door(self):
        return DOOR_NAMES.get(self.source, self.source)


@dataclass(frozen=True)
class Outcome:
    """What became of an incoming X-ray: stored (``xray``, and its ``status`` after scoring:
    done, pending or failed), or refused (``refusals``, in the order they are shown; nothing stored)."""

    xray: object = None
    status: str = ""
    refusals: tuple = ()
    new_patient: bool = False

    @property
    def stored(self):
        return self.xray is not None

    @property
    def offer_override(self):
        return any(refusal.offer_override for refusal in self.refusals)
