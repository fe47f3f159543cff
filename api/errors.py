"""The pages' forms validate API input; these turn their errors into the API's answers: 400 for input
the schema does not allow or a rule refuses, 409 when the input only clashes with what is stored."""

from collections.abc import Mapping

from django.forms.forms import NON_FIELD_ERRORS
from django.http import QueryDict
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, ErrorDetail, NotFound, ValidationError
from rest_framework.settings import api_settings
from rest_framework.views import APIView

NOT_AN_OBJECT_MESSAGE = "Send the fields as a JSON object or as form data."
NOT_A_SINGLE_VALUE_MESSAGE = "Send a single value (text, a number or true/false), not a list or an object."


class Conflict(ValidationError):
    """409: well-formed input that clashes with a stored row (a record number already registered)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def form_error(form, extra=None):
    """A 400 with the bound ``form``'s messages (and codes) by field, as the page shows them;
    ``extra`` adds entries of its own. A 409 when every message is a clash with a stored row."""
    detail, codes = {}, set()
    for field, errors in form.errors.as_data().items():
        key = api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field
        detail[key] = [ErrorDetail(message, code=error.code) for error in errors for message in error.messages]
        codes.update(error.code for error in errors)
    kind = Conflict if codes == {"unique"} and not extra else ValidationError
    return kind({**detail, **(extra or {})})


class NotSignedIn(APIException):
    """401 with a message of its own (wrong user name or password)."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "not_authenticated"


def form_data(request, fields):
    """The request's ``fields`` (JSON object, form or multipart) for binding a form; any other keys
    are left out, as a form leaves out what it has no field for.

    A form gets text from a page; a JSON number or true/false is given to it as that text, and a
    list or object, which no field takes, is refused (a date field would fail on it, a 500)."""
    data = request.data
    if not isinstance(data, Mapping):
        raise ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [NOT_AN_OBJECT_MESSAGE]})
    if isinstance(data, QueryDict):  # form or multipart: text already
        return data
    data = {name: value for name, value in data.items() if name in fields}
    nested = {name: [NOT_A_SINGLE_VALUE_MESSAGE] for name, value in data.items() if isinstance(value, (list, dict))}
    if nested:
        raise ValidationError(nested)
    return {name: value if value is None or isinstance(value, str) else str(value) for name, value in data.items()}


@extend_schema(exclude=True)
class Unknown(APIView):
    """Any other URL under /api/ ending in a slash: a JSON 404, not the site's HTML page."""

    def get(self, request, *args, **kwargs):
        raise NotFound()

    post = put = patch = delete = get
