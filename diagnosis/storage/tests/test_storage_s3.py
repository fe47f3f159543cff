"""X-ray files in an S3-compatible bucket, against a real S3 server on loopback (moto's).

The storage is configured as an installation would (DISPREDO_STORAGE=s3 and the DISPREDO_S3_*
variables, read by dispredo_site.env.xray_storage). Skipped, with the reason, where moto is not
installed; deselect with ``-k "not s3"``.
"""

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.lifecycle.registry import register_model_version
from diagnosis.records.models import XRay, XRayStatus
from diagnosis.storage.xrays import NO_PUBLIC_URL
from dispredo_core.findings import FINDINGS
from dispredo_site.env import xray_storage
from dispredo_site.testing.helpers import stored_files, upload_file
from dispredo_site.testing.ports import free_port
from dispredo_site.testing.tiny_model import build_tiny_artefact

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed: no S3 server to test against")
boto3 = pytest.importorskip("boto3", reason="boto3 is not installed")

BUCKET = "clinic-xrays"
PREFIX = "dispredo/site-a"
CREDENTIALS = {"DISPREDO_S3_ACCESS_KEY_ID": "test-key", "DISPREDO_S3_SECRET_ACCESS_KEY": "test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, settings, monkeypatch):
    """An empty bucket, and STORAGES["xrays"] pointed at it through the environment variables."""
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
    )
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    for name, value in {
        "DISPREDO_STORAGE": "s3",
        "DISPREDO_S3_BUCKET": BUCKET,
        "DISPREDO_S3_ENDPOINT_URL": s3_endpoint,
        "DISPREDO_S3_REGION": "eu-west-1",
        "DISPREDO_S3_PREFIX": f"/{PREFIX}/",
        "DISPREDO_S3_ENCRYPTION": "AES256",
        **CREDENTIALS,
    }.items():
        monkeypatch.setenv(name, value)
    settings.STORAGES = {**settings.STORAGES, "xrays": xray_storage()}
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def keys(client):
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def body(client, key):
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.mark.django_db
def test_an_upload_through_the_page_is_stored_in_the_bucket_not_in_the_media_folder(
    staff_client, patient, tiny_model, sample_images, private_media, bucket
):
    path = sample_images["px_256"]
    response = upload_file(staff_client, path, patient)

    xray = XRay.objects.get()
    assert response.redirect_chain[-1][0] == reverse("diagnosis:xray_detail", args=[xray.pk])
    assert xray.status == XRayStatus.DONE and xray.predictions.count() == len(FINDINGS)
    key = f"{PREFIX}/{xray.image.name}"
    assert keys(bucket) == [key] and xray.image.name.startswith("xrays/") and path.name not in key
    assert body(bucket, key) == path.read_bytes()
    assert stored_files(private_media) == []
    # Encrypted at rest by the store, and readable by the bucket's owner only (no grant to anyone else).
    assert bucket.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"
    grants = bucket.get_object_acl(Bucket=BUCKET, Key=key)["Grants"]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]
    assert all(grant["Grantee"]["Type"] == "CanonicalUser" for grant in grants)


@pytest.mark.django_db
def test_the_image_view_streams_the_object_back_to_staff_and_no_url_is_ever_made(
    staff_client, patient, tiny_model, sample_images, bucket, s3_endpoint
):
    path = sample_images["px_256"]
    upload_file(staff_client, path, patient)
    xray = XRay.objects.get()

    image = staff_client.get(reverse("diagnosis:xray_image", args=[xray.pk]))
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content) == path.read_bytes()
    page = staff_client.get(xray.get_absolute_url())
    assert page.status_code == 200 and page.content.decode().count('data-finding="') == len(FINDINGS)
    # Neither page points at the store; the storage refuses to make a link, presigned or public.
    assert s3_endpoint.split("//")[1] not in page.content.decode() and BUCKET not in page.content.decode()
    with pytest.raises(ValueError, match=NO_PUBLIC_URL):
        xray.image.url
    # Signed out, the image is not sent.
    assert Client().get(reverse("diagnosis:xray_image", args=[xray.pk])).status_code == 302


@pytest.mark.django_db
def test_an_object_gone_from_the_bucket_is_a_404_not_an_error(staff_client, patient, tiny_model, sample_images, bucket):
    upload_file(staff_client, sample_images["px_64"], patient)
    xray = XRay.objects.get()
    bucket.delete_object(Bucket=BUCKET, Key=f"{PREFIX}/{xray.image.name}")

    response = staff_client.get(reverse("diagnosis:xray_image", args=[xray.pk]))
    assert response.status_code == 404


@pytest.mark.django_db
def test_rescore_reads_a_pending_xray_from_the_bucket(staff_client, patient, sample_images, private_media, bucket, tmp_path):
    upload_file(staff_client, sample_images["px_256"], patient)  # no model yet: stored, pending
    xray = XRay.objects.get()
    assert xray.status == XRayStatus.PENDING and stored_files(private_media) == []
    build_tiny_artefact(tmp_path / "tiny")
    version = register_model_version(tmp_path / "tiny", activate=True)

    call_command("rescore", verbosity=0)

    xray.refresh_from_db()
    assert xray.status == XRayStatus.DONE
    assert {p.model_version_id for p in xray.predictions.all()} == {version.pk}
    assert xray.predictions.count() == len(FINDINGS)


@pytest.mark.django_db
def test_an_unreachable_store_marks_the_xray_failed_with_the_reason(
    staff_client, patient, sample_images, bucket, settings, tmp_path
):
    from botocore.config import Config

    upload_file(staff_client, sample_images["px_64"], patient)
    xray = XRay.objects.get()
    build_tiny_artefact(tmp_path / "tiny")
    register_model_version(tmp_path / "tiny", activate=True)
    # The same store configuration at a port nobody listens on; one attempt, so the test is quick.
    options = {
        **settings.STORAGES["xrays"]["OPTIONS"],
        "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "client_config": Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    }
    settings.STORAGES = {**settings.STORAGES, "xrays": {**settings.STORAGES["xrays"], "OPTIONS": options}}

    call_command("rescore", verbosity=0)

    xray.refresh_from_db()
    assert xray.status == XRayStatus.FAILED
    assert xray.error == "The X-ray file store failed to open a file (EndpointConnectionError)."
    assert ModelVersion.active() is not None and not xray.predictions.exists()
