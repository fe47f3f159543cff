"""Upload memory benchmark: the peak resident memory of a worker-like process for one upload.

    .venv/bin/python -m bench.upload_memory
    .venv/bin/python -m bench.upload_memory --cases png16-7000 nih-1024 --json out.json

For each case a fresh subprocess sets up Django (settings, apps, URLconf, as a web worker does),
loads the shipped model (models/default, ONNX Runtime) and then handles one upload the way every
door's intake does: its first check reads the file's content (``diagnosis.intake.content.read_content``:
size, header limits, decode), then the model's pixels, the input guard and the 14 predictions. It
reports the process's resident memory (VmRSS) and its peak (VmHWM) before the upload and after it,
and the outcome (scored, refused by the guard, or the intake's refusal message).

Cases (files are generated in a temporary folder, never in the repository):

- ``png16-7000``: a 16-bit grayscale 7000 x 7000 PNG of about 100 KB (a smooth ramp: tiny on
  disk, 98 MB of pixels once decoded), the review's memory-amplification finding;
- ``png16-5000``: the same at 5000 x 5000, just within the default limit (the worst accepted PNG);
- ``png16-3000``: the same at 3000 x 3000, the size of a computed-radiography plate;
- ``dicom16-3000``: an uncompressed 16-bit 3000 x 3000 DX DICOM (about 18 MB);
- ``dicom16-4300``: the same at 4300 x 4300 (about 37 MB, near the 40 MB upload limit);
- ``jpeg-phone``: a 4032 x 3024 RGB JPEG with EXIF Orientation 6, as a phone saves a photo of a film;
- ``nih-1024``: a real 1024 x 1024 NIH original (RGBA), the everyday reference.

Goal: peak under 300 MB for every case (the issue's target for the 16-bit 7000 x 7000 PNG).
Run it on the code before and after a change (e.g. ``git stash``) to compare. Figures depend on
the machine and on the libraries' versions; the machine line is printed with them.
"""

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from bench._common import PYTHON, REPO, BenchError, django_env, machine, machine_line, memory_mb, nih_sample, table

