"""The paired comparison of two score arrays, and manage.py compare of two registered versions on
the patients of a preprocessed folder that neither trained on."""

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from diagnosis.lifecycle.registry import register_model_version
from dispredo_core.comparison import LEFT_OUT, compare_scores
from dispredo_core.findings import FINDINGS
from dispredo_site.testing.tiny_model import build_tiny_artefact
from mltrain.dataset import FORMAT_VERSION

SIZE = 32


@pytest.fixture(autouse=True)
def fresh_models():
    """Loaded models are cached by ModelVersion pk, and pks repeat between tests: start without any."""
    from diagnosis.lifecycle import predictors as inference

    inference.clear_cache()
    yield
    inference.clear_cache()


def columns(*pairs):
    """[N, 14] label and score arrays: the given columns first, the rest left out."""
    n = len(pairs[0][0])
    labels = np.full((n, len(FINDINGS)), LEFT_OUT)
    candidate, against = np.zeros((n, len(FINDINGS))), np.zeros((n, len(FINDINGS)))
    for index, (truth, ours, theirs) in enumerate(pairs):
        labels[:, index], candidate[:, index], against[:, index] = truth, ours, theirs
    return labels, candidate, against


def test_the_comparison_gives_the_aurocs_of_each_and_their_mean_over_findings_with_both_classes():
    labels, candidate, against = columns(
        # Positives 0.9 and 0.4 against negatives 0.1 and 0.6: 3 of 4 pairs right; constant scores: 0.5.
        ([1, 0, 1, 0], [0.9, 0.1, 0.4, 0.6], [0.5, 0.5, 0.5, 0.5]),
        # Ties count half (0.5); the fourth image is left out for this finding (not assessable).
        ([1, 1, 0, LEFT_OUT], [0.3, 0.3, 0.3, 0.9], [0.9, 0.2, 0.1, 0.0]),
        ([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]),  # one class only
    )

    result = compare_scores(labels, candidate, against, patients=[1, 2, 3, 4], rounds=200)

    first, second, third = (result["findings"][name] for name in FINDINGS[:3])
    assert (first["candidate"], first["against"], first["difference"]) == (0.75, 0.5, 0.25)
    assert (second["candidate"], second["against"], second["difference"]) == (0.5, 1.0, -0.5)
    assert (second["positives"], second["negatives"]) == (2, 1)
    assert third == {"positives": 0, "negatives": 4, "candidate": None, "against": None, "difference": None,
                     "low": None, "high": None}
    assert result["findings"]["Hernia"]["positives"] == result["findings"]["Hernia"]["negatives"] == 0
    mean = result["mean"]
    assert mean["findings"] == 2
    assert (mean["candidate"], mean["against"], mean["difference"]) == (0.625, 0.75, -0.125)
    assert mean["low"] <= -0.125 <= mean["high"]
    assert (result["images"], result["patients"]) == (4, 4)


def test_perfect_against_inverted_scores_differ_by_minus_one_with_a_tight_interval():
    rng = np.random.default_rng(0)
    labels = (rng.random((90, len(FINDINGS))) < 0.3).astype(int)
    labels[:2], labels[2:4] = 1, 0  # both classes in every finding
    perfect = labels + rng.random(labels.shape) * 0.5
    patients = np.repeat(np.arange(30), 3)

    result = compare_scores(labels, 1 - perfect, perfect, patients, rounds=300)

    assert all(row["difference"] == -1.0 and row["low"] == row["high"] == -1.0 for row in result["findings"].values())
    assert {key: result["mean"][key] for key in ("findings", "candidate", "against", "difference", "low", "high")} == {
        "findings": 14, "candidate": 0.0, "against": 1.0, "difference": -1.0, "low": -1.0, "high": -1.0,
    }
    assert result["mean"]["share_ahead"] == 0.0


def test_the_interval_is_the_paired_bootstrap_of_the_mean_difference_and_a_mask_leaves_images_out():
    """The same resamples as ``mltrain.metrics.patient_bootstrap`` (evaluate's): paired, whole patients."""
    from mltrain.metrics import interval, patient_bootstrap

    rng = np.random.default_rng(3)
    labels = (rng.random((120, len(FINDINGS))) < 0.25).astype(int)
    labels[:, -1] = 0  # Hernia absent throughout: no AUROC, not in the mean
    good, noise = labels + rng.random(labels.shape), rng.random(labels.shape)
    patients = np.repeat(np.arange(40), 3)

    result = compare_scores(labels, good, noise, patients, rounds=250, seed=2)

    rounds = patient_bootstrap(labels, [good, noise], patients, rounds=250, seed=2)
    np.testing.assert_allclose([result["mean"]["low"], result["mean"]["high"]], interval(rounds[:, 0] - rounds[:, 1]))
    assert result["mean"]["findings"] == 13
    mask = np.ones(labels.shape, bool)
    mask[:60, 0] = False
    masked = labels.copy()
    masked[:60, 0] = LEFT_OUT
    assert compare_scores(labels, good, noise, patients, mask=mask) == compare_scores(masked, good, noise, patients)
    with pytest.raises(ValueError, match=r"must be \[N, 14\]"):
        compare_scores(labels[:, :3], good[:, :3], noise[:, :3], patients)


