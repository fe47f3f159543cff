from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from diagnosis.pages.views import PAGE_SIZE
from diagnosis.records.models import Patient, XRayStatus
from dispredo_site.testing.factories import make_xray

URL = reverse("diagnosis:worklist")


@pytest.mark.django_db
def test_it_lists_xrays_across_patients_newest_first(staff_client, patient, tiny_model):
    other = Patient.objects.create(mrn="P2", name="Mary Somerville")
    now = timezone.now()
    first = make_xray(patient, version=tiny_model, flagged={"Effusion"}, uploaded_at=now - timedelta(hours=2))
    second = make_xray(other, version=tiny_model, uploaded_at=now - timedelta(hours=1))
    third = make_xray(patient, uploaded_at=now)
    response = staff_client.get(URL)
    assert [x.pk for x in response.context["page"]] == [third.pk, second.pk, first.pk]
    html = response.content.decode()
    assert "Effusion 90.0%" in html and "None flagged" in html and "Pending" in html


@pytest.mark.django_db
def test_it_filters_by_status_and_by_finding(staff_client, patient, tiny_model):
    effusion = make_xray(patient, version=tiny_model, flagged={"Effusion"})
    make_xray(patient, version=tiny_model, flagged={"Mass"})
    pending = make_xray(patient)
    by_status = staff_client.get(URL, {"status": XRayStatus.PENDING})
    assert [x.pk for x in by_status.context["page"]] == [pending.pk]
    by_finding = staff_client.get(URL, {"finding": "Effusion"})
    assert [x.pk for x in by_finding.context["page"]] == [effusion.pk]
    both = staff_client.get(URL, {"finding": "Effusion", "status": XRayStatus.PENDING})
    assert list(both.context["page"]) == []


@pytest.mark.django_db
def test_it_paginates_and_keeps_the_filters(staff_client, patient):
    for _ in range(PAGE_SIZE + 2):
        make_xray(patient)
    first = staff_client.get(URL, {"status": "pending"})
    assert len(first.context["page"]) == PAGE_SIZE
    assert "?status=pending&amp;page=2" in first.content.decode()
    second = staff_client.get(URL, {"status": "pending", "page": 2})
    assert len(second.context["page"]) == 2


@pytest.mark.django_db
def test_findings_that_are_not_reliable_are_not_offered_as_filters(staff_client, tmp_path):
    from diagnosis.lifecycle.registry import register_model_version
    from dispredo_site.testing.tiny_model import build_tiny_artefact

    build_tiny_artefact(tmp_path / "m", name="partly", unreliable=("Mass", "Hernia"))
    register_model_version(tmp_path / "m", activate=True)
    response = staff_client.get(URL)
    offered = [value for value, _ in response.context["form"].fields["finding"].choices]
    assert offered[0] == "" and len(offered) == 13
    assert "Mass" not in offered and "Hernia" not in offered and "Effusion" in offered
    refused = staff_client.get(URL, {"finding": "Mass"})
    assert refused.context["form"].errors == {
        "finding": ["Select a valid choice. Mass is not one of the available choices."]
    }
