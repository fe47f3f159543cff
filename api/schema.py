"""OpenAPI helpers: the token scheme, schemas built from the pages' forms, and the error answers
every operation can give (added by a postprocessing hook, so views need not repeat them)."""

from django import forms
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A key from POST /api/tokens/, sent as 'Authorization: Bearer <key>'.",
        }


def _choices(field):
    return [(value, str(label)) for value, label in field.choices if value != ""]


def _parameter_type(field):
    if isinstance(field, (forms.ModelChoiceField, forms.IntegerField)):
        return OpenApiTypes.INT
    if isinstance(field, forms.DateField):
        return OpenApiTypes.DATE
    if isinstance(field, forms.BooleanField):
        return OpenApiTypes.BOOL
    return OpenApiTypes.STR


def form_parameters(form, enums=None):
    """Query parameters for the fields of ``form`` (an instance), as the form validates them (an
    empty value is a choice: no filter); ``enums`` replaces a field's choices (for choices that
    depend on the data)."""
    enums = enums or {}
    parameters = []
    for name, field in form.fields.items():
        choices = enums.get(name) or (
            [value for value, _ in field.choices] if isinstance(field, forms.ChoiceField) else None
        )
        parameters.append(
            OpenApiParameter(
                name,
                _parameter_type(field),
                required=field.required,
                enum=choices if not isinstance(field, forms.ModelChoiceField) else None,
                description=str(field.help_text or field.label or ""),
            )
        )
    return parameters


def _body_field(field, required=False):
    common = {"required": field.required or required, "help_text": str(field.help_text or field.label or "") or None}
    if isinstance(field, forms.FileField):
        return serializers.FileField(**common)
    if isinstance(field, forms.ModelChoiceField):
        return serializers.IntegerField(**common)
    if isinstance(field, forms.ChoiceField):
        return serializers.ChoiceField(choices=_choices(field), allow_blank=not field.required, **common)
    if isinstance(field, forms.BooleanField):
        return serializers.BooleanField(**common)
    if isinstance(field, forms.DateField):
        return serializers.DateField(**common)
    return serializers.CharField(max_length=field.max_length, allow_blank=not field.required, **common)


def form_body(name, form, required=()):
    """A request body schema named ``name`` with the fields of ``form`` (an instance); ``required``
    names fields the API needs although the form leaves their check to others (the intake)."""
    return inline_serializer(
        name, {field_name: _body_field(field, field_name in required) for field_name, field in form.fields.items()}
    )


ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
FIELD_ERRORS = {
    "type": "object",
    "description": "Messages by field, as the page's form gives them; non_field_errors for the form as a whole.",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}
_ANSWERS = {
    "400": ("The input was refused: messages by field, or a detail when the body cannot be parsed", "BadRequest"),
    "401": ("No valid token or session", "Error"),
    "403": ("Not a clinic staff account (or a CSRF failure with a session)", "Error"),
    "404": ("No such object (or page)", "Error"),
    "409": ("The record number is registered to another patient (matched ignoring case)", "FieldErrors"),
    "415": ("Not a media type the operation accepts", "Error"),
    "429": ("Rate limit reached; Retry-After says when to try again", "Error"),
}


def _answers_of(path, operation):
    codes = ["401", "403", "429"]
    parameters = operation.get("parameters", [])
    if "{" in path or any(p["name"] == "page" for p in parameters):
        codes.append("404")
    if "requestBody" in operation:
        codes += ["400", "415"]
        if path.startswith("/api/patients/"):
            codes.append("409")
    elif any(p["in"] == "query" and p["name"] != "page" for p in parameters):
        codes.append("400")
    return codes


# Every text field goes through a Django form, which refuses NUL ("Null characters are not allowed.")
# and strips the spaces around a value, so a required one needs a character that is not a space.
NO_NUL = "^[^\\x00]*$"
NOT_BLANK = "^[^\\x00]*[^\\s\\x00][^\\x00]*$"


def _state_text_rules_in_requests(schemas):
    """Say so in every request body's text fields (drf-spectacular names them *Request)."""
    for name, component in schemas.items():
        if not name.endswith("Request"):
            continue
        for field in component.get("properties", {}).values():
            if field.get("type") == "string" and "format" not in field and "enum" not in field:
                field.setdefault("pattern", NOT_BLANK if field.get("minLength", 0) >= 1 else NO_NUL)


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: document the error answers of every operation, and that
    no text field takes NUL."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    _state_text_rules_in_requests(schemas)
    schemas.setdefault("Error", ERROR)  # ErrorSerializer's component when a view names it
    schemas["FieldErrors"] = FIELD_ERRORS
    schemas["BadRequest"] = {
        "anyOf": [{"$ref": "#/components/schemas/FieldErrors"}, {"$ref": "#/components/schemas/Error"}]
    }
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code in _answers_of(path, operation):
                description, component = _ANSWERS[code]
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
                    },
                )
    return result
