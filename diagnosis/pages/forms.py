from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from diagnosis.intake import dicom_records
from diagnosis.intake.names import display_name
from diagnosis.readings.models import UNREAD, Mark, ReadingStatus
from diagnosis.records.models import Patient, ViewPosition, XRayStatus
from dispredo_core.findings import DISPLAY_NAMES, FINDINGS
from dispredo_core.guard import REFUSAL_MESSAGE
from dispredo_core.imaging import InvalidImage, RefusedImage, open_xray

INVALID_IMAGE_MESSAGE = "Please upload a chest X-ray image (PNG, JPEG or DICOM)."


class DateInput(forms.DateInput):
    input_type = "date"


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["mrn", "name", "sex", "date_of_birth", "notes"]
        widgets = {"date_of_birth": DateInput(), "notes": forms.Textarea(attrs={"rows": 3})}

    def clean_mrn(self):
        return self.cleaned_data["mrn"].strip().upper()

    def clean_name(self):
        return " ".join(self.cleaned_data["name"].split())


class XRayFileField(forms.FileField):
    """A file that must decode as a PNG, JPEG or DICOM chest X-ray; cleans to (bytes, PIL image,
    display name). The image is upright and 8-bit grayscale (``imaging.open_xray``); the name is
    the uploaded one made safe to show (``upload_names.display_name``), never used for storage.

    Refusals with a reason of their own keep their code and message: DICOM ones (colour,
    multi-frame, not a chest, damaged...) and an image too large to decode."""

    default_error_messages = {
        "required": "Please choose an X-ray image file.",
        "invalid": INVALID_IMAGE_MESSAGE,
        "empty": INVALID_IMAGE_MESSAGE,
        "missing": INVALID_IMAGE_MESSAGE,
        "too_large": "The file is larger than %(limit)s MB.",
    }

    def clean(self, data, initial=None):
        upload = super().clean(data, initial)
        limit = settings.DISPREDO_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise ValidationError(
                self.error_messages["too_large"], code="too_large", params={"limit": limit // (1024 * 1024)}
            )
        content = upload.read()
        try:
            image = open_xray(content)
        except RefusedImage as exc:
            raise ValidationError(exc.message, code=exc.code) from exc
        except InvalidImage as exc:
            raise ValidationError(self.error_messages["invalid"], code="invalid_image") from exc
        return content, image, display_name(upload.name)


class UploadForm(forms.Form):
    """An X-ray for an existing patient, or for a patient created in the same step."""

    patient = forms.ModelChoiceField(
        queryset=Patient.objects.all(), required=False, empty_label="— New patient (fill in below) —"
    )
    new_mrn = forms.CharField(label="Medical record number", max_length=64, required=False)
    new_name = forms.CharField(label="Name", max_length=200, required=False)
    new_sex = forms.ChoiceField(label="Sex", choices=PatientForm.base_fields["sex"].choices, required=False, initial="U")
    new_date_of_birth = forms.DateField(label="Date of birth", required=False, widget=DateInput())
    image = XRayFileField(
        label="X-ray image",
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,application/dicom,.dcm"}),
    )
    view_position = forms.ChoiceField(
        choices=[("", "Unknown")] + list(ViewPosition.choices), required=False
    )
    clinical_note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    score_anyway = forms.BooleanField(
        label="This is a frontal chest X-ray: score it anyway",
        help_text="Choose the file again; the override is recorded in the audit trail.",
        required=False,
    )

    # Set when the input guard refused the image: the page then offers ``score_anyway``.
    offer_override = False

    def refuse_as_not_chest_xray(self):
        """The input guard found the image unlike a frontal chest X-ray: refuse it, offer the override."""
        self.add_error("image", ValidationError(REFUSAL_MESSAGE, code="not_chest_xray"))
        self.offer_override = True

    def clean(self):
        cleaned = super().clean()
        header = dicom_records.header_of(cleaned["image"][1]) if cleaned.get("image") else None
        if header is not None:
            self._check_dicom_header(cleaned, header)
            if self.errors:
                return cleaned
        if cleaned.get("patient"):
            return cleaned
        new_patient = PatientForm(
            data={
                "mrn": cleaned.get("new_mrn", ""),
                "name": cleaned.get("new_name", ""),
                "sex": cleaned.get("new_sex") or "U",
                "date_of_birth": cleaned.get("new_date_of_birth"),
                "notes": self._header_notes,
            }
        )
        if not (cleaned.get("new_mrn") or cleaned.get("new_name")):
            raise ValidationError("Choose a patient, or enter a new patient's record number and name.", code="no_patient")
        if not new_patient.is_valid():
            for field, errors in new_patient.errors.items():
                for error in errors:
                    self.add_error(f"new_{field}" if field != "__all__" else None, error)
            return cleaned
        cleaned["new_patient"] = new_patient.instance
        return cleaned

    def _check_dicom_header(self, cleaned, header):
        """Refuse a stored SOP Instance UID or a header naming another patient; with no patient
        chosen, take the one the header names, or fill the new patient's blank fields from it."""
        duplicate = dicom_records.duplicate_message(header)
        if duplicate:
            self.add_error("image", ValidationError(duplicate, code="duplicate_sop_instance"))
            return
        chosen = cleaned.get("patient")
        if chosen is None and not (cleaned.get("new_mrn") or cleaned.get("new_name")):
            chosen = dicom_records.existing_patient(header)
            cleaned["patient"] = chosen
        if chosen is not None:
            wrong = dicom_records.wrong_patient_message(header, chosen)
            if wrong:
                self.add_error("patient", ValidationError(wrong, code="wrong_patient"))
            return
        typed = Patient(mrn=(cleaned.get("new_mrn") or "").strip().upper())
        wrong = dicom_records.wrong_patient_message(header, typed)
        if wrong:
            self.add_error("new_mrn", ValidationError(wrong, code="wrong_patient"))
            return
        fields = dicom_records.new_patient_fields(header)
        for name in ("mrn", "name", "date_of_birth"):
            if not cleaned.get(f"new_{name}"):
                cleaned[f"new_{name}"] = fields[name]
        if cleaned.get("new_sex") in ("", "U", None):
            cleaned["new_sex"] = fields["sex"]
        self._header_notes = fields["notes"]

    _header_notes = ""

    def chosen_patient(self):
        """The patient to attach the X-ray to: an existing row or an unsaved new one."""
        return self.cleaned_data.get("patient") or self.cleaned_data["new_patient"]

    def chosen_view_position(self):
        """The view chosen on the form, else the DICOM header's ViewPosition (PA/AP), else unknown."""
        header = dicom_records.header_of(self.cleaned_data["image"][1])
        return self.cleaned_data["view_position"] or (header.view_position if header else "")


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
