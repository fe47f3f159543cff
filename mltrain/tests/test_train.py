"""manage.py train and mltrain.training: artefacts that load, repeat with a seed, register safely."""

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from diagnosis.lifecycle.models import ModelVersion
from dispredo_core.artefact import ArtefactError, read_metadata
from dispredo_core.findings import FINDINGS
from dispredo_core.serving import HOLDOUT_FILE, INPUT_NAME, METADATA_FILE, ONNX_FILE
from mltrain import registry, training
from mltrain.batches import batches
from mltrain.config import TrainConfig
from mltrain.members import load_members
from mltrain.tests.helpers import SIZE, make_preprocessed, tiny_config


@pytest.fixture
def data_dir(tmp_path, settings):
    # Overrides conftest's: per-finding training here needs the balanced sets.
    settings.DISPREDO_MODEL_DIR = tmp_path / "models"
    settings.DISPREDO_MLTRAIN_DIR = tmp_path / "mltrain"
    return make_preprocessed(tmp_path / "data")


@pytest.mark.parametrize(
    "changes, word",
    [
        ({"strategy": "ensemble"}, "ensemble"),
        ({"size": 16}, "16"),
        ({"alpha": 0.3}, "0.3"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"dropout": 1.5}, "dropout"),
        ({"seed": -2}, "seed"),
        ({"name": "../escape"}, "escape"),
    ],
)
def test_config_rejects_bad_values_by_name(changes, word):
    with pytest.raises(ValueError, match=word.replace(".", r"\.")):
        TrainConfig(**changes)


@pytest.mark.slow
@pytest.mark.django_db
def test_training_writes_an_artefact_that_loads_with_its_labels_and_thresholds(tmp_path, data_dir):
    from mltrain.export import AGREEMENT_TOLERANCE, onnx_session, run_onnx

    version = registry.train_and_register(tiny_config(tmp_path, name="tiny"), verbosity=0)

    directory = registry.artefact_directory(version)
    assert directory == tmp_path / "models" / "tiny"
    metadata = read_metadata(directory)
    assert metadata["findings"] == list(FINDINGS)
    assert metadata["thresholds"] == version.thresholds
    assert set(version.thresholds) == set(FINDINGS)
    assert all(0.0 <= t <= 1.0 for t in version.thresholds.values())
    assert metadata["input_size"] == SIZE
    assert metadata["config"]["seed"] == 3
    assert metadata["data_manifest"]["source"] == "synthetic"
    assert version.metrics["val"]["findings"]["Hernia"]["threshold"] == version.thresholds["Hernia"]
    # The validation split's scores by the served graph are its holdout scores: they give the thresholds
    # (specificity 0.95) and the reliability, copied to the version.
    with np.load(directory / HOLDOUT_FILE) as stored:
        holdout, labels = stored["probabilities"], stored["labels"].astype(bool)
    val_probabilities, _ = run_onnx(onnx_session(directory / ONNX_FILE), np.load(data_dir / "val_pixels.npy"))
    np.testing.assert_allclose(holdout, val_probabilities, atol=1e-6)
    i = FINDINGS.index("Effusion")
    assert (holdout[~labels[:, i], i] < version.thresholds["Effusion"]).mean() >= 0.95
    assert version.operating_point["target_specificity"] == 0.95
    assert version.reliability == metadata["reliability"] and set(version.reliability["findings"]) == set(FINDINGS)
    # Too few training images to fit an input guard: the artefact says so instead.
    assert metadata["guard"] is None
    assert metadata["guard_not_fitted"].startswith("Too few images (")
    # manage.py holdout is for ensembles made before holdout scores: a single network cannot get them back.
    with pytest.raises(CommandError, match=r"^tiny is not a cross-validated ensemble \(trained without --folds\): its holdout"):
        call_command("holdout", "--version", "tiny")
    assert not version.is_active
    # Nothing half-written left beside it.
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["tiny"]

    models = [member.network for member in load_members(directory, metadata)]
    assert len(models) == 1 and models[0].output_shape == (None, len(FINDINGS))

    # The exported serving model agrees with the Keras one within the stated tolerance.
    pixels = np.load(data_dir / "test_pixels.npy")
    session = onnx_session(directory / ONNX_FILE)
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    probabilities, cams = run_onnx(session, pixels)
    expected = models[0].predict(pixels.astype(np.float32)[..., None], verbose=0)
    assert probabilities.shape == (len(pixels), len(FINDINGS))
    assert cams.shape[0] == len(pixels) and cams.shape[-1] == len(FINDINGS)
    assert np.max(np.abs(probabilities - expected)) <= AGREEMENT_TOLERANCE
    assert metadata["metrics"]["export"]["max_abs_probability_difference"] <= AGREEMENT_TOLERANCE


