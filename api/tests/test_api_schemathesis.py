"""schemathesis runs the OpenAPI schema against the live app: generated valid and invalid requests to
every operation, answered with no 5xx and as the schema says (status, content type, body, headers),
and refused without the token.

Bounded: a few examples per operation, no coverage or stateful phases. Deselect with
``-m "not schemathesis"``."""

import json
import os

import pytest
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from api.models import ApiToken

# The same examples on every run, so that CI is repeatable; DISPREDO_SCHEMATHESIS_EXAMPLES=N with
# DISPREDO_SCHEMATHESIS_RANDOM=1 explores further by hand.
EXAMPLES_PER_OPERATION = int(os.environ.get("DISPREDO_SCHEMATHESIS_EXAMPLES", "25"))
DERANDOMIZE = os.environ.get("DISPREDO_SCHEMATHESIS_RANDOM", "") != "1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,  # the same request without the token must be refused
    positive_data_acceptance,  # what the schema allows is accepted
    negative_data_rejection,  # what it does not allow is refused
    missing_required_header,
    unsupported_method,
]
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all"},  # valid and invalid input
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "operations": [
            {
                # An upload's file is judged by its content (a chest X-ray image, not stored already,
                # which the input guard accepts), and its patient may come from a DICOM header: rules
                # no schema states, so a schema-valid upload may still be refused with 400 and reasons.
                "include-operation-id": "xrays_create",
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403", "429"]}},
            }
        ],
    }
)


@pytest.fixture
def run_key(transactional_db, staff, tiny_model, patient, sample_images, settings):
    """A staff token, and a patient with a scored X-ray for the generated ids to find."""
    settings.DISPREDO_API_REQUEST_RATE = settings.DISPREDO_API_UPLOAD_RATE = "100000/min"
    settings.DISPREDO_API_SIGN_IN_RATE = "100000/min"
    _, key = ApiToken.issue(staff, "schemathesis")
    seed = APIClient()
    seed.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    image = SimpleUploadedFile("a.png", sample_images["px_64"].read_bytes())
    assert seed.post(reverse("api:xray-list"), {"patient": patient.pk, "image": image}, format="multipart").status_code == 201
    return key


def generated_schema():
    """The schema /api/schema/ serves (a test below checks that), generated here for collection."""
    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


# Revoking tokens would revoke the run's own (tested in test_api_tokens).
schema = schemathesis.openapi.from_dict(generated_schema(), config=CONFIG).exclude(operation_id="tokens_destroy")


def test_the_schema_tested_is_the_one_served(api):
    assert json.loads(api.get(reverse("api:schema")).content) == generated_schema()


@pytest.mark.schemathesis
@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=DERANDOMIZE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_the_live_api_keeps_to_its_schema(case, live_server, run_key):
    case.call_and_validate(
        base_url=live_server.url, headers={"Authorization": f"Bearer {run_key}"}, checks=CHECKS, timeout=30
    )
