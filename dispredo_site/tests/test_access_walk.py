"""Issue 26: the access walk. Every route of the URL conf (the site's, the pages', the API's and the
admin's, read from ``get_resolver()``) is fetched with ids that exist and ids that do not, by
anonymous, non-staff and inactive users, with their API tokens and with an expired staff token: none
may answer 500, and none may hold the patient's name, record number or the X-ray's file names. Staff
and a superuser walk it too, and must see no 500 either (they do see the patient).

A route added later is walked without anyone listing it. One the walk cannot fill in (an id of a
model it cannot tell, a regular expression it has no example for) fails the test, naming the route:
teach the walk (SEGMENT_MODELS, NAMED_GROUPS, REGEX_EXAMPLES) and give it a row to point at.
"""

import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern
from django.utils import timezone

from api.models import ApiToken
from diagnosis.readings.models import Reading
from diagnosis.records.models import AuditEvent, Patient, XRay
from dispredo_site.testing.factories import make_xray

NAME, MRN, FILE_NAME = "Zebedee Quinton-Fairweather", "ZQF-778121", "zebedee_quinton_chest.png"
# The literal path segment before an id names the model the id is of ("xrays/<int:pk>/...").
SEGMENT_MODELS = {"patients": "diagnosis.Patient", "xrays": "diagnosis.XRay", "models": "diagnosis.ModelVersion",
                  "tokens": "api.ApiToken"}
# Values for the named groups of regular-expression routes.
NAMED_GROUPS = {"app_label": "diagnosis", "url": "no-such-page/"}
# A path for regular expressions that have no named group to fill.
REGEX_EXAMPLES = {r"^(?:[\s\S]*/)?$": "no-such-thing/"}
ADMIN_MODEL = re.compile(r"^admin/(\w+)/(\w+)/")
PLACEHOLDER = re.compile(r"<(?:(\w+):)?(\w+)>")
NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^()]*\)")
MISSING_ID = 987654321
ALLOWED_TO_SEE = {"staff", "superuser", "staff token"}
CLEAN_WALKERS = ["anonymous", "non-staff", "inactive", "non-staff token", "inactive token", "expired staff token"]


class CannotFill(Exception):
    """A route the walk cannot make a path for."""


def routes(resolver=None, pieces=()):
    """(route text, [pattern piece, ...]) of every URL pattern, included ones through their prefixes."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        here = (*pieces, entry.pattern)
        if isinstance(entry, URLResolver):
            yield from routes(entry, here)
        else:
            # As Django joins them (ResolverMatch.route): an included regex loses its "^".
            yield "".join(str(piece) if not n else str(piece).removeprefix("^") for n, piece in enumerate(here)), here


def model_for(path_so_far, name):
    admin = ADMIN_MODEL.match(path_so_far)
    if admin:
        return apps.get_model(*admin.groups())
    if path_so_far.startswith("admin/r/"):  # the admin's "view on site": a content type, then an id of it
        return Patient
    segments = [segment for segment in path_so_far.split("/") if segment]
    if segments and segments[-1] in SEGMENT_MODELS:
        return apps.get_model(SEGMENT_MODELS[segments[-1]])
    raise CannotFill(f"no model for <{name}> after {path_so_far!r} (add its segment to SEGMENT_MODELS)")


def existing_id(model, route):
    pk = model.objects.order_by("pk").values_list("pk", flat=True).first()
    if pk is None:
        raise CannotFill(f"no {model._meta.label} row to point {route} at (add one to the walk's clinic)")
    return pk


def fill(route, pieces, exists):
    """The path of ``route`` with ids that exist (``exists``) or do not."""
    path = ""
    for piece in pieces:
        text = str(piece)
        if isinstance(piece, RoutePattern):  # path(); else re_path()
            def value(match):
                name = match.group(2)
                if name == "content_type_id":
                    return str(ContentType.objects.get_for_model(Patient).pk)
                model = model_for(path + text[: match.start()], name)
                return str(existing_id(model, route) if exists else MISSING_ID)

            path += PLACEHOLDER.sub(value, text)
        else:
            if text in REGEX_EXAMPLES:
                path += REGEX_EXAMPLES[text]
                continue
            unknown = [name for name in NAMED_GROUP.findall(text) if name not in NAMED_GROUPS]
            if unknown:
                raise CannotFill(f"no value for the group {unknown[0]!r} (add it to NAMED_GROUPS)")
            literal = NAMED_GROUP.sub(lambda match: NAMED_GROUPS[match.group(1)], text)
            literal = re.sub(r"^\^|(\$|\\Z)$", "", literal)
            if re.search(r"[()\[\]*+?|\\^$]", literal):
                raise CannotFill("a regular expression with no example (add one to REGEX_EXAMPLES)")
            path += literal
    return "/" + path


def paths_of(route, pieces):
    """The paths the walk fetches for ``route``: with an existing id and a missing one, if it takes ids."""
    takes_ids = any(PLACEHOLDER.search(str(piece)) for piece in pieces if isinstance(piece, RoutePattern))
    paths = [fill(route, pieces, exists=True)]
    if takes_ids:
        paths.append(fill(route, pieces, exists=False))
    for path in paths:
        if resolve(path).route != route:
            raise CannotFill(f"{path} resolves to {resolve(path).route!r}, not to it")
    return paths


@pytest.fixture(autouse=True)
def _quick_password_hasher(settings):
    """The clinic's users are made with passwords: a quick hasher keeps the walk fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def clinic(db, tiny_model, django_user_model, reader):
    """A small clinic: a patient with a scored, read X-ray, its audit trail, every kind of user with a
    token, a failed and a successful sign-in."""
    staff = django_user_model.objects.create_user("nurse", password="correct horse battery", is_staff=True)
    superuser = django_user_model.objects.create_superuser("boss", password="correct horse battery")
    visitor = django_user_model.objects.create_user("visitor", password="correct horse battery")
    inactive = django_user_model.objects.create_user("former", password="correct horse battery", is_staff=True,
                                                     is_active=False)
    patient = Patient.objects.create(mrn=MRN, name=NAME, sex="F", created_by=staff)
    xray = make_xray(patient, version=tiny_model, flagged={"Edema"})
    XRay.objects.filter(pk=xray.pk).update(original_name=FILE_NAME)
    Reading.objects.create(xray=xray, impression="Small effusion.", created_by=reader)
    AuditEvent.objects.create(user=staff, username="nurse", action="view", patient=patient, patient_mrn=MRN,
                              object_type="xray", object_id=xray.pk)
    for model in (AccessAttempt, AccessFailureLog, AccessLog):
        extra = {"get_data": "", "post_data": "", "failures_since_start": 1} if model is AccessAttempt else {}
        model.objects.create(username="nurse", ip_address="10.0.0.1", user_agent="walk", http_accept="*/*",
                             path_info="/accounts/login/", **extra)
    assert Group.objects.exists()
    keys = {user: ApiToken.issue(user, "walk")[1] for user in (staff, visitor, inactive)}
    expired = ApiToken.issue(staff, "expired")
    ApiToken.objects.filter(pk=expired[0].pk).update(expires_at=timezone.now() - timedelta(days=1))
    stored_name = XRay.objects.get(pk=xray.pk).image.name.rsplit("/", 1)[-1]
    return {
        "users": {"staff": staff, "superuser": superuser, "non-staff": visitor, "inactive": inactive},
        "keys": {"staff token": keys[staff], "non-staff token": keys[visitor], "inactive token": keys[inactive],
                 "expired staff token": expired[1]},
        "forbidden": ["Zebedee", "Quinton", "Fairweather", MRN, FILE_NAME, stored_name],
    }


