"""The pages' forms: the upload, the worklist's filters, the patient search, the reading."""

from django import forms
from django.core.exceptions import ValidationError
from django.forms.forms import NON_FIELD_ERRORS

from diagnosis.intake.names import display_name
from diagnosis.intake.submissions import Incoming, Refusal
from diagnosis.readings.models import UNREAD, Mark, ReadingStatus
from diagnosis.records.forms import DateInput, PatientForm
from diagnosis.records.models import Patient, ViewPosition, XRayStatus
from dispredo_core.findings import DISPLAY_NAMES, FINDINGS


class UploadForm(forms.Form):
    """The fields of an upload, on the page and through the API (``api.xrays``): an X-ray for a
    chosen patient, a patient typed in the same step, or the one its DICOM header names.

    The form only reads the fields; the intake (``diagnosis.intake.pipeline``) checks the file, the
    patient and the rest in its own order, and ``refuse`` shows its reasons. What the form cannot
    read (a date that is not one) goes to the intake too, which shows it after the file's content."""

    patient = forms.ModelChoiceField(
        queryset=Patient.objects.all(), required=False, empty_label="— New patient (fill in below) —"
    )
    new_mrn = forms.CharField(label="Medical record number", max_length=64, required=False)
    new_name = forms.CharField(label="Name", max_length=200, required=False)
    new_sex = forms.ChoiceField(label="Sex", choices=PatientForm.base_fields["sex"].choices, required=False, initial="U")
    new_date_of_birth = forms.DateField(label="Date of birth", required=False, widget=DateInput())
    # Checked by its content in the intake, never here (nor by its name).
    image = forms.FileField(
        label="X-ray image", required=False, allow_empty_file=True,
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,application/dicom,.dcm"}),
    )
    view_position = forms.ChoiceField(choices=[("", "Unknown")] + list(ViewPosition.choices), required=False)
    clinical_note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    score_anyway = forms.BooleanField(
        label="This is a frontal chest X-ray: score it anyway",
        help_text="Choose the file again; the override is recorded in the audit trail.",
        required=False,
    )

    # Set when the input guard refused the image: the page then offers ``score_anyway``.
    offer_override = False

    def incoming(self, user, source):
        """What the intake receives from this bound form, sent by ``user`` through ``source``."""
        self.is_valid()
        data = self.cleaned_data
        upload = self.files.get("image")
        return Incoming(
            upload=upload,
            name=display_name(upload.name) if upload is not None else "",
            source=source,
            user=user,
            patient=data.get("patient"),
            new_patient={
                "mrn": data.get("new_mrn") or "",
                "name": data.get("new_name") or "",
                "sex": data.get("new_sex") or "",
                "date_of_birth": data.get("new_date_of_birth"),
            },
            view_position=data.get("view_position") or "",
            clinical_note=data.get("clinical_note") or "",
            score_anyway=bool(data.get("score_anyway")),
            unparsed=tuple(
                Refusal(error.code or "invalid", message, None if name == NON_FIELD_ERRORS else name)
                for name, errors in self.errors.as_data().items()
                for error in errors
                for message in error.messages
            ),
        )

    def refuse(self, outcome):
        """Show the intake's refusals of this upload, and only them, each on its field."""
        self.errors.clear()
        for refusal in outcome.refusals:
            self.add_error(refusal.field, ValidationError(refusal.message, code=refusal.code))
        self.offer_override = outcome.offer_override


AWAITING = "awaiting"
TRIAGE = "triage"


class WorklistFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "Any status")] + list(XRayStatus.choices), required=False)
    finding = forms.ChoiceField(label="Flagged finding", required=False)
    reading = forms.ChoiceField(
        choices=[
            ("", "Any reading"),
            (AWAITING, "Awaiting reading"),
            (UNREAD, "Unread"),
            (ReadingStatus.DRAFT, "Draft"),
            (ReadingStatus.SIGNED, "Signed off"),
        ],
        required=False,
    )
    sort = forms.ChoiceField(
        label="Order", choices=[("", "Newest first"), (TRIAGE, "Triage: strongest flags first")], required=False
    )

    def __init__(self, *args, version=None, **kwargs):
        """``version``: the active model version; only its reliable findings can be flagged, so only
        they are offered."""
        super().__init__(*args, **kwargs)
        findings = version.reliable_findings() if version else []
        self.fields["finding"].choices = [("", "Any finding")] + [(name, DISPLAY_NAMES[name]) for name in findings]


class PatientSearchForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=200)


class ReadingForm(forms.Form):
    """A reader's marks, one radio group per finding (named by the finding, in FINDINGS order), and
    an impression. Blank marks are allowed here (a draft); the reading rules refuse them at sign-off.

    Its initial values come only from the X-ray's reading (``initial_from``), never from the model's
    predictions, so that nothing the model said is pre-filled."""

    impression = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        marks = {
            name: forms.ChoiceField(
                label=DISPLAY_NAMES[name], choices=Mark.choices, widget=forms.RadioSelect, required=False
            )
            for name in FINDINGS
        }
        self.fields = {**marks, **self.fields}

    @staticmethod
    def initial_from(reading):
        return {**reading.marks, "impression": reading.impression} if reading else {}

    def mark_fields(self):
        return [self[name] for name in FINDINGS]

    def marks(self):
        return {name: self.cleaned_data[name] for name in FINDINGS if self.cleaned_data.get(name)}

    def add_reading_error(self, error):
        """Show a ``readings.ReadingError`` on the form: on its field, or above the form with each
        unmarked finding pointed out."""
        self.add_error(error.field if error.field in self.fields else None, error)
        for name in error.findings:
            self.add_error(name, ValidationError("Not marked.", code="unmarked"))


class AmendmentForm(ReadingForm):
    """The amended marks and impression, with the reason for the amendment (the rules require one)."""

    reason = forms.CharField(
        label="Reason for the amendment", widget=forms.Textarea(attrs={"rows": 2}), required=False
    )
