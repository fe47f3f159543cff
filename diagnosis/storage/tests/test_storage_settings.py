"""STORAGES["xrays"] from the environment (dispredo_site.env.xray_storage) and the field that uses it."""

from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from diagnosis.records.models import XRay
from diagnosis.storage import xrays as storage
from dispredo_site import env

S3_VARIABLES = [
    "DISPREDO_STORAGE", "DISPREDO_S3_BUCKET", "DISPREDO_S3_ENDPOINT_URL", "DISPREDO_S3_REGION",
    "DISPREDO_S3_ACCESS_KEY_ID", "DISPREDO_S3_SECRET_ACCESS_KEY", "DISPREDO_S3_PREFIX", "DISPREDO_S3_ACL",
    "DISPREDO_S3_ENCRYPTION", "DISPREDO_S3_KMS_KEY_ID", "DISPREDO_S3_ADDRESSING_STYLE",
]


@pytest.fixture
def environment(monkeypatch):
    """A clean slate of the storage variables; returns a setter."""
    for name in S3_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_all(**values):
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_all


def test_the_private_local_folder_is_the_default(environment, settings, tmp_path):
    assert env.xray_storage() == {"BACKEND": "diagnosis.storage.xrays.PrivateFileSystemStorage"}
    field_storage = XRay._meta.get_field("image").storage
    assert storage.is_local(field_storage)
    settings.MEDIA_ROOT = tmp_path / "elsewhere"
    assert field_storage.path("xrays/a.png") == str(tmp_path / "elsewhere" / "xrays" / "a.png")
    with pytest.raises(ValueError, match=storage.NO_PUBLIC_URL):
        field_storage.url("xrays/a.png")


def test_an_s3_store_comes_from_the_environment(environment):
    environment(
        DISPREDO_STORAGE="S3", DISPREDO_S3_BUCKET="clinic-xrays", DISPREDO_S3_ENDPOINT_URL="https://minio.clinic.example:9000",
        DISPREDO_S3_REGION="eu-central-1", DISPREDO_S3_PREFIX="/site-a/", DISPREDO_S3_ACCESS_KEY_ID="key",
        DISPREDO_S3_SECRET_ACCESS_KEY="secret", DISPREDO_S3_ENCRYPTION="aws:kms", DISPREDO_S3_KMS_KEY_ID="alias/xrays",
    )
    config = env.xray_storage()
    assert config["BACKEND"] == "diagnosis.storage.s3.PrivateS3Storage"
    assert config["OPTIONS"] == {
        "bucket_name": "clinic-xrays",
        "location": "site-a",
        "endpoint_url": "https://minio.clinic.example:9000",
        "region_name": "eu-central-1",
        "addressing_style": "path",
        "default_acl": "private",
        "object_parameters": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/xrays"},
        "file_overwrite": False,
        "querystring_auth": True,
        "custom_domain": None,
        "access_key": "key",
        "secret_key": "secret",
    }


def test_aws_itself_needs_only_the_bucket_and_takes_the_standard_credentials(environment):
    environment(DISPREDO_STORAGE="s3", DISPREDO_S3_BUCKET="clinic-xrays", DISPREDO_S3_ACL="none")
    options = env.xray_storage()["OPTIONS"]
    assert options["endpoint_url"] is None and options["addressing_style"] is None
    assert options["default_acl"] is None and options["object_parameters"] == {}
    assert "access_key" not in options and "secret_key" not in options


@pytest.mark.parametrize(
    "values, message",
    [
        ({"DISPREDO_STORAGE": "nfs"}, "DISPREDO_STORAGE must be one of local, s3, not 'nfs'."),
        ({"DISPREDO_STORAGE": "s3"}, "DISPREDO_STORAGE=s3 needs DISPREDO_S3_BUCKET, the name of the bucket for X-ray files."),
        (
            {"DISPREDO_STORAGE": "s3", "DISPREDO_S3_BUCKET": "b", "DISPREDO_S3_ENDPOINT_URL": "minio:9000"},
            "DISPREDO_S3_ENDPOINT_URL must look like https://s3.clinic.example:9000, not 'minio:9000'.",
        ),
        (
            {"DISPREDO_STORAGE": "s3", "DISPREDO_S3_BUCKET": "b", "DISPREDO_S3_ACCESS_KEY_ID": "key"},
            "Set both DISPREDO_S3_ACCESS_KEY_ID and DISPREDO_S3_SECRET_ACCESS_KEY, or neither",
        ),
        (
            {"DISPREDO_STORAGE": "s3", "DISPREDO_S3_BUCKET": "b", "DISPREDO_S3_ACL": "public-read"},
            "DISPREDO_S3_ACL must be one of private, bucket-owner-full-control, none, not 'public-read'.",
        ),
        (
            {"DISPREDO_STORAGE": "s3", "DISPREDO_S3_BUCKET": "b", "DISPREDO_S3_KMS_KEY_ID": "alias/x"},
            "DISPREDO_S3_KMS_KEY_ID needs DISPREDO_S3_ENCRYPTION=aws:kms.",
        ),
    ],
)
def test_it_refuses_an_incomplete_or_public_store(environment, values, message):
    environment(**values)
    with pytest.raises(ImproperlyConfigured) as refused:
        env.xray_storage()
    assert str(refused.value).startswith(message)


def test_the_field_follows_the_setting_to_a_bucket_that_refuses_urls(environment, settings):
    pytest.importorskip("storages.backends.s3", reason="django-storages with boto3 is not installed")
    from diagnosis.storage.s3 import PrivateS3Storage

    environment(DISPREDO_STORAGE="s3", DISPREDO_S3_BUCKET="clinic-xrays", DISPREDO_S3_ENDPOINT_URL="http://127.0.0.1:9")
    settings.STORAGES = {**settings.STORAGES, "xrays": env.xray_storage()}
    field_storage = XRay._meta.get_field("image").storage
    assert isinstance(field_storage, PrivateS3Storage) and not storage.is_local()
    with pytest.raises(ValueError, match=storage.NO_PUBLIC_URL):
        field_storage.url("xrays/a.png")  # no request is made: refused before any signing


@pytest.mark.django_db
def test_setup_leaves_the_media_folder_alone_when_files_are_in_a_bucket(environment, settings, tmp_path):
    pytest.importorskip("storages.backends.s3", reason="django-storages with boto3 is not installed")
    environment(DISPREDO_STORAGE="s3", DISPREDO_S3_BUCKET="clinic-xrays", DISPREDO_S3_ENDPOINT_URL="http://127.0.0.1:9")
    settings.STORAGES = {**settings.STORAGES, "xrays": env.xray_storage()}
    settings.DATA_DIR = tmp_path / "data"
    settings.DISPREDO_DEFAULT_MODEL_DIR = tmp_path / "none"
    call_command("setup", stdout=StringIO())
    assert settings.DATA_DIR.is_dir() and not settings.MEDIA_ROOT.exists()