def walker(clinic, who):
    if who in clinic["keys"]:
        return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {clinic['keys'][who]}")
    client = Client(raise_request_exception=False)
    if who != "anonymous":
        client.force_login(clinic["users"][who])
    return client


def body_and_headers(response):
    body = b"".join(response.streaming_content) if response.streaming else response.content
    headers = "\n".join(f"{name}: {value}" for name, value in response.items())
    return (body.decode("utf-8", errors="replace") + "\n" + headers).lower()


def walk(client):
    """[(path, response)] for every path of every route."""
    unfillable = []
    answers = []
    for route, pieces in routes():
        try:
            paths = paths_of(route, pieces)
        except CannotFill as reason:
            unfillable.append(f"{route}: {reason}")
            continue
        answers += [(path, client.get(path)) for path in paths]
    assert not unfillable, "The walk cannot fill in these routes:\n" + "\n".join(unfillable)
    return answers


@pytest.mark.django_db
@pytest.mark.parametrize("who", CLEAN_WALKERS)
def test_no_route_answers_500_or_holds_patient_data_for_those_who_may_not_see_it(clinic, who):
    answers = walk(walker(clinic, who))

    assert len(answers) > 150
    errors = [f"{path} {response.status_code}" for path, response in answers if response.status_code >= 500]
    assert not errors, errors
    leaks = [
        f"{path} ({response.status_code}) holds {word!r}"
        for path, response in answers
        for word in clinic["forbidden"]
        if word.lower() in body_and_headers(response)
    ]
    assert not leaks, leaks


@pytest.mark.django_db
@pytest.mark.parametrize("who", sorted(ALLOWED_TO_SEE))
def test_no_route_answers_500_to_staff(clinic, who):
    answers = walk(walker(clinic, who))

    errors = [f"{path} {response.status_code}" for path, response in answers if response.status_code >= 500]
    assert not errors, errors
    # The walk reaches the patient's data: those who may see it do.
    seen = " ".join(body_and_headers(response) for _, response in answers)
    assert all(word.lower() in seen for word in ("Zebedee", MRN, FILE_NAME)), who


def test_a_route_the_walk_cannot_fill_in_fails_naming_it():
    from django.urls import path as route_of

    pattern = route_of("wards/<int:pk>/", lambda request, pk: None).pattern
    with pytest.raises(CannotFill, match=r"no model for <pk> after 'wards/' \(add its segment to SEGMENT_MODELS\)"):
        fill("wards/<int:pk>/", (pattern,), exists=True)
    assert isinstance(pattern, RoutePattern)
