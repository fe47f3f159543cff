"""The input guard: the shipped guard on real NIH images it never saw and on images that are not
chest X-rays, the threshold rule of ``mltrain.guard.fit``, and the .npz file format."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageOps

from dispredo_core.guard import GUARD_FILE, REFUSAL_MESSAGE, InputGuard
from dispredo_core.imaging import to_model_pixels
from dispredo_site.testing.helpers import REPO
from dispredo_site.testing.nih_unseen import unseen_images
from dispredo_site.testing.nonxray_corpus import build_corpus
from mltrain.guard import _fit_arrays, _patient_folds, fit

SHIPPED = REPO / "models" / "default"
SIZE = 64


@pytest.fixture(scope="module")
def shipped_guard():
    return InputGuard.load(SHIPPED / GUARD_FILE)


@pytest.fixture(scope="module")
def corpus(nih_sample):
    return build_corpus(nih_sample)


def unseen_nih_images(nih_sample):
    """The NIH sample images the shipped model (and its guard) did not train on."""
    return [path for path, _ in unseen_images(nih_sample, SHIPPED / "patients.json")]


# --- the shipped guard --------------------------------------------------------------------------


def test_shipped_guard_is_small_and_described(shipped_guard):
    assert (SHIPPED / GUARD_FILE).stat().st_size < 200_000
    assert shipped_guard.size == SIZE
    assert shipped_guard.fitted_images == 1413
    description = shipped_guard.description()
    assert json.loads(json.dumps(description)) == description
    assert description["file"] == GUARD_FILE
    assert description["threshold"] == pytest.approx(shipped_guard.threshold, abs=1e-5)
    assert description["held_out_refusal_rate"] <= 0.01
    assert REFUSAL_MESSAGE.endswith("so it was not scored.")


def test_corpus_is_large_and_varied(corpus):
    assert len(corpus) >= 40
    assert len({name for name, _ in corpus}) == len(corpus)
    modes = {image.mode for _, image in corpus}
    assert "L" in modes and "RGB" in modes
    assert len({image.size for _, image in corpus}) >= 15
    assert any(name.startswith("inverted-xray:") for name, _ in corpus)


def test_shipped_guard_refuses_images_that_are_not_chest_xrays(shipped_guard, corpus):
    pixels = np.stack([to_model_pixels(image, SIZE) for _, image in corpus])
    scores = shipped_guard.scores(pixels)
    threshold = shipped_guard.threshold
    passed = [f"{name} (score {score:.2f})" for (name, _), score in zip(corpus, scores) if score <= threshold]
    refused = 1 - len(passed) / len(corpus)
    assert refused >= 0.95, (
        f"refused {refused:.1%} of {len(corpus)} non-X-ray images (threshold {shipped_guard.threshold:.2f}); "
        f"passed: {', '.join(passed)}"
    )
    # Single-image calls agree with the batch.
    assert [shipped_guard.accepts(p) for p in pixels] == list(scores <= shipped_guard.threshold)


def test_shipped_guard_refuses_an_inverted_xray_but_accepts_the_original(shipped_guard, sample_images):
    for key in ("gray_1024", "rgba_1024", "px_256"):
        with Image.open(sample_images[key]) as image:
            gray = to_model_pixels(image, SIZE)
        assert shipped_guard.accepts(gray), key
        assert not shipped_guard.accepts(255 - gray), key
        assert not shipped_guard.accepts(to_model_pixels(ImageOps.invert(Image.fromarray(gray)), SIZE)), key


def test_shipped_guard_accepts_unseen_nih_images(shipped_guard, nih_sample):
    paths = unseen_nih_images(nih_sample)
    assert len(paths) >= 300
    pixels = []
    for path in paths:
        with Image.open(path) as image:
            pixels.append(to_model_pixels(image, SIZE))
    scores = shipped_guard.scores(np.stack(pixels))
    threshold = shipped_guard.threshold
    refused = [f"{p.parent.parent.name}/{p.name} ({s:.2f})" for p, s in zip(paths, scores) if s > threshold]
    assert len(refused) <= 0.02 * len(paths), (
        f"refused {len(refused)} of {len(paths)} unseen NIH images: {', '.join(refused)}"
    )


def test_serving_imports_no_machine_learning_library():
    code = (
        "import sys, dispredo_core.guard; "
        "bad = [m for m in ('sklearn', 'tensorflow', 'keras', 'scipy') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr or result.stdout


# --- fitting on synthetic images ----------------------------------------------------------------


def synthetic_xrays(count, size=32, seed=0):
    """Bright images with two darker 'lungs' that vary in place, size and noise: uint8 [N, S, S]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    images = []
    for _ in range(count):
        image = 0.75 + 0.05 * rng.normal()
        for centre in (0.3, 0.7):
            cx = centre + 0.03 * rng.normal()
            cy = 0.5 + 0.03 * rng.normal()
            r = 0.18 + 0.02 * rng.normal()
            image = image - (0.35 + 0.05 * rng.normal()) * (((xx - cx) / r) ** 2 + ((yy - cy) / (1.6 * r)) ** 2 < 1)
        image = image + 0.04 * rng.normal(size=(size, size))
        images.append(np.clip(np.round(image * 255), 0, 255).astype(np.uint8))
    return np.stack(images)


