"""The worklist and readings: status on every row, the awaiting filter, triage order, the count in the navigation."""

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from diagnosis.context_processors import awaiting_reading
from diagnosis.pages.views import PAGE_SIZE
from diagnosis.readings import rules as readings
from diagnosis.records.models import Prediction, XRay
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.factories import make_xray

URL = reverse("diagnosis:worklist")
ALL_ABSENT = {name: "absent" for name in FINDINGS}


@pytest.fixture
def three_states(patient, reader):
    """An unread, a draft and a signed-off X-ray, oldest to newest."""
    now = timezone.now()
    unread = make_xray(patient, uploaded_at=now - timedelta(hours=3))
    draft = make_xray(patient, uploaded_at=now - timedelta(hours=2))
    signed = make_xray(patient, uploaded_at=now - timedelta(hours=1))
    readings.save_draft(draft, reader, {"Mass": "present"}, "")
    readings.sign_off(signed, reader, ALL_ABSENT, "")
    return unread, draft, signed


def listed(response):
    return [xray.pk for xray in response.context["page"]]


def with_strongest_flag(patient, version, probability, uploaded_at):
    xray = make_xray(patient, version=version, flagged={"Effusion"}, uploaded_at=uploaded_at)
    Prediction.objects.filter(xray=xray, finding="Effusion").update(probability=probability)
    return xray


@pytest.mark.django_db
def test_every_row_shows_its_reading_status(staff_client, three_states):
    unread, draft, signed = three_states
    response = staff_client.get(URL)
    assert {x.pk: x.reading_state for x in response.context["page"]} == {
        unread.pk: "unread", draft.pk: "draft", signed.pk: "signed"
    }
    html = response.content.decode()
    for state, label in [("unread", "Unread"), ("draft", "Draft"), ("signed", "Signed off")]:
        assert html.count(f'<span class="chip reading-{state}">{label}</span>') == 1, state


@pytest.mark.django_db
def test_it_filters_by_reading_state(staff_client, three_states):
    unread, draft, signed = three_states
    assert listed(staff_client.get(URL, {"reading": "awaiting"})) == [draft.pk, unread.pk]
    assert listed(staff_client.get(URL, {"reading": "unread"})) == [unread.pk]
    assert listed(staff_client.get(URL, {"reading": "draft"})) == [draft.pk]
    assert listed(staff_client.get(URL, {"reading": "signed"})) == [signed.pk]
    assert listed(staff_client.get(URL, {"reading": "signed", "status": "pending"})) == [signed.pk]
    assert listed(staff_client.get(URL, {"reading": "signed", "status": "done"})) == []


@pytest.mark.django_db
def test_an_amended_reading_stays_signed_off(staff_client, three_states, reader):
    signed = three_states[2]
    readings.amend(signed, reader, ALL_ABSENT | {"Mass": "present"}, "", "Mass after all.")
    assert listed(staff_client.get(URL, {"reading": "signed"})) == [signed.pk]
    assert signed.pk not in listed(staff_client.get(URL, {"reading": "awaiting"}))


@pytest.mark.django_db
def test_the_triage_order_puts_the_strongest_flags_first(staff_client, patient, tiny_model):
    now = timezone.now()
    weak_old = with_strongest_flag(patient, tiny_model, 0.6, now - timedelta(hours=5))
    strong = with_strongest_flag(patient, tiny_model, 0.95, now - timedelta(hours=4))
    weak_new = with_strongest_flag(patient, tiny_model, 0.6, now - timedelta(hours=3))
    # A high score that is not flagged (e.g. an unreliable finding) does not count.
    unflagged_high = make_xray(patient, version=tiny_model, uploaded_at=now - timedelta(hours=2))
    Prediction.objects.filter(xray=unflagged_high, finding="Hernia").update(probability=0.99)
    pending = make_xray(patient, uploaded_at=now - timedelta(hours=1))
    triage = staff_client.get(URL, {"sort": "triage"})
    assert listed(triage) == [strong.pk, weak_new.pk, weak_old.pk, pending.pk, unflagged_high.pk]
    newest_first = staff_client.get(URL)
    assert listed(newest_first) == [pending.pk, unflagged_high.pk, weak_new.pk, strong.pk, weak_old.pk]


@pytest.mark.django_db
def test_the_triage_order_holds_across_pages(staff_client, patient, tiny_model):
    now = timezone.now()
    flagged = with_strongest_flag(patient, tiny_model, 0.7, now - timedelta(days=1))
    for minutes in range(PAGE_SIZE):
        make_xray(patient, version=tiny_model, uploaded_at=now - timedelta(minutes=minutes))
    first = staff_client.get(URL, {"sort": "triage", "reading": "awaiting"})
    assert listed(first)[0] == flagged.pk and len(listed(first)) == PAGE_SIZE
    second = staff_client.get(URL, {"sort": "triage", "reading": "awaiting", "page": 2})
    oldest_unflagged = XRay.objects.exclude(pk=flagged.pk).order_by("uploaded_at").first()
    assert listed(second) == [oldest_unflagged.pk]
    assert "?sort=triage&amp;reading=awaiting&amp;page=2" in first.content.decode()


@pytest.mark.django_db
def test_the_navigation_counts_the_xrays_awaiting_reading_and_links_to_them(staff_client, three_states):
    html = staff_client.get(reverse("diagnosis:patient_list")).content.decode()
    assert '<a href="/?reading=awaiting" id="awaiting-reading">Awaiting reading <span class="count">2</span></a>' in html


@pytest.mark.django_db
def test_the_count_is_one_query_and_only_for_staff(staff, three_states, django_assert_num_queries, django_user_model):
    request = RequestFactory().get("/")
    request.user = staff
    context = awaiting_reading(request)
    with django_assert_num_queries(1):
        assert str(context["awaiting_reading"]) == "2"
    request.user = django_user_model.objects.create_user("visitor", password="correct horse battery")
    with django_assert_num_queries(0):
        assert str(awaiting_reading(request)["awaiting_reading"]) == "None"


@pytest.mark.django_db
def test_the_reading_filters_are_labelled(staff_client):
    html = staff_client.get(URL).content.decode()
    assert '<label for="id_reading">Reading</label><select name="reading" id="id_reading">' in html
    assert '<option value="awaiting">Awaiting reading</option>' in html
    assert '<label for="id_sort">Order</label><select name="sort" id="id_sort">' in html
    assert '<option value="triage">Triage: strongest flags first</option>' in html
