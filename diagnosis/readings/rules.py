"""The rules of a clinician's reading of an X-ray, in one place for the pages (and any API).

A reading is version 1 as a draft, which any staff member may save and change; a user with
``diagnosis.sign_off_reading`` (superusers, the "Readers" group) signs it off once every finding
is marked, and that locks it. A change after sign-off is an amendment: version n + 1, signed at
once by the amender with a reason, while version n stays as it was. Every change is written to
the audit trail in the same transaction as the row.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from diagnosis.readings.models import UNREAD, Mark, Reading, ReadingStatus
from diagnosis.records import audit
from diagnosis.records.models import AuditAction, XRay
from dispredo_core.findings import DISPLAY_NAMES, FINDINGS

SIGN_OFF_PERMISSION = "diagnosis.sign_off_reading"

NOT_A_READER = "Only readers can sign off a reading."
NOT_A_READER_TO_AMEND = "Only readers can amend a signed-off reading."
LOCKED = "This reading is signed off; amend it instead."
NOT_SIGNED = "Only a signed-off reading can be amended; sign this one off instead."
NO_REASON = "Give the reason for the amendment."
UNCHANGED = "The amendment changes nothing: change a mark or the impression."
UNMARKED = "Mark every finding as present, absent or not assessable before signing off. Not marked: {names}."
INVALID_MARK = "{finding}: a mark is present, absent or not_assessable, not {value!r}."
UNKNOWN_FINDING = "{finding!r} is not one of the 14 findings."


class ReadingError(ValidationError):
    """A reading rule refused a change; ``code`` says which rule, the message says it to the user.

    ``field`` names the form field at fault, if one is; ``findings`` the findings left unmarked."""

    def __init__(self, message, code, *, field=None, findings=()):
        super().__init__(message, code=code)
        self.field = field
        self.findings = tuple(findings)


def current_reading(xray):
    """The newest version of ``xray``'s reading (the record), or None when it has not been read."""
    return xray.readings.select_related("created_by", "updated_by", "signed_by").order_by("-version").first()


def reading_state(xray):
    """The state of ``xray``'s reading: "unread", "draft" or "signed"."""
    reading = current_reading(xray)
    return reading.status if reading else UNREAD


def earlier_versions(xray, reading):
    """The versions before ``reading`` (the current one), newest first."""
    if reading is None:
        return Reading.objects.none()
    return xray.readings.filter(version__lt=reading.version).select_related("signed_by").order_by("-version")


def mark_rows(reading):
    """(finding, display name, mark label) for each of the 14 findings, in FINDINGS order."""
    labels = dict(Mark.choices)
    marks = reading.marks if reading else {}
    return [(name, DISPLAY_NAMES[name], labels.get(marks.get(name), "Not marked")) for name in FINDINGS]


def can_sign_off(user):
    return user.has_perm(SIGN_OFF_PERMISSION)


def check_may_sign_off(user, message=NOT_A_READER):
    if not can_sign_off(user):
        raise PermissionDenied(message)


def save_draft(xray, user, marks, impression):
    """Create version 1 as a draft, or update the current draft. Any staff member may."""
    marks, impression = clean_marks(marks), (impression or "").strip()
    with transaction.atomic():
        current = _locked_current(xray)
        if current is not None and current.is_signed:
            raise ReadingError(LOCKED, code="signed_off")
        now = timezone.now()
        if current is None:
            current = Reading.objects.create(
                xray=xray, version=1, marks=marks, impression=impression,
                created_by=user, created_at=now, updated_by=user, updated_at=now,
            )
            action = AuditAction.CREATE
        else:
            current.marks, current.impression, current.updated_by, current.updated_at = marks, impression, user, now
            current.save(update_fields=["marks", "impression", "updated_by", "updated_at"])
            action = AuditAction.CHANGE
        _audit(user, action, current, "draft saved")
    return current


def sign_off(xray, user, marks, impression):
    """Sign off the reading (the current draft, or a new version 1) with every finding marked; it is locked."""
    check_may_sign_off(user)
    with transaction.atomic():
        current = _locked_current(xray)
        if current is not None and current.is_signed:
            raise ReadingError(LOCKED, code="signed_off")
        marks, impression = complete_marks(marks), (impression or "").strip()
        now = timezone.now()
        action = AuditAction.CHANGE
        if current is None:
            current = Reading(xray=xray, version=1, created_by=user, created_at=now)
            action = AuditAction.CREATE
        current.marks, current.impression, current.updated_by, current.updated_at = marks, impression, user, now
        current.status, current.signed_by, current.signed_at = ReadingStatus.SIGNED, user, now
        current.save()
        _audit(user, action, current, "signed off")
    return current


def amend(xray, user, marks, impression, reason):
    """Amend the signed-off reading: version n + 1, signed by ``user`` at once; version n is kept."""
    check_may_sign_off(user, NOT_A_READER_TO_AMEND)
    with transaction.atomic():
        current = _locked_current(xray)
        if current is None or not current.is_signed:
            raise ReadingError(NOT_SIGNED, code="not_signed")
        reason = (reason or "").strip()
        if not reason:
            raise ReadingError(NO_REASON, code="no_reason", field="reason")
        marks, impression = complete_marks(marks), (impression or "").strip()
        if marks == current.marks and impression == current.impression:
            raise ReadingError(UNCHANGED, code="unchanged")
        now = timezone.now()
        amendment = Reading.objects.create(
            xray=xray, version=current.version + 1, status=ReadingStatus.SIGNED, marks=marks,
            impression=impression, amendment_reason=reason, created_by=user, created_at=now,
            updated_by=user, updated_at=now, signed_by=user, signed_at=now,
        )
        _audit(user, AuditAction.CREATE, amendment, f"amended (version {amendment.version}): {reason}")
    return amendment


def clean_marks(marks):
    """``marks`` as {finding: Mark} in FINDINGS order, blanks dropped; unknown names or values are refused."""
    marks = dict(marks or {})
    for name in marks:
        if name not in FINDINGS:
            raise ReadingError(UNKNOWN_FINDING.format(finding=name), code="unknown_finding")
    cleaned = {}
    for name in FINDINGS:
        value = marks.get(name) or ""
        if value and value not in Mark.values:
            raise ReadingError(INVALID_MARK.format(finding=name, value=value), code="invalid_mark", field=name)
        if value:
            cleaned[name] = str(value)
    return cleaned


def complete_marks(marks):
    """``clean_marks``, refusing any finding left unmarked (a signed reading marks all 14)."""
    cleaned = clean_marks(marks)
    missing = [name for name in FINDINGS if name not in cleaned]
    if missing:
        names = ", ".join(DISPLAY_NAMES[name] for name in missing)
        raise ReadingError(UNMARKED.format(names=names), code="unmarked", findings=missing)
    return cleaned


def _locked_current(xray):
    # Lock the X-ray row (where the database can) so two readers cannot both sign or amend version n.
    XRay.objects.select_for_update().only("pk").get(pk=xray.pk)
    return xray.readings.order_by("-version").first()


def _audit(user, action, reading, detail):
    audit.record_by(user, action, reading, detail)
