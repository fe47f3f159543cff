"""Sign-off: readers only, every finding marked, and the signed reading is locked."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from diagnosis.readings import rules as readings
from diagnosis.readings.models import Reading
from diagnosis.readings.rules import ReadingError
from diagnosis.records.models import AuditEvent
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray
from dispredo_site.testing.helpers import reading_data

NOT_ALL_MARKED = (
    "Mark every finding as present, absent or not assessable before signing off. "
    "Not marked: Pleural thickening, Hernia."
)


def save_url(xray):
    return reverse("diagnosis:reading_save", args=[xray.pk])


def reading_trail():
    return list(AuditEvent.objects.filter(object_type="reading").order_by("pk").values_list("username", "action", "detail"))


@pytest.mark.django_db
def test_it_refuses_sign_off_by_staff_without_the_permission(staff_client, staff, patient):
    xray = make_xray(patient)
    response = staff_client.post(save_url(xray), reading_data(action="sign"))
    assert response.status_code == 403
    assert "Only readers can sign off a reading." in response.content.decode()
    assert not Reading.objects.exists() and reading_trail() == []
    with pytest.raises(PermissionDenied, match="^Only readers can sign off a reading.$"):
        readings.sign_off(xray, staff, {name: "absent" for name in FINDINGS}, "")


@pytest.mark.django_db
def test_a_reader_signs_off_a_reading_with_every_finding_marked(reader_client, reader, patient, tiny_model):
    xray = make_xray(patient, version=tiny_model, flagged={"Effusion"})
    before = timezone.now()
    response = reader_client.post(
        save_url(xray), reading_data(action="sign", marks={"Effusion": "present", "Hernia": "not_assessable"},
                                     impression="Small left effusion.")
    )
    assert response.status_code == 302 and response["Location"] == xray.get_absolute_url()
    reading = Reading.objects.get()
    assert (reading.version, reading.status, reading.signed_by, reading.created_by) == (1, "signed", reader, reader)
    assert before <= reading.signed_at <= timezone.now()
    assert reading.marks == {name: "absent" for name in FINDINGS} | {"Effusion": "present", "Hernia": "not_assessable"}
    # Shown in the findings' order, whatever order the database keeps the keys in (PostgreSQL's
    # jsonb sorts them by length).
    page = reader_client.get(xray.get_absolute_url()).content.decode()
    table = page[page.index('id="reading-marks"') :]
    assert re.findall(r'<tr data-finding="([^"]+)"', table[: table.index("</table>")]) == list(FINDINGS)
    assert reading.impression == "Small left effusion."
    assert reading_trail() == [("reader", "create", "signed off")]
    assert readings.reading_state(xray) == "signed"


@pytest.mark.django_db
def test_signing_off_a_draft_signs_that_draft(staff_client, staff, reader_client, reader, patient):
    xray = make_xray(patient)
    staff_client.post(save_url(xray), {"action": "save", "Effusion": "present"})
    reader_client.post(save_url(xray), reading_data(action="sign", marks={"Effusion": "present"}))
    reading = Reading.objects.get()
    assert (reading.version, reading.status, reading.created_by, reading.signed_by) == (1, "signed", staff, reader)
    assert reading_trail() == [("nurse", "create", "draft saved"), ("reader", "change", "signed off")]


@pytest.mark.django_db
def test_sign_off_needs_every_finding_marked_and_stores_nothing(reader_client, patient):
    xray = make_xray(patient)
    data = reading_data(action="sign", marks={"Pleural_Thickening": None, "Hernia": None}, impression="Clear.")
    response = reader_client.post(save_url(xray), data)
    assert response.status_code == 200
    form = response.context["reading_form"]
    assert form.non_field_errors() == [NOT_ALL_MARKED]
    assert form.errors["Pleural_Thickening"] == ["Not marked."] and form.errors["Hernia"] == ["Not marked."]
    assert set(form.errors) == {"__all__", "Pleural_Thickening", "Hernia"}
    assert NOT_ALL_MARKED in response.content.decode()
    assert not Reading.objects.exists() and reading_trail() == []


@pytest.mark.django_db
def test_a_refused_sign_off_leaves_the_draft_as_it_was(reader_client, reader, patient):
    xray = make_xray(patient)
    draft = readings.save_draft(xray, reader, {"Effusion": "present"}, "First look.")
    response = reader_client.post(save_url(xray), reading_data(action="sign", marks={"Hernia": None}, impression="Changed"))
    assert response.status_code == 200
    draft.refresh_from_db()
    assert (draft.status, draft.marks, draft.impression, draft.signed_at) == ("draft", {"Effusion": "present"}, "First look.", None)
    assert reading_trail() == [("reader", "create", "draft saved")]


@pytest.mark.django_db
def test_a_signed_off_reading_is_locked(staff_client, staff, reader_client, reader, patient):
    xray = make_xray(patient)
    signed = readings.sign_off(xray, reader, {name: "absent" for name in FINDINGS}, "Normal.")
    for client, action in [(staff_client, "save"), (reader_client, "save"), (reader_client, "sign")]:
        response = client.post(save_url(xray), reading_data(action=action, marks={"Mass": "present"}, impression="Mass"))
        assert response.status_code == 200
        assert "This reading is signed off; amend it instead." in response.content.decode()
    assert Reading.objects.get() == signed
    signed.refresh_from_db()
    assert (signed.marks["Mass"], signed.impression, signed.updated_by) == ("absent", "Normal.", reader)
    with pytest.raises(ReadingError) as locked:
        readings.save_draft(xray, staff, {"Mass": "present"}, "")
    assert (locked.value.code, locked.value.message) == ("signed_off", "This reading is signed off; amend it instead.")
    assert reading_trail() == [("reader", "create", "signed off")]


@pytest.mark.django_db
def test_the_signed_reading_is_shown_read_only(staff_client, reader_client, reader, patient):
    xray = make_xray(patient)
    reader_client.post(save_url(xray), reading_data(action="sign", marks={"Effusion": "present"}, impression="Effusion."))
    reading = Reading.objects.get()
    response = staff_client.get(xray.get_absolute_url())
    html = response.content.decode()
    signed_at = timezone.localtime(reading.signed_at).strftime("%Y-%m-%d %H:%M")
    assert f"<strong>Signed off</strong> by reader on {signed_at}." in html
    assert '<tr data-finding="Effusion" class="present"><th scope="row">Effusion</th><td>Present</td></tr>' in html
    assert '<p id="reading-impression">Effusion.</p>' in html
    assert response.context["reading_form"] is None and 'id="reading-form"' not in html
    assert response.context["amendment_form"] is None and 'id="amendment-form"' not in html
    assert "Only readers can amend a signed-off reading." in html
    reader_html = reader_client.get(xray.get_absolute_url()).content.decode()
    assert 'id="amendment-form"' in reader_html and "Only readers can amend" not in reader_html


@pytest.mark.django_db
def test_the_readers_group_from_the_migration_grants_the_permission(staff, patient):
    group = Group.objects.get(name="Readers")
    assert [p.codename for p in group.permissions.all()] == ["sign_off_reading"]
    assert not readings.can_sign_off(staff)
    staff.groups.add(group)
    staff = get_user_model().objects.get(pk=staff.pk)  # permissions are cached per user object
    assert readings.can_sign_off(staff)
    assert readings.can_sign_off(get_user_model().objects.create_superuser("boss", password="correct horse battery"))
    signed = readings.sign_off(make_xray(patient), staff, {name: "absent" for name in FINDINGS}, "")
    assert signed.signed_by == staff
