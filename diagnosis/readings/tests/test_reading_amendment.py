"""Amendments: a change after sign-off is a new signed version with its reason; the old one is kept."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from diagnosis.readings import rules as readings
from diagnosis.readings.models import Reading
from diagnosis.readings.rules import ReadingError
from diagnosis.records.models import AuditEvent
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray
from dispredo_site.testing.helpers import reading_data

ALL_ABSENT = {name: "absent" for name in FINDINGS}


def amend_url(xray):
    return reverse("diagnosis:reading_amend", args=[xray.pk])


def reading_trail():
    return list(AuditEvent.objects.filter(object_type="reading").order_by("pk").values_list("username", "action", "detail"))


@pytest.fixture
def signed(reader, patient):
    """An X-ray whose reading (all absent, "Normal.") ``reader`` signed off."""
    xray = make_xray(patient)
    readings.sign_off(xray, reader, ALL_ABSENT, "Normal.")
    return xray


@pytest.fixture
def second_reader(reader):
    user = get_user_model().objects.create_user("second", password="correct horse battery", is_staff=True)
    user.groups.add(Group.objects.get(name="Readers"))
    client = Client()
    client.force_login(user)
    return user, client


@pytest.mark.django_db
def test_an_amendment_is_a_new_version_and_keeps_the_signed_one(signed, reader, second_reader):
    amender, client = second_reader
    original = Reading.objects.get()
    kept = (original.marks, original.impression, original.signed_by, original.signed_at, original.updated_at)
    data = reading_data(marks={"Effusion": "present"}, impression="Small effusion.", reason="Seen on the lateral view.")
    response = client.post(amend_url(signed), data)
    assert response.status_code == 302 and response["Location"] == signed.get_absolute_url()
    first, second = Reading.objects.order_by("version")
    assert (first.marks, first.impression, first.signed_by, first.signed_at, first.updated_at) == kept
    assert (first.version, first.status, first.amendment_reason) == (1, "signed", "")
    assert (second.version, second.status, second.signed_by, second.created_by) == (2, "signed", amender, amender)
    assert second.marks == ALL_ABSENT | {"Effusion": "present"} and second.impression == "Small effusion."
    assert second.amendment_reason == "Seen on the lateral view." and second.signed_at >= first.signed_at
    assert readings.current_reading(signed) == second
    assert reading_trail() == [
        ("reader", "create", "signed off"),
        ("second", "create", "amended (version 2): Seen on the lateral view."),
    ]


@pytest.mark.django_db
def test_the_page_shows_the_amendment_and_the_earlier_versions_with_their_reasons(signed, reader, reader_client):
    readings.amend(signed, reader, ALL_ABSENT | {"Mass": "present"}, "Mass.", "Compared with the old film.")
    readings.amend(signed, reader, ALL_ABSENT | {"Nodule": "present"}, "A nodule, not a mass.", "Second opinion.")
    response = reader_client.get(signed.get_absolute_url())
    html = response.content.decode()
    assert [r.version for r in response.context["earlier_readings"]] == [2, 1]
    assert "(version 3, an amendment)" in html
    assert "<strong>Reason for the amendment:</strong> Second opinion." in html
    assert "Version 2, signed off by reader on" in html and "amended because: Compared with the old film." in html
    assert "Present: Mass. Impression: Mass." in html and "Present: none. Impression: Normal." in html
    # The amendment form starts from the current version, not from the model.
    assert response.context["amendment_form"].initial == ALL_ABSENT | {"Nodule": "present", "impression": "A nodule, not a mass."}


@pytest.mark.django_db
def test_an_amendment_needs_a_reason_and_stores_nothing_without(signed, reader_client):
    response = reader_client.post(amend_url(signed), reading_data(marks={"Mass": "present"}, reason="   "))
    assert response.status_code == 200
    assert response.context["amendment_form"].errors == {"reason": ["Give the reason for the amendment."]}
    assert 'id="amend" open' in response.content.decode()
    assert Reading.objects.count() == 1 and len(reading_trail()) == 1


@pytest.mark.django_db
def test_an_amendment_marks_every_finding(signed, reader_client):
    response = reader_client.post(amend_url(signed), reading_data(marks={"Atelectasis": None}, reason="Typo."))
    assert response.status_code == 200
    assert response.context["amendment_form"].non_field_errors() == [
        "Mark every finding as present, absent or not assessable before signing off. Not marked: Atelectasis."
    ]
    assert Reading.objects.count() == 1


@pytest.mark.django_db
def test_an_amendment_that_changes_nothing_is_refused(signed, reader_client):
    response = reader_client.post(amend_url(signed), reading_data(impression="Normal.", reason="Just checking."))
    assert response.status_code == 200
    assert response.context["amendment_form"].non_field_errors() == [
        "The amendment changes nothing: change a mark or the impression."
    ]
    assert Reading.objects.count() == 1


@pytest.mark.django_db
def test_only_a_signed_off_reading_can_be_amended(reader, reader_client, patient):
    xray = make_xray(patient)
    response = reader_client.post(amend_url(xray), reading_data(reason="Why not."))
    assert response.status_code == 200
    assert "Only a signed-off reading can be amended; sign this one off instead." in response.content.decode()
    readings.save_draft(xray, reader, {"Mass": "present"}, "")
    with pytest.raises(ReadingError) as refused:
        readings.amend(xray, reader, ALL_ABSENT, "", "Why not.")
    assert refused.value.code == "not_signed"
    assert list(Reading.objects.values_list("version", "status")) == [(1, "draft")]


@pytest.mark.django_db
def test_it_refuses_an_amendment_by_staff_without_the_permission(signed, staff, staff_client):
    response = staff_client.post(amend_url(signed), reading_data(marks={"Mass": "present"}, reason="I think so."))
    assert response.status_code == 403
    assert "Only readers can amend a signed-off reading." in response.content.decode()
    with pytest.raises(PermissionDenied, match="^Only readers can amend a signed-off reading.$"):
        readings.amend(signed, staff, ALL_ABSENT | {"Mass": "present"}, "", "I think so.")
    assert Reading.objects.count() == 1 and len(reading_trail()) == 1
