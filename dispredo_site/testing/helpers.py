"""What the tests share besides fixtures: where the data samples are, and small helpers for uploads,
readings, stored files and API credentials."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NIH_SAMPLE = Path(os.environ.get("DISPREDO_NIH_SAMPLE", REPO.parent / "shared" / "data" / "nih-sample"))
DICOM_SAMPLE = Path(os.environ.get("DISPREDO_DICOM_SAMPLE", REPO.parent / "shared" / "data" / "dicom-sample"))

# Real NIH images of each kind the sample holds (see its README).
RGBA_1024 = "images_002/images/00001369_000.png"
GRAY_1024 = "images_002/images/00000075_000.png"


def first_of_size(size):
    """The first image of ``size`` x ``size`` pixels in the sample's first folder."""
    from PIL import Image

    for path in sorted((NIH_SAMPLE / "images_001" / "images").glob("*.png")):
        with Image.open(path) as image:
            if image.size == (size, size):
                return path
    raise FileNotFoundError(f"No {size}x{size} image in {NIH_SAMPLE}/images_001")


def stored_files(media_root):
    """Every file under ``media_root``, sorted (none when the folder does not exist)."""
    root = Path(media_root)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def upload_file(client, path, patient=None, **fields):
    """POST ``path`` to the upload page for ``patient``; returns the response (redirects followed)."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    data = {"image": SimpleUploadedFile(path.name, path.read_bytes()), **fields}
    if patient is not None:
        data["patient"] = patient.pk
    return client.post(reverse("diagnosis:upload"), data, follow=True)


def reading_data(action="save", marks=None, impression="", **fields):
    """POST data of the reading form: every finding marked absent, then ``marks`` on top
    (a value of None leaves that finding unmarked)."""
    from dispredo_core.findings import FINDINGS

    chosen = {name: "absent" for name in FINDINGS} | (marks or {})
    return {
        "action": action,
        "impression": impression,
        **{name: value for name, value in chosen.items() if value is not None},
        **fields,
    }


def bearer(key):
    """The header of an API request sent with the token ``key``."""
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def start_refusal(**environment):
    """What starting Django with ``environment`` added prints when the settings refuse it (its
    standard error); fails the test if it starts."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dispredo_site.settings", **environment}
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0, f"Django started with {environment}"
    return done.stderr
