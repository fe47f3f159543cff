"""Finding 1 of issue 26: the admin's add pages answer a superuser without a server error, and an
X-ray is never added by hand (it comes in through a door: the page, the API or DICOM)."""

import pytest
from django.contrib import admin
from django.urls import reverse

from diagnosis.records.admin import XRayAdmin
from diagnosis.records.models import XRay


@pytest.mark.django_db
def test_every_add_page_of_the_admin_answers_a_superuser_without_an_error(admin_client_):
    answers = {}
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
        answers[url] = admin_client_.get(url).status_code
    assert answers and set(answers.values()) <= {200, 403}, answers
    assert answers[reverse("admin:diagnosis_xray_add")] == 403


@pytest.mark.django_db
def test_the_admin_refuses_to_add_an_x_ray_by_hand(admin_client_, patient):
    response = admin_client_.post(reverse("admin:diagnosis_xray_add"), {"patient": patient.pk, "status": "done"})
    assert response.status_code == 403
    assert not XRay.objects.exists()
    listing = admin_client_.get(reverse("admin:diagnosis_xray_changelist")).content.decode()
    assert reverse("admin:diagnosis_xray_add") not in listing


def test_the_image_preview_of_an_x_ray_not_yet_saved_is_a_dash():
    preview = XRayAdmin(XRay, admin.site).image_preview
    assert preview(None) == "—"
    assert preview(XRay()) == "—"


@pytest.mark.django_db
def test_the_image_preview_of_a_stored_x_ray_goes_through_the_checked_view(admin_client_, patient):
    from dispredo_site.testing.factories import make_xray

    xray = make_xray(patient)
    page = admin_client_.get(reverse("admin:diagnosis_xray_change", args=[xray.pk])).content.decode()
    image = reverse("diagnosis:xray_image", args=[xray.pk])
    assert f'<a href="{image}"><img src="{image}" alt="X-ray"' in page