@pytest.fixture(scope="module")
def synthetic():
    pixels = synthetic_xrays(240)
    patients = np.repeat(np.arange(80), 3)
    return pixels, patients


@pytest.mark.parametrize("fraction", [0.01, 0.05])
def test_threshold_refuses_at_most_the_asked_fraction_of_held_out_scores(synthetic, fraction):
    pixels, patients = synthetic
    guard = fit(pixels, patients, refuse_fraction=fraction, folds=4, seed=3)
    held_out = np.empty(len(pixels))
    for train, test in _patient_folds(patients, 4, 3):
        assert not set(patients[train]) & set(patients[test])
        held_out[test] = _fit_arrays(pixels[train], 32).scores(pixels[test])
    refused = np.mean(held_out > guard.threshold)
    assert refused <= fraction
    assert refused == pytest.approx(guard.held_out_refusal_rate)
    assert guard.threshold in held_out  # an observed held-out score, not the training scores'
    assert guard.fitted_images == len(pixels) and guard.size == 32
    # Refitted on all images: new images like them pass, their negatives do not.
    fresh = synthetic_xrays(50, seed=9)
    assert np.mean(guard.scores(fresh) <= guard.threshold) >= 0.9
    assert not any(guard.accepts(255 - image) for image in fresh)


def test_save_load_round_trip_gives_identical_scores(synthetic, tmp_path):
    pixels, patients = synthetic
    guard = fit(pixels, patients, folds=4)
    guard.save(tmp_path / GUARD_FILE)
    loaded = InputGuard.load(tmp_path / GUARD_FILE)
    probe = np.concatenate([pixels[:20], 255 - pixels[:5], synthetic_xrays(5, seed=4)])
    np.testing.assert_array_equal(loaded.scores(probe), guard.scores(probe))
    assert loaded.description() == guard.description()
    assert loaded.threshold == guard.threshold and loaded.size == guard.size


def test_load_refuses_damaged_files(synthetic, tmp_path):
    pixels, patients = synthetic
    good = tmp_path / "good.npz"
    fit(pixels, patients, folds=4).save(good)
    data = good.read_bytes()

    cases = {
        "missing.npz": None,
        "garbage.npz": b"this is not a guard",
        "truncated.npz": data[: len(data) // 2],
        "empty.npz": b"",
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ValueError, match=r"[Ii]nput guard file .*"):
            InputGuard.load(path)

    single_array = tmp_path / "array.npy"
    np.save(single_array, np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        InputGuard.load(single_array)
    # A damaged member of a valid zip archive.
    corrupt = tmp_path / "corrupt.npz"
    middle = data.index(b"components.npy") + 200
    corrupt.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :])
    with pytest.raises(ValueError, match="Input guard file"):
        InputGuard.load(corrupt)

    with np.load(good) as stored:
        arrays = dict(stored)
    incomplete = tmp_path / "incomplete.npz"
    np.savez(incomplete, **{k: v for k, v in arrays.items() if k != "components"})
    with pytest.raises(ValueError, match="missing arrays components"):
        InputGuard.load(incomplete)
    mismatched = tmp_path / "mismatched.npz"
    np.savez(mismatched, **{**arrays, "mean_thumbnail": arrays["mean_thumbnail"][:-1]})
    with pytest.raises(ValueError, match="do not fit together"):
        InputGuard.load(mismatched)
    not_finite = tmp_path / "nan.npz"
    np.savez(not_finite, **{**arrays, "threshold": np.float64("nan")})
    with pytest.raises(ValueError, match="'threshold' is malformed"):
        InputGuard.load(not_finite)


def test_scores_check_the_input(shipped_guard):
    with pytest.raises(ValueError, match="64x64"):
        shipped_guard.scores(np.zeros((32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        shipped_guard.scores(np.zeros((64, 64), dtype=np.float32))
    assert shipped_guard.scores(np.zeros((3, 64, 64), dtype=np.uint8)).shape == (3,)


def test_fit_refuses_unusable_input():
    with pytest.raises(ValueError):
        fit(np.zeros((10, 32, 32), dtype=np.uint8), np.arange(10))
    with pytest.raises(ValueError):
        fit(np.zeros((200, 32, 16), dtype=np.uint8), np.arange(200))
    with pytest.raises(ValueError):
        fit(np.zeros((200, 32, 32), dtype=np.uint8), np.arange(199))