@pytest.mark.slow
@pytest.mark.django_db
def test_the_same_seed_repeats_a_run(tmp_path, data_dir):
    from mltrain.export import onnx_session, run_onnx

    first = registry.train_and_register(tiny_config(tmp_path, name="first"), verbosity=0)
    second = registry.train_and_register(tiny_config(tmp_path, name="second"), verbosity=0)

    assert first.thresholds == second.thresholds
    assert first.metrics["val"] == second.metrics["val"]
    pixels = np.load(data_dir / "test_pixels.npy")
    a, _ = run_onnx(onnx_session(registry.artefact_directory(first) / ONNX_FILE), pixels)
    b, _ = run_onnx(onnx_session(registry.artefact_directory(second) / ONNX_FILE), pixels)
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.django_db
def test_per_finding_joins_fourteen_models_into_one_serving_graph(tmp_path, data_dir, monkeypatch):
    from mltrain import networks
    from mltrain.export import onnx_session, run_onnx

    fitted = []

    def quick_fit(config, outputs, loss, train_pixels, train_labels, val_pixels, val_labels, findings, *args, **kwargs):
        # Fitting 14 networks takes minutes on 2 cores: check each gets its own finding's data, untrained.
        x, y = batches(train_pixels, train_labels, config.batch_size, config.seed)[0]
        fitted.append((findings, tuple(x.shape[1:]), int(y.shape[-1])))
        figures = {"epochs_run": 1, "best_epoch": 1, "best_val_mean_auroc": 0.5, "seconds": 1.0, "images_seen": 1}
        return networks.build_model(config, outputs=outputs), figures

    monkeypatch.setattr(training, "fit_network", quick_fit)
    version = registry.train_and_register(tiny_config(tmp_path, name="pf", strategy="per-finding"), verbosity=0)

    assert fitted == [((finding,), (SIZE, SIZE, 1), 1) for finding in FINDINGS]
    directory = registry.artefact_directory(version)
    metadata = read_metadata(directory)
    assert metadata["keras_files"] == [f"{finding}.keras" for finding in FINDINGS]
    models = [member.network for member in load_members(directory, metadata)]
    pixels = np.load(data_dir / "val_pixels.npy")[:4]
    probabilities, cams = run_onnx(onnx_session(directory / ONNX_FILE), pixels)
    assert probabilities.shape == (4, 14) and cams.shape[-1] == 14
    # Column i of the served graph is the i-th finding's own model.
    for finding in ("Atelectasis", "Effusion", "Hernia"):
        index = FINDINGS.index(finding)
        expected = np.asarray(models[index](pixels.astype(np.float32)[..., None], training=False))[:, 0]
        np.testing.assert_allclose(probabilities[:, index], expected, atol=1e-4)


