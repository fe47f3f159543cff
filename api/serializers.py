"""What the API answers with. Input is validated by the pages' forms (see errors.py), so these
serializers only describe and render; their writable fields document the forms' fields."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from diagnosis.readings.models import UNREAD, ReadingStatus
from diagnosis.records.models import Patient, Prediction, XRay
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


class FindingSerializer(serializers.ModelSerializer):
    display_name = serializers.CharField()
    threshold = serializers.FloatField()
    reliable = serializers.BooleanField(help_text="Only reliable findings are ever flagged.")
    reliability = ReliabilitySerializer()
    operating_point = OperatingPointSerializer()

    class Meta:
        model = Prediction
        fields = [
            "finding", "display_name", "probability", "threshold", "flagged", "reliable", "reliability", "operating_point"
        ]


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
    """An X-ray in a list: its flagged findings (strongest first) and reading state."""

    flagged = serializers.SerializerMethodField()
    reading_state = serializers.ChoiceField(choices=READING_STATES)

    class Meta:
        model = XRay
        fields = ["id", "patient", "status", "uploaded_at", "uploaded_by", "view_position", "flagged", "reading_state", "links"]

    def get_flagged(self, xray) -> list[str]:
        return [prediction.finding for prediction in xray.flagged_predictions]


class XRaySerializer(_XRayBase):
    """An X-ray with its 14 findings (empty until it is scored) and the model version that scored it."""

    low_resolution = serializers.BooleanField(source="is_low_resolution")
    reading_state = serializers.ChoiceField(choices=READING_STATES)
    model_version = serializers.SerializerMethodField()
    findings = serializers.SerializerMethodField()

    class Meta:
        model = XRay
        fields = [
            "id", "patient", "status", "original_name", "width", "height", "low_resolution", "view_position",
            "clinical_note", "guard_overridden", "uploaded_at", "uploaded_by", "study_date", "accession_number",
            "study_instance_uid", "sop_instance_uid", "reading_state", "model_version", "findings", "links",
        ]

    @extend_schema_field(ModelVersionSerializer(allow_null=True))
    def get_model_version(self, xray):
        version = next((p.model_version for p in self._predictions(xray)), None)
        return {"id": version.pk, "name": version.name} if version else None

    @extend_schema_field(FindingSerializer(many=True))
    def get_findings(self, xray):
        """In the one order of FINDINGS, so that clients can rely on it."""
        ordered = sorted(self._predictions(xray), key=lambda p: FINDINGS.index(p.finding))
        return FindingSerializer(ordered, many=True).data

    @staticmethod
    def _predictions(xray):
        if not hasattr(xray, "_api_predictions"):
            xray._api_predictions = list(xray.predictions.select_related("model_version"))
        return xray._api_predictions


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
    """Documents the token request: a name, and the password unless signed in (session)."""

    name = serializers.CharField(max_length=100)
    username = serializers.CharField(required=False)
    password = serializers.CharField(required=False, style={"input_type": "password"})

