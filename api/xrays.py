"""X-rays: upload (the upload page's code path), the worklist's list and filters, one X-ray with
its result (findings, flags, caveats: ``diagnosis.records.results``, as the pages show it), its
image (the image view itself) and its FHIR report."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import APIException
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from diagnosis.intake.pipeline import receive
from diagnosis.interop import fhir
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.pages import views
from diagnosis.pages.forms import UploadForm, WorklistFilterForm
from diagnosis.pages.worklists import filtered_xrays
from diagnosis.readings.rules import reading_state
from diagnosis.records import audit
from diagnosis.records.access import get_xray_for_user
from diagnosis.records.models import AuditAction, Source, XRay
from diagnosis.records.results import results_of
from dispredo_core.findings import FINDINGS

from .errors import form_data, form_error
from .schema import form_body, form_parameters
from .serializers import ErrorSerializer, XRaySerializer, XRaySummarySerializer
from .throttles import UploadThrottle

OVERRIDE_HINT = (
    "If it is a frontal chest X-ray, send the file again with score_anyway=true: "
    "it is then scored, and the override is recorded in the audit trail."
)
NOT_SCORED_MESSAGE = (
    "This X-ray has no model output to report (pending, being scored, failed or incomplete scoring); "
    "the detail says why."
)


class NotScored(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = NOT_SCORED_MESSAGE
    default_code = "not_scored"


def _serialized(request, xray):
    xray.reading_state = reading_state(xray)
    return XRaySerializer(xray, context={"request": request}).data


@extend_schema_view(
    get=extend_schema(
        summary="The worklist: X-rays, newest first or by triage",
        # Any finding is documented; only the active model's reliable findings are accepted (400 otherwise).
        parameters=form_parameters(WorklistFilterForm(), enums={"finding": ["", *FINDINGS]}),
    ),
)
class XRayList(generics.ListAPIView):
    serializer_class = XRaySummarySerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return XRay.objects.none()
        form = WorklistFilterForm(self.request.query_params, version=ModelVersion.active())
        if not form.is_valid():
            raise form_error(form)
        return filtered_xrays(form)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        # The page's results at once: one query for their predictions, one for the model versions.
        context = {**self.get_serializer_context(), "results": {r.xray_id: r for r in results_of(page)}}
        response = self.get_paginated_response(self.get_serializer_class()(page, many=True, context=context).data)
        used = ", ".join(f"{name}={value}" for name, value in request.query_params.items() if name != "page" and value)
        audit.record_list_view(
            request, "worklist",
            f"API; {'filters ' + used if used else 'no filters'}; page {request.query_params.get('page', 1)}",
        )
        return response

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.request.method == "POST":
            throttles.append(UploadThrottle())
        return throttles

    @extend_schema(
        summary="Upload an X-ray (PNG, JPEG or DICOM) and score it",
        description="The upload page's fields and checks. Give `patient` (an id), or a new patient's "
        "`new_mrn` and `new_name` (a DICOM header can supply them). Answers 201 with the 14 findings; "
        "`status` is pending when no model is installed and failed when the model could not score it.",
        request={"multipart/form-data": form_body("UploadRequest", UploadForm(), required=["image"])},
        responses={201: XRaySerializer},
    )
    def post(self, request):
        form = UploadForm(form_data(request, UploadForm.base_fields), request.FILES)
        outcome = receive(form.incoming(request.user, Source.API))
        if not outcome.stored:
            form.refuse(outcome)
            raise form_error(form, {"score_anyway": [OVERRIDE_HINT]} if outcome.offer_override else None)
        data = _serialized(request, outcome.xray)
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": data["links"]["api"]})


class XRayDetail(APIView):
    @extend_schema(summary="An X-ray with its findings (recorded in the audit trail as a view)", responses=XRaySerializer)
    def get(self, request, pk):
        xray = get_xray_for_user(request, pk)
        audit.record(request, AuditAction.VIEW, xray)
        return Response(_serialized(request, xray))


class _OwnContentType(APIView):
    # Answers in its own content type; errors are JSON whatever the Accept header asks for.
    def perform_content_negotiation(self, request, force=False):
        return JSONRenderer(), JSONRenderer.media_type


class XRayImage(_OwnContentType):
    @extend_schema(
        summary="The X-ray's image (DICOM rendered to PNG)",
        responses={(200, "image/png"): OpenApiTypes.BINARY, (200, "image/jpeg"): OpenApiTypes.BINARY},
    )
    def get(self, request, pk):
        # The page's image view: its access check, audit and headers. DRF has set the user on the request.
        return views.xray_image(request._request, pk=pk)


class XRayFhir(_OwnContentType):
    @extend_schema(
        summary="The X-ray's findings as a FHIR R4 DiagnosticReport bundle",
        responses={
            (200, "application/fhir+json"): OpenApiTypes.OBJECT,
            409: OpenApiResponse(ErrorSerializer, description=NOT_SCORED_MESSAGE),
        },
    )
    def get(self, request, pk):
        xray = get_xray_for_user(request, pk)
        try:
            bundle = fhir.diagnostic_report_bundle(xray)
        except fhir.FhirUnavailable as exc:
            raise NotScored(str(exc)) from exc
        audit.record(request, AuditAction.VIEW, xray, detail="FHIR report")
        return Response(bundle, content_type="application/fhir+json")
