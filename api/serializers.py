"""What the API answers with. Input is validated by the pages' forms (see errors.py), so these
serializers only describe and render; their writable fields document the forms' fields."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from diagnosis.readings.models import UNREAD, ReadingStatus
from diagnosis.records.models import Patient, Source, XRay
from diagnosis.records.results import CAVEAT_CODES, result_of
from dispredo_core.findings import FINDINGS

from .models import ApiToken

READING_STATES = [UNREAD, *ReadingStatus.values]


def absolute(context, name, *args):
    return context["request"].build_absolute_uri(reverse(name, args=args))


class PatientSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Patient
        fields = ["id", "mrn", "name", "sex", "date_of_birth", "notes", "created_at", "updated_at", "url"]
        read_only_fields = ["created_at", "updated_at"]

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, patient):
        return absolute(self.context, "api:patient-detail", patient.pk)


class PatientSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "mrn", "name"]


class ReliabilitySerializer(serializers.Serializer):
    """The finding's AUROC on patients the model did not train on, with its interval."""

    auroc = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text="Lower end of the interval.")
    high = serializers.FloatField(allow_null=True, help_text="Upper end of the interval.")
    positives = serializers.IntegerField(allow_null=True, help_text="Images with the finding it was measured on.")


class OperatingPointSerializer(serializers.Serializer):
    """Expected sensitivity and specificity at the threshold, each as [estimate, low, high]."""

    sensitivity = serializers.ListField(child=serializers.FloatField(allow_null=True), allow_null=True)
    specificity = serializers.ListField(child=serializers.FloatField(allow_null=True), allow_null=True)


class FindingSerializer(serializers.Serializer):
    """One finding of the X-ray's result (``diagnosis.records.results.FindingResult``)."""

    finding = serializers.ChoiceField(choices=FINDINGS)
    display_name = serializers.CharField()
    probability = serializers.FloatField()
    threshold = serializers.FloatField()
    flagged = serializers.BooleanField(help_text="Only reliable findings are ever flagged.")
    reliable = serializers.BooleanField(help_text="Only reliable findings are ever flagged.")
    reliability = ReliabilitySerializer()
    operating_point = OperatingPointSerializer()


class CaveatSerializer(serializers.Serializer):
    """What a reader must know about the result, or why it has no findings."""

    code = serializers.ChoiceField(
        choices=CAVEAT_CODES,
        help_text="Stable: pending, no_active_model, being_scored, scoring_failed, incomplete (why `findings` "
        "is empty), guard_override, low_resolution, unreliable_findings.",
    )
    message = serializers.CharField(help_text="The sentence the pages show staff.")


class SourceSerializer(serializers.Serializer):
    """The door the X-ray came in by."""

    door = serializers.ChoiceField(
        choices=Source.values, allow_null=True, help_text="null for X-rays stored before the door was recorded."
    )
    calling_ae_title = serializers.CharField(allow_null=True, help_text="The sending DICOM AE title (DICOM only).")
    label = serializers.CharField(help_text='In words, e.g. "DICOM listener (AE MODALITY1)" or "not recorded".')


class ModelVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class XRayLinksSerializer(serializers.Serializer):
    api = serializers.URLField()
    image = serializers.URLField()
    fhir = serializers.URLField()
    page = serializers.URLField(help_text="The X-ray's page in the web application.")


class _XRayBase(serializers.ModelSerializer):
    patient = PatientSummarySerializer()
    uploaded_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Username of the uploader."
    )
    links = serializers.SerializerMethodField()

    @extend_schema_field(XRayLinksSerializer)
    def get_links(self, xray):
        return {
            "api": absolute(self.context, "api:xray-detail", xray.pk),
            "image": absolute(self.context, "api:xray-image", xray.pk),
            "fhir": absolute(self.context, "api:xray-fhir", xray.pk),
            "page": absolute(self.context, "diagnosis:xray_detail", xray.pk),
        }