def preprocessed(directory, values, present):
    """A preprocessed folder whose test split holds one uniform image per patient (ids 1..N), every
    finding present where ``present``; bright images are the present ones."""
    directory.mkdir(parents=True)
    count = len(values)
    arrays = {
        "pixels": np.stack([np.full((SIZE, SIZE), value, np.uint8) for value in values]),
        "labels": np.repeat(np.asarray(present, np.uint8)[:, None], len(FINDINGS), axis=1),
        "patients": np.arange(1, count + 1, dtype=np.int64),
        "names": np.array([f"{p:08d}_000.png" for p in range(1, count + 1)]),
        "source_sizes": np.full(count, SIZE, np.int32),
    }
    for name, array in arrays.items():
        np.save(directory / f"test_{name}.npy", array)
    (directory / "manifest.json").write_text(
        json.dumps({"format_version": FORMAT_VERSION, "size": SIZE, "findings": list(FINDINGS), "seed": 0})
    )
    return directory


@pytest.fixture
def data(tmp_path):
    values = [20, 40, 60, 80, 100, 120, 150, 170, 190, 210, 230, 250]
    return preprocessed(tmp_path / "data", values, [value > 128 for value in values])


def version(tmp_path, name, response, *, active=False, size=SIZE, trained=()):
    build_tiny_artefact(tmp_path / name, name=name, response=response, size=size, patients={"train": list(trained)})
    return register_model_version(tmp_path / name, activate=active)


@pytest.mark.django_db
def test_compare_prints_each_finding_and_the_mean_difference_on_patients_neither_trained_on(tmp_path, data):
    version(tmp_path, "bright", "bright", active=True, trained=[1, 12])
    version(tmp_path, "dark", "dark", trained=[2, 99])
    out = StringIO()

    call_command("compare", "--candidate", "dark", "--data", str(data), stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[1] == (
        f"dark (candidate) against bright on the test split of {data}: 9 images of 9 patients neither trained on "
        "(3 images of 3 patients left out)."
    )
    assert lines[2].split() == ["AUROC", "of", "candidate", "against", "difference", "(95", "%", "interval)"]
    assert lines[3].split() == ["Atelectasis", "0.000", "1.000", "-1.000", "(-1.000", "to", "-1.000)"]
    assert lines[-1] == (
        "Mean AUROC over the 14 findings with both classes: dark 0.000, bright 1.000; difference -1.000 "
        "(95 % interval -1.000 to -1.000, 1000 paired resamples of the patients), on 9 images of 9 patients."
    )


@pytest.mark.django_db
def test_compare_scores_each_version_at_its_own_input_size(tmp_path, data):
    from mltrain.comparison import compare_versions

    bright = version(tmp_path, "bright", "bright", active=True)
    small = version(tmp_path, "bright-16", "bright", size=16)
    large = version(tmp_path, "bright-64", "bright", size=64)

    result = compare_versions(small, bright, data_dir=data)

    assert result["comparison"]["mean"]["difference"] == 0.0 and result["comparison"]["images"] == 12
    assert result["notes"] == ["bright-16 scored at its own 16 px, reduced from the data's 32 px."]
    with pytest.raises(CommandError) as refused:
        call_command("compare", "--candidate", large.name, "--data", str(data), stdout=StringIO())
    assert str(refused.value) == (
        "Model bright-64 takes 64 px images but the data is 32 px. Run manage.py preprocess --size 64 "
        "(or larger) --out <folder> and pass --data <folder>."
    )


@pytest.mark.django_db
def test_compare_refuses_when_no_patient_is_left(tmp_path, data):
    version(tmp_path, "bright", "bright", trained=range(1, 7))
    version(tmp_path, "dark", "dark", trained=range(7, 13))

    with pytest.raises(CommandError) as refused:
        call_command("compare", "--candidate", "dark", "--against", "bright", "--data", str(data), stdout=StringIO())

    assert str(refused.value) == (
        f"No patient is left to compare on: all 12 patients of the test split in {data} were trained on by dark "
        "or bright (their patients.json train and val lists). Compare on patients neither version saw, such as "
        "the test split of the data they were trained on."
    )
    with pytest.raises(CommandError, match="No model version is active; name the one to compare against with --against."):
        call_command("compare", "--candidate", "dark", "--data", str(data), stdout=StringIO())


@pytest.mark.slow
@pytest.mark.django_db
def test_train_activate_is_refused_by_the_gate_and_forced_with_force(tmp_path, data_dir, settings):
    """``manage.py train --activate`` goes through the gate. A margin below -1 refuses every
    candidate, whatever a one-epoch network scores: the refusal path of the command itself."""
    from diagnosis.lifecycle.models import ModelVersion
    from diagnosis.records.models import AuditEvent
    from dispredo_site.testing.gate_clinic import clinic

    settings.MEDIA_ROOT = tmp_path / "media"
    version(tmp_path, "bright", "bright", active=True)
    clinic()
    settings.DISPREDO_GATE_MARGIN = -1.5
    options = ["--size", str(SIZE), "--epochs", "1", "--batch-size", "8", "--data-dir", str(data_dir), "--activate"]

    with pytest.raises(CommandError) as refused:
        call_command("train", *options, "--name", "refused", verbosity=0, stdout=StringIO())

    assert str(refused.value).startswith("refused is worse than bright on 8 held-out clinic readings: mean AUROC ")
    assert str(refused.value).endswith(
        "the margin is -1.5). refused is registered but not active; manage.py activate --version refused "
        "--force activates it anyway."
    )
    assert not ModelVersion.objects.get(name="refused").is_active
    out = StringIO()
    call_command("train", *options, "--name", "forced", "--force", stdout=out)
    assert "The gate was overridden." in out.getvalue()
    assert ModelVersion.active().name == "forced"
    assert AuditEvent.objects.get(object_id=ModelVersion.active().pk).detail.startswith("activated; gate overridden: ")
