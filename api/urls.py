from django.urls import path, re_path
from drf_spectacular.views import SpectacularJSONAPIView

from . import docs, errors, patients, tokens, xrays

app_name = "api"
urlpatterns = [
    path("tokens/", tokens.TokenList.as_view(), name="token-list"),
    path("tokens/<int:pk>/", tokens.TokenDetail.as_view(), name="token-detail"),
    path("patients/", patients.PatientList.as_view(), name="patient-list"),
    path("patients/<int:pk>/", patients.PatientDetail.as_view(), name="patient-detail"),
    path("xrays/", xrays.XRayList.as_view(), name="xray-list"),
    path("xrays/<int:pk>/", xrays.XRayDetail.as_view(), name="xray-detail"),
    path("xrays/<int:pk>/image/", xrays.XRayImage.as_view(), name="xray-image"),
    path("xrays/<int:pk>/fhir/", xrays.XRayFhir.as_view(), name="xray-fhir"),
    path("schema/", SpectacularJSONAPIView.as_view(), name="schema"),
    path("docs/", docs.docs, name="docs"),
    # Last; paths without the final slash are left to APPEND_SLASH's redirect.
    re_path(r"^(?:[\s\S]*/)?$", errors.Unknown.as_view()),
]