class XRaySummarySerializer(_XRayBase):
    """An X-ray in a list: its flagged findings (strongest first), its caveats and reading state."""

    flagged = serializers.SerializerMethodField()
    caveats = serializers.SerializerMethodField()
    study_date = serializers.SerializerMethodField()
    study_date_is_upload = serializers.SerializerMethodField()
    source = serializers.SerializerMethodField()
    reading_state = serializers.ChoiceField(choices=READING_STATES)

    class Meta:
        model = XRay
        fields = [
            "id", "patient", "status", "uploaded_at", "uploaded_by", "view_position", "study_date",
            "study_date_is_upload", "source", "flagged", "caveats", "reading_state", "links",
        ]

    def result(self, xray):
        """The X-ray's result: from the view's ``results`` (a page's, computed at once) or its own."""
        results = self.context.setdefault("results", {})
        if xray.pk not in results:
            results[xray.pk] = result_of(xray)
        return results[xray.pk]

    def get_flagged(self, xray) -> list[str]:
        """Empty unless the last scoring succeeded."""
        return [finding.finding for finding in self.result(xray).flagged]

    @extend_schema_field(CaveatSerializer(many=True))
    def get_caveats(self, xray):
        return [{"code": caveat.code, "message": caveat.message} for caveat in self.result(xray).caveats]

    @extend_schema_field(OpenApiTypes.DATE)
    def get_study_date(self, xray):
        """The DICOM study date, else the date of the upload (then study_date_is_upload is true)."""
        return self.result(xray).study_date.isoformat()

    def get_study_date_is_upload(self, xray) -> bool:
        return self.result(xray).study_date_is_upload

    @extend_schema_field(SourceSerializer)
    def get_source(self, xray):
        door = self.result(xray).source
        return {"door": door.code or None, "calling_ae_title": door.calling_ae_title or None, "label": door.label}


class XRaySerializer(XRaySummarySerializer):
    """An X-ray with its 14 findings and the model version that scored it (both empty unless its last
    scoring succeeded: the caveats say why), its flags and its caveats."""

    low_resolution = serializers.BooleanField(source="is_low_resolution")
    model_version = serializers.SerializerMethodField()
    findings = serializers.SerializerMethodField()

    class Meta:
        model = XRay
        fields = [
            "id", "patient", "status", "original_name", "width", "height", "low_resolution", "view_position",
            "clinical_note", "guard_overridden", "uploaded_at", "uploaded_by", "study_date", "study_date_is_upload",
            "accession_number", "study_instance_uid", "sop_instance_uid", "source", "reading_state", "model_version",
            "findings", "flagged", "caveats", "links",
        ]

    @extend_schema_field(ModelVersionSerializer(allow_null=True))
    def get_model_version(self, xray):
        version = self.result(xray).model_version
        return {"id": version.pk, "name": version.name} if version else None

    @extend_schema_field(FindingSerializer(many=True))
    def get_findings(self, xray):
        """In the one order of FINDINGS, so that clients can rely on it."""
        return FindingSerializer(self.result(xray).findings, many=True).data


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class TokenSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True, help_text="Username of the holder.")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "key_start", "user", "created_at", "last_used_at", "expires_at"]
        read_only_fields = ["key_start", "created_at", "last_used_at", "expires_at"]


class NewTokenSerializer(TokenSerializer):
    """A token just created: the only answer that holds its key."""

    key = serializers.CharField(help_text="Send as 'Authorization: Bearer <key>'. Shown once: it is not stored.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "key"]


class TokenRequestSerializer(serializers.Serializer):
    """Documents the token request: a name, and the user name and password (which a request from a
    signed-in browser session may leave out)."""

    name = serializers.CharField(max_length=100)
    username = serializers.CharField(help_text="Not needed from a signed-in session.")
    password = serializers.CharField(style={"input_type": "password"}, help_text="Not needed from a signed-in session.")