@pytest.mark.django_db
def test_a_failure_while_writing_leaves_nothing_registered(tmp_path, data_dir, monkeypatch):
    from mltrain import networks

    def untrained(config, data_dir, stream, verbosity, run=None):
        return [networks.build_model(config)], {"multilabel": {"seconds": 1.0, "images_seen": 1}}, None

    def broken_export(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(training, "train_multilabel", untrained)
    monkeypatch.setattr("mltrain.export.export_onnx", broken_export)

    with pytest.raises(RuntimeError, match="disk full"):
        registry.train_and_register(tiny_config(tmp_path, name="broken"), verbosity=0)

    assert not ModelVersion.objects.exists()
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.django_db
def test_a_half_written_artefact_is_refused_by_the_registry(tmp_path):
    partial = tmp_path / "half"
    partial.mkdir()
    (partial / ONNX_FILE).write_bytes(b"not yet")

    with pytest.raises(ArtefactError, match="metadata.json"):
        registry.register(partial)

    assert not ModelVersion.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db
def test_train_command_registers_and_activates(tmp_path, data_dir):
    out = StringIO()
    call_command(
        "train",
        "--size", str(SIZE), "--alpha", "0.25", "--epochs", "1", "--batch-size", "8", "--seed", "1",
        "--data-dir", str(data_dir), "--name", "cmd", "--activate",
        verbosity=1, stdout=out,
    )
    version = ModelVersion.objects.get(name="cmd")
    assert version.is_active
    text = out.getvalue()
    assert "epoch 1/1" in text and "mean AUROC" in text and "Registered model version cmd" in text


@pytest.mark.django_db
def test_train_command_explains_a_size_mismatch(tmp_path, data_dir):
    with pytest.raises(CommandError, match="preprocess --size 64"):
        call_command("train", "--size", "64", "--data-dir", str(data_dir), verbosity=0, stdout=StringIO())


@pytest.mark.django_db
def test_train_command_explains_missing_data(tmp_path, settings):
    settings.DISPREDO_MLTRAIN_DIR = tmp_path / "nothing"
    with pytest.raises(CommandError, match="preprocess"):
        call_command("train", verbosity=0, stdout=StringIO())


@pytest.mark.django_db
def test_activating_another_version_changes_the_active_one(tmp_path):
    first = ModelVersion.objects.create(name="a", artefact_path=str(tmp_path / "a"), is_active=True)
    second = ModelVersion.objects.create(name="b", artefact_path=str(tmp_path / "b"))

    second.activate()

    assert ModelVersion.active() == second
    first.refresh_from_db()
    assert not first.is_active


def _png(size=48, value=120):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(patient, data):
    from diagnosis.intake.scoring import score_xray
    from diagnosis.intake.storing import store_xray
    from dispredo_core.imaging import open_xray

    image = open_xray(data)
    xray = store_xray(patient=patient, data=data, original_name="x.png", image=image, uploaded_by=None)
    score_xray(xray, image)
    return xray


@pytest.mark.slow
@pytest.mark.django_db
def test_the_web_app_scores_uploads_with_the_active_trained_version(tmp_path, data_dir, settings):
    from diagnosis.lifecycle import predictors as inference
    from diagnosis.lifecycle.registry import register_model_version
    from diagnosis.records.models import Patient, Prediction

    settings.MEDIA_ROOT = tmp_path / "media"
    inference.clear_cache()
    trained = registry.train_and_register(tiny_config(tmp_path, name="trained", activate=True), verbosity=0)
    patient = Patient.objects.create(mrn="T-1", name="Test Patient")

    first = _upload(patient, _png())

    predictions = Prediction.objects.filter(xray=first)
    assert predictions.count() == len(FINDINGS)
    for prediction in predictions:
        assert prediction.model_version == trained
        assert prediction.flagged == (
            trained.is_reliable(prediction.finding) and prediction.probability >= trained.thresholds[prediction.finding]
        )

    # Another version (same weights, every threshold 0 and every finding reliable: everything flagged),
    # activated: later uploads use it.
    import shutil

    other_dir = tmp_path / "models" / "other"
    shutil.copytree(registry.artefact_directory(trained), other_dir)
    metadata = json.loads((other_dir / METADATA_FILE).read_text())
    for row in metadata["reliability"]["findings"].values():
        row["reliable"] = True
    metadata.update(name="other", thresholds={name: 0.0 for name in FINDINGS})
    (other_dir / METADATA_FILE).write_text(json.dumps(metadata))
    other = register_model_version(other_dir)
    other.activate()

    second = _upload(patient, _png(value=60))

    assert {p.model_version for p in Prediction.objects.filter(xray=second)} == {other}
    assert Prediction.objects.filter(xray=second, flagged=True).count() == len(FINDINGS)
    assert {p.model_version for p in Prediction.objects.filter(xray=first)} == {trained}
    inference.clear_cache()
