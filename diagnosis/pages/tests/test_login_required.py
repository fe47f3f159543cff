import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from diagnosis.readings.models import Reading
from diagnosis.records.models import XRay


@pytest.fixture
def xray(patient, tmp_path):
    return XRay.objects.create(patient=patient, image="xrays/x.png", sha256="0" * 64, width=1, height=1)


def app_urls(patient, xray):
    return [
        reverse("diagnosis:worklist"),
        reverse("diagnosis:patient_list"),
        reverse("diagnosis:patient_create"),
        reverse("diagnosis:patient_detail", args=[patient.pk]),
        reverse("diagnosis:patient_edit", args=[patient.pk]),
        reverse("diagnosis:upload"),
        reverse("diagnosis:xray_detail", args=[xray.pk]),
        reverse("diagnosis:xray_image", args=[xray.pk]),
        reverse("diagnosis:xray_report", args=[xray.pk]),
        reverse("diagnosis:model_performance"),
    ]


@pytest.mark.django_db
def test_every_page_redirects_anonymous_users_to_sign_in(client, patient, xray):
    for url in app_urls(patient, xray):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next="), url


@pytest.mark.django_db
def test_anonymous_posts_change_nothing(client, patient, xray):
    response = client.post(reverse("diagnosis:patient_delete", args=[patient.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    response = client.post(reverse("diagnosis:patient_create"), {"mrn": "X1", "name": "Eve", "sex": "F"})
    assert response.status_code == 302
    assert patient.__class__.objects.count() == 1
    for name in ("diagnosis:reading_save", "diagnosis:reading_amend"):
        response = client.post(reverse(name, args=[xray.pk]), {"action": "save", "impression": "x"})
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert not Reading.objects.exists()


@pytest.mark.django_db
def test_signed_in_users_without_staff_status_are_refused(client, patient, xray):
    user = get_user_model().objects.create_user("visitor", password="correct horse battery")
    client.force_login(user)
    for url in app_urls(patient, xray):
        assert client.get(url).status_code == 403, url


@pytest.mark.django_db
def test_media_is_not_served_from_a_public_url(client, staff_client):
    from django.conf import settings

    (settings.MEDIA_ROOT / "xrays").mkdir(parents=True)
    (settings.MEDIA_ROOT / "xrays" / "x.png").write_bytes(b"private")
    assert client.get(f"{settings.MEDIA_URL}xrays/x.png").status_code == 404