GOAL_PEAK_MB = 300.0
CASES = ("png16-7000", "png16-5000", "png16-3000", "dicom16-3000", "dicom16-4300", "jpeg-phone", "nih-1024")
NIH_ORIGINAL = "images_002/images/00001369_000.png"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.upload_memory",
        description="Peak resident memory of a fresh worker-like process validating and scoring one upload.",
    )
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES), help="cases to run (default all)")
    parser.add_argument(
        "--artefact", metavar="DIR", default=str(REPO / "models" / "default"), help="model artefact (default models/default)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    # Internal: the measuring subprocess runs this same file.
    parser.add_argument("--probe", metavar="FILE", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- generated inputs ----------------------------------------------------------------------------


def _png_chunk(kind, payload):
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def ramp_png16(size):
    """A valid 16-bit grayscale PNG of ``size`` x ``size`` pixels, written row by row (never the
    whole image in memory): each row a ramp 0..65535, the rows below it PNG's "Up" filter of zeros."""
    first = bytes([0]) + b"".join(int(x * 65535 / (size - 1)).to_bytes(2, "big") for x in range(size))
    same = bytes([2]) + bytes(2 * size)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(first)]
    for _ in range(size - 1):
        parts.append(compressor.compress(same))
    parts.append(compressor.flush())
    header = size.to_bytes(4, "big") * 2 + bytes([16, 0, 0, 0, 0])
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def dicom16(size):
    """An uncompressed 16-bit DX chest DICOM of ``size`` x ``size`` pixels (a smooth pattern)."""
    import io

    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.Modality, dataset.BodyPartExamined, dataset.PatientID = "DX", "CHEST", "BENCH-1"
    dataset.Rows = dataset.Columns = size
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 0
    ramp = (np.arange(size, dtype=np.uint32) * 4095 // (size - 1)).astype(np.uint16)
    dataset.PixelData = np.broadcast_to(ramp, (size, size)).tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def phone_jpeg(nih):
    """A 4032 x 3024 RGB JPEG with EXIF Orientation 6 made from a real X-ray (upscaled, sideways)."""
    import io

    from PIL import Image

    with Image.open(nih / NIH_ORIGINAL) as image:
        upright = image.convert("RGB").resize((3024, 4032))
    # Stored sideways; Orientation 6 tells a viewer to turn it 90 degrees clockwise.
    photo = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def make_input(case, folder):
    kind, _, size = case.partition("-")
    path = Path(folder) / (case + {"dicom16": ".dcm", "jpeg": ".jpg"}.get(kind, ".png"))
    if kind == "png16":
        path.write_bytes(ramp_png16(int(size)))
    elif kind == "dicom16":
        path.write_bytes(dicom16(int(size)))
    elif kind == "jpeg":
        path.write_bytes(phone_jpeg(nih_sample()))
    else:
        path.write_bytes((nih_sample() / NIH_ORIGINAL).read_bytes())
    return path


# --- the probe (a fresh subprocess per case) -----------------------------------------------------


def probe(args):
    """Set up Django and the model, then validate and score the one upload in ``args.probe``."""
    result = {"start": memory_mb()}
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile

    import dispredo_site.urls  # noqa: F401  (what a web worker imports)
    from diagnosis.intake.content import read_content
    from dispredo_core.predictor import Predictor

    predictor = Predictor(args.artefact)
    path = Path(args.probe)
    data = path.read_bytes()
    result["file_kb"] = round(len(data) / 1024, 1)
    result["before"] = memory_mb()
    content = read_content(SimpleUploadedFile(path.name, data))
    if content.refusal is not None:
        result["outcome"] = "refused: " + content.refusal.message
    else:
        image = content.image
        result["size"] = f"{image.width} x {image.height}"
        pixels = predictor.pixels(image)
        accepted = predictor.accepts(pixels)
        predictor.predict(pixels=pixels)
        result["outcome"] = "scored" if accepted else "scored (the input guard would refuse it)"
    result["after"] = memory_mb()
    sys.stdout.write("\nPROBE-RESULT " + json.dumps(result) + "\n")


def run_probe(path, args, data_dir):
    env = django_env(data_dir, DISPREDO_SECRET_KEY=secrets.token_urlsafe(32))
    command = [PYTHON, "-m", "bench.upload_memory", "--probe", str(path), "--artefact", args.artefact]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    for line in done.stdout.splitlines():
        if line.startswith("PROBE-RESULT "):
            return json.loads(line[len("PROBE-RESULT ") :])
    tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
    return {"error": f"the probe exited with {done.returncode}:\n{tail}"}


def report(figures, info):
    rows = []
    for case, result in figures.items():
        if "error" in result:
            rows.append([case, "", "", "", "", result["error"].splitlines()[-1][:80]])
            continue
        before, after = result["before"], result["after"]
        rows.append(
            [case, result["file_kb"], before["peak_rss_mb"], after["rss_mb"], after["peak_rss_mb"], result["outcome"][:110]]
        )
    worst = max((r["after"]["peak_rss_mb"] for r in figures.values() if "after" in r), default=None)
    lines = [
        machine_line(info),
        "",
        table(rows, ["case", "file KB", "peak before upload MB", "RSS after MB", "peak after MB", "outcome"]),
        "",
        f"Goal: peak under {GOAL_PEAK_MB:g} MB for one upload: "
        + ("met" if worst is not None and worst < GOAL_PEAK_MB else "NOT met") + f" (worst {worst} MB)",
    ]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.probe:
        probe(args)
        return 0
    info = machine()
    figures = {}
    try:
        with tempfile.TemporaryDirectory(prefix="dispredo-bench-") as folder:
            for case in args.cases:
                print(f"{case}: generating the file and measuring a fresh process...", flush=True)
                figures[case] = run_probe(make_input(case, folder), args, Path(folder) / "data")
    except BenchError as exc:
        print(f"bench.upload_memory: {exc}", file=sys.stderr)
        return 1
    print()
    print(report(figures, info))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "figures": figures}, indent=2))
    return 1 if any("error" in r for r in figures.values()) else 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
