"""The one validator of a patient's fields, for the patient pages, the API and the intake (a new
patient typed on the upload form or read from a DICOM header)."""

from django import forms
from django.core.exceptions import ValidationError

from diagnosis.records.identifiers import record_number
from diagnosis.records.models import Patient, Sex

TAKEN_MESSAGE = "Patient with this Medical record number already exists."


class DateInput(forms.DateInput):
    input_type = "date"


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["mrn", "name", "sex", "date_of_birth", "notes"]
        widgets = {"date_of_birth": DateInput(), "notes": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sex"].required = False  # left out or blank: unknown

    def clean_sex(self):
        return self.cleaned_data["sex"] or Sex.UNKNOWN

    def clean_mrn(self):
        """As given, without the spaces around it; refused when another patient has it, in any case."""
        mrn = record_number(self.cleaned_data["mrn"])
        if not mrn:
            raise ValidationError(self.fields["mrn"].error_messages["required"], code="required")
        if Patient.objects.with_record_number(mrn).exclude(pk=self.instance.pk).exists():
            raise ValidationError(TAKEN_MESSAGE, code="unique")
        return mrn

    def clean_name(self):
        return " ".join(self.cleaned_data["name"].split())
