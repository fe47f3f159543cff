"""A URL conf for tests of what a server error logs: the site's URLs, plus a page and an API view
that fail with an exception whose message holds the patient's name, record number and file name."""

from django.urls import path
from rest_framework.views import APIView

from diagnosis.records.models import XRay
from dispredo_site.urls import urlpatterns as site_urlpatterns


class ChartError(Exception):
    """What the failing views raise."""


def _fail(pk):
    xray = XRay.objects.select_related("patient").get(pk=pk)
    raise ChartError(f"Could not draw {xray.patient.name} ({xray.patient.mrn}) from {xray.original_name}")


def failing_page(request, pk):
    _fail(pk)


class FailingApiView(APIView):
    def get(self, request, pk):
        _fail(pk)


urlpatterns = [
    path("failing/<int:pk>/", failing_page, name="failing-page"),
    path("api/failing/<int:pk>/", FailingApiView.as_view(), name="failing-api"),
    *site_urlpatterns,
]
