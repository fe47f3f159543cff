"""Drafts of a reading: any staff member saves and changes one; nothing comes from the model."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from diagnosis.readings import rules as readings
from diagnosis.readings.models import Reading
from diagnosis.readings.rules import ReadingError
from diagnosis.records.models import AuditEvent
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray
from dispredo_site.testing.helpers import reading_data

CHECKED_RADIO = re.compile(r'<input type="radio"[^>]*\bchecked\b[^>]*>')


def save_url(xray):
    return reverse("diagnosis:reading_save", args=[xray.pk])


def reading_trail():
    return list(AuditEvent.objects.filter(object_type="reading").order_by("pk").values_list("username", "action", "detail"))


@pytest.mark.django_db
def test_plain_staff_save_a_draft_with_only_some_findings_marked(staff_client, staff, patient, tiny_model):
    xray = make_xray(patient, version=tiny_model)
    data = {"action": "save", "Effusion": "present", "Mass": "not_assessable", "impression": "  Blunted left angle. "}
    response = staff_client.post(save_url(xray), data)
    assert response.status_code == 302 and response["Location"] == xray.get_absolute_url()
    reading = Reading.objects.get()
    assert (reading.xray, reading.version, reading.status) == (xray, 1, "draft")
    assert reading.marks == {"Effusion": "present", "Mass": "not_assessable"}
    assert reading.impression == "Blunted left angle."
    assert (reading.created_by, reading.updated_by, reading.signed_by, reading.signed_at) == (staff, staff, None, None)
    assert reading_trail() == [("nurse", "create", "draft saved")]
    assert readings.reading_state(xray) == "draft"
    page = staff_client.get(xray.get_absolute_url()).content.decode()
    assert "Draft saved." in page and "Saved by nurse on" in page


@pytest.mark.django_db
def test_saving_again_changes_the_same_draft(staff_client, staff, reader_client, reader, patient):
    xray = make_xray(patient)
    staff_client.post(save_url(xray), {"action": "save", "Effusion": "present"})
    reader_client.post(save_url(xray), {"action": "save", "Effusion": "absent", "Edema": "present", "impression": "Edema."})
    reading = Reading.objects.get()
    assert (reading.version, reading.status, reading.marks) == (1, "draft", {"Edema": "present", "Effusion": "absent"})
    assert (reading.created_by, reading.updated_by) == (staff, reader)
    assert reading_trail() == [("nurse", "create", "draft saved"), ("reader", "change", "draft saved")]


@pytest.mark.django_db
def test_nothing_is_checked_on_an_unread_xray_whatever_the_model_flagged(staff_client, patient, tiny_model):
    xray = make_xray(patient, version=tiny_model, flagged={"Effusion", "Mass"})
    response = staff_client.get(xray.get_absolute_url())
    html = response.content.decode()
    assert "2 findings flagged" in html  # the model's flags are on the page...
    assert html.count('type="radio"') == 14 * 3
    assert CHECKED_RADIO.findall(html) == []  # ...and none of them in the reading form
    assert response.context["reading_form"].initial == {}


@pytest.mark.django_db
def test_the_form_shows_the_xrays_own_draft(staff_client, patient, tiny_model):
    xray = make_xray(patient, version=tiny_model, flagged={"Mass"})
    staff_client.post(save_url(xray), {"action": "save", "Effusion": "present", "impression": "Fluid."})
    html = staff_client.get(xray.get_absolute_url()).content.decode()
    assert CHECKED_RADIO.findall(html) == ['<input type="radio" name="Effusion" value="present" id="id_Effusion_0" checked>']
    assert ">\nFluid.</textarea>" in html


@pytest.mark.django_db
def test_the_form_has_a_radio_group_per_finding_in_order(staff_client, patient):
    xray = make_xray(patient)
    form = staff_client.get(xray.get_absolute_url()).context["reading_form"]
    assert [field.name for field in form.mark_fields()] == list(FINDINGS)
    assert [field.label for field in form.mark_fields()][9] == "Pleural thickening"
    assert form.fields["Pleural_Thickening"].choices == [
        ("present", "Present"), ("absent", "Absent"), ("not_assessable", "Not assessable")
    ]


@pytest.mark.django_db
def test_staff_without_the_permission_see_save_draft_only(staff_client, reader_client, patient):
    xray = make_xray(patient)
    staff_page = staff_client.get(xray.get_absolute_url()).content.decode()
    assert 'id="save-draft"' in staff_page and 'id="sign-off"' not in staff_page
    assert "A reader signs off: your draft waits for a member of the Readers group." in staff_page
    reader_page = reader_client.get(xray.get_absolute_url()).content.decode()
    assert 'id="save-draft"' in reader_page and 'id="sign-off"' in reader_page
    assert "A reader signs off" not in reader_page


@pytest.mark.django_db
def test_it_refuses_an_unknown_mark_and_stores_nothing(staff_client, patient):
    xray = make_xray(patient)
    response = staff_client.post(save_url(xray), {"action": "save", "Effusion": "maybe", "Mass": "present"})
    assert response.status_code == 200
    assert response.context["reading_form"].errors == {
        "Effusion": ["Select a valid choice. maybe is not one of the available choices."]
    }
    assert not Reading.objects.exists() and not AuditEvent.objects.filter(object_type="reading").exists()


@pytest.mark.django_db
def test_the_rules_refuse_marks_that_are_not_marks_of_the_14_findings(staff, patient):
    xray = make_xray(patient)
    with pytest.raises(ReadingError) as unknown:
        readings.save_draft(xray, staff, {"Lung cancer": "present"}, "")
    assert (unknown.value.code, unknown.value.message) == ("unknown_finding", "'Lung cancer' is not one of the 14 findings.")
    with pytest.raises(ReadingError) as invalid:
        readings.save_draft(xray, staff, {"Hernia": "yes"}, "")
    assert invalid.value.code == "invalid_mark"
    assert invalid.value.message == "Hernia: a mark is present, absent or not_assessable, not 'yes'."
    assert not Reading.objects.exists()


@pytest.mark.django_db
def test_an_unknown_action_is_a_bad_request(staff_client, patient):
    xray = make_xray(patient)
    assert staff_client.post(save_url(xray), reading_data(action="publish")).status_code == 400
    assert staff_client.get(save_url(xray)).status_code == 405
    assert not Reading.objects.exists()


@pytest.mark.django_db
def test_anonymous_and_non_staff_users_cannot_save_a_reading(client, patient):
    xray = make_xray(patient)
    for name in ("diagnosis:reading_save", "diagnosis:reading_amend"):
        response = client.post(reverse(name, args=[xray.pk]), reading_data())
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(get_user_model().objects.create_user("visitor", password="correct horse battery"))
    assert client.post(save_url(xray), reading_data()).status_code == 403
    assert not Reading.objects.exists()
