"""Uploaded file names: a name that is not UTF-8 or unusable no longer makes the file vanish, and
what is shown and audited is a safe display name (the stored file always has a generated name)."""

import io

import pytest

from diagnosis.intake.names import ReadableHeaders, display_name, readable_header
from diagnosis.records.models import AuditEvent, XRay
from dispredo_site.testing.helpers import stored_files
from dispredo_site.testing.malformed_corpus import BOUNDARY, REQUIRED_MESSAGE, multipart_body, post_upload


@pytest.fixture
def png(sample_images):
    return sample_images["px_64"].read_bytes()


@pytest.mark.django_db
def test_a_file_name_that_is_not_utf8_no_longer_makes_the_upload_vanish(staff_client, patient, tiny_model, png, private_media):
    """Django skips a part whose header is not UTF-8: on the old code the page answered "Please choose
    an X-ray image file." although one was sent. Now the file arrives, named with U+FFFD."""
    response = post_upload(staff_client, patient, "Röntgen café.png".encode("latin-1"), png)

    assert response.status_code == 302, response.context and response.context["form"].errors
    xray = XRay.objects.get()
    assert xray.original_name == "R\ufffdntgen caf\ufffd.png"
    assert [f.read_bytes() for f in stored_files(private_media)] == [png]
    assert AuditEvent.objects.get(object_type="xray").detail == "received through the upload page: R\ufffdntgen caf\ufffd.png"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw, shown",
    [
        (b"../../etc/passwd.png", "passwd.png"),
        (b"C:\\Users\\x\\..\\chest.png", "chest.png"),
        (b"sc\x07an\x1b.png", "scan.png"),
        ("scan\u202egnp.exe".encode(), "scangnp.exe"),  # a right-to-left override would disguise it
        (b"..", "unnamed"),
        (b"folder/", "unnamed"),
        (b"x" * 296 + b".png", "x" * 251 + ".png"),
        (("\u00e9" * 200 + ".png").encode(), "\u00e9" * 125 + ".png"),
    ],
)
def test_an_unsafe_name_is_stored_under_a_safe_display_name(staff_client, patient, tiny_model, png, private_media, raw, shown):
    response = post_upload(staff_client, patient, raw, png)
    assert response.status_code == 302, response.context and response.context["form"].errors
    xray = XRay.objects.get()
    assert xray.original_name == shown and len(shown.encode()) <= 255
    # The stored file's name is generated: nothing of the uploaded name reaches the file system.
    (stored,) = stored_files(private_media)
    assert stored.parent.parent.parent == private_media / "xrays" and shown not in stored.name


@pytest.mark.django_db
def test_an_empty_file_name_is_no_file_chosen(staff_client, patient, tiny_model, png):
    """A browser sends an empty name when no file was chosen: the page asks for one."""
    response = post_upload(staff_client, patient, b"", png)
    assert response.status_code == 200
    assert response.context["form"].errors["image"] == [REQUIRED_MESSAGE]
    assert not XRay.objects.exists()


@pytest.mark.parametrize(
    "name, shown",
    [("", "unnamed"), (".", "unnamed"), ("  scan.png  ", "scan.png"), ("e\u0301.png", "\u00e9.png"), ("a" * 300, "a" * 255)],
)
def test_display_name(name, shown):
    assert display_name(name) == shown


def read_all(reader, size):
    out = b""
    while chunk := reader.read(size):
        out += chunk
    return out


@pytest.mark.parametrize("read_size", [1, 7, 4096, 65536, 10**7])
def test_a_readable_body_passes_through_unchanged(read_size):
    """Bodies Django already reads are passed on byte for byte, however the parser reads them, even
    with headers across read boundaries and boundary-like bytes inside the file."""
    content = b"\r\n--CorpusBoundary\r\nContent-Disposition: x\r\n\r\n" + bytes(range(256)) * 300
    body = multipart_body({"note": "n" * 70_000, "patient": 1}, "Röntgen.png".encode(), content)
    assert read_all(ReadableHeaders(io.BytesIO(body), BOUNDARY.encode()), read_size) == body


@pytest.mark.parametrize("read_size", [3, 65536])
def test_only_the_unreadable_header_changes(read_size):
    content = b"\xe9\xff" * 5000  # bytes that are not UTF-8 inside the file stay as they are
    body = multipart_body({"patient": 1}, b"caf\xe9.png", content)
    expected = body.replace(b'filename="caf\xe9.png"', 'filename="caf\ufffd.png"'.encode())
    assert read_all(ReadableHeaders(io.BytesIO(body), BOUNDARY.encode()), read_size) == expected


def test_a_name_django_would_drop_becomes_unnamed():
    header = b'\r\nContent-Disposition: form-data; name="image"; filename=".."\r\nContent-Type: image/png'
    assert readable_header(header) == (
        b'\r\nContent-Disposition: form-data; name="image"; filename="unnamed"\r\nContent-Type: image/png'
    )
    # An empty name is left alone: it is how a browser sends "no file chosen".
    empty = b'\r\nContent-Disposition: form-data; name="image"; filename=""'
    assert readable_header(empty) == empty
