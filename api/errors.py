"""The pages' forms validate API input; these turn their errors into the API's 400 answers."""

import json
from collections.abc import Mapping

from django.forms.forms import NON_FIELD_ERRORS
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ErrorDetail, NotFound, ValidationError
from rest_framework.settings import api_settings
from rest_framework.views import APIView

NOT_AN_OBJECT_MESSAGE = "Send the fields as a JSON object or as form data."


def form_error(form, extra=None):
    """A 400 with the bound ``form``'s messages (and codes) by field, as the page shows them;
    ``extra`` adds entries of its own."""
    detail = {}
    for field, errors in form.errors.as_data().items():
        key = api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field
        detail[key] = [ErrorDetail(message, code=error.code) for error in errors for message in error.messages]
    return ValidationError({**detail, **(extra or {})})


def form_data(request):
    """The request's fields (JSON object, form or multipart) for binding a form."""
    if not isinstance(request.data, Mapping):
        raise ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [NOT_AN_OBJECT_MESSAGE]})
    if hasattr(request.data, "getlist"):  # form or multipart: strings and files already
        return request.data
    # JSON: the forms expect text, as a browser sends. Any other value is read as its JSON text
    # (a number as its digits, a list as "[...]", which the field then refuses), and null as an
    # empty field, so the form's own validation answers, never a 500.
    return {
        name: "" if value is None else value if isinstance(value, str) else json.dumps(value)
        for name, value in request.data.items()
    }


@extend_schema(exclude=True)
class Unknown(APIView):
    """Any other URL under /api/ ending in a slash: a JSON 404, not the site's HTML page."""

    def get(self, request, *args, **kwargs):
        raise NotFound()

    post = put = patch = delete = get
