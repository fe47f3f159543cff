"""Patients: list and search, create, read and update, validated by the page's ``PatientForm``
and audited as the patient pages audit."""

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from diagnosis.pages.forms import PatientSearchForm
from diagnosis.records.forms import PatientForm
from diagnosis.records import audit
from diagnosis.records.access import get_patient_for_user
from diagnosis.records.models import AuditAction, Patient

from .errors import form_data, form_error

NO_DATE_MESSAGE = "Send null, or leave date_of_birth out, for no date of birth; a date is written YYYY-MM-DD."


def patient_data(request):
    """The request's patient fields for ``PatientForm``: an empty date is refused rather than read
    as none (the schema says a date or null)."""
    data = form_data(request, PatientForm.base_fields)
    if data.get("date_of_birth") == "":
        raise ValidationError({"date_of_birth": [NO_DATE_MESSAGE]})
    return data
from .schema import form_parameters
from .serializers import PatientSerializer


@extend_schema_view(
    get=extend_schema(summary="List or search patients", parameters=form_parameters(PatientSearchForm())),
    post=extend_schema(summary="Register a patient"),
)
class PatientList(generics.ListCreateAPIView):
    serializer_class = PatientSerializer
    parser_classes = [JSONParser]  # JSON only: a form cannot say "no date of birth" (null) apart from ""

    def get_queryset(self):
        """All patients, or those whose record number or name holds ``q`` (the patient list's search)."""
        if getattr(self, "swagger_fake_view", False):
            return Patient.objects.none()
        form = PatientSearchForm(self.request.query_params)
        if not form.is_valid():
            raise form_error(form)
        return Patient.objects.search(form.cleaned_data["q"])

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        search = self.request.query_params.get("q", "").strip()
        audit.record_list_view(
            request, "patientlist",
            f"API; {f'search {search!r}' if search else 'no search'}; page {request.query_params.get('page', 1)}",
        )
        return response

    def create(self, request, *args, **kwargs):
        form = PatientForm(patient_data(request))
        if not form.is_valid():
            raise form_error(form)
        with transaction.atomic():
            patient = form.save(commit=False)
            patient.created_by = request.user
            patient.save()
            audit.record(request, AuditAction.CREATE, patient)
        data = self.get_serializer(patient).data
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["url"]})


@extend_schema_view(
    get=extend_schema(summary="A patient (recorded in the audit trail as a view)"),
    put=extend_schema(summary="Change a patient (all fields)"),
    patch=extend_schema(summary="Change some of a patient's fields"),
)
class PatientDetail(generics.RetrieveUpdateAPIView):
    serializer_class = PatientSerializer
    parser_classes = [JSONParser]
    queryset = Patient.objects.all()  # for the schema's path parameter; get_object() applies the access rule

    def get_object(self):
        return get_patient_for_user(self.request, self.kwargs["pk"])

    def retrieve(self, request, *args, **kwargs):
        patient = self.get_object()
        audit.record(request, AuditAction.VIEW, patient)
        return Response(self.get_serializer(patient).data)

    def update(self, request, *args, partial=False, **kwargs):
        patient = self.get_object()
        data = patient_data(request)
        if partial:  # the fields not sent keep their values
            data = {**PatientForm(instance=patient).initial, **{name: data.get(name) for name in data}}
        form = PatientForm(data, instance=patient)
        if not form.is_valid():
            raise form_error(form)
        with transaction.atomic():
            form.save()
            audit.record(request, AuditAction.CHANGE, patient, detail="changed " + ", ".join(form.changed_data))
        return Response(self.get_serializer(patient).data)
