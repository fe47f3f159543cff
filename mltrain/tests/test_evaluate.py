"""manage.py evaluate and mltrain.evaluation: figures equal scikit-learn's, reports saved with the version."""

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from diagnosis.lifecycle.models import ModelVersion
from dispredo_core.findings import FINDINGS
from dispredo_core.serving import ONNX_FILE
from mltrain import registry
from mltrain.evaluation import compute_report
from mltrain.tests.helpers import make_preprocessed, tiny_config


def known_input(seed=7, count=60):
    rng = np.random.default_rng(seed)
    labels = (rng.random((count, len(FINDINGS))) < 0.3).astype(np.uint8)
    labels[:, FINDINGS.index("Hernia")] = 0  # one class only: AUROC undefined, left out of the mean
    probabilities = np.clip(labels * 0.3 + rng.random((count, len(FINDINGS))) * 0.7, 0, 1)
    thresholds = {name: float(t) for name, t in zip(FINDINGS, rng.uniform(0.2, 0.7, len(FINDINGS)))}
    sources = np.where(np.arange(count) % 3, 64, 256)
    return labels, probabilities, thresholds, sources


def test_figures_equal_scikit_learns_on_a_known_input():
    labels, probabilities, thresholds, sources = known_input()

    report = compute_report(probabilities, labels, thresholds, sources)

    aurocs = []
    for i, name in enumerate(FINDINGS):
        row = report["findings"][name]
        y, p = labels[:, i], probabilities[:, i]
        flagged = (p >= thresholds[name]).astype(int)
        if name == "Hernia":
            assert np.isnan(row["auroc"])
        else:
            assert row["auroc"] == pytest.approx(roc_auc_score(y, p))
            aurocs.append(roc_auc_score(y, p))
            assert row["precision"] == pytest.approx(precision_score(y, flagged, zero_division=0))
            assert row["recall"] == pytest.approx(recall_score(y, flagged, zero_division=0))
            assert row["f1"] == pytest.approx(f1_score(y, flagged, zero_division=0))
        assert row["accuracy"] == pytest.approx(accuracy_score(y, flagged))
        tn, fp, fn, tp = confusion_matrix(y, flagged, labels=[0, 1]).ravel()
        assert row["confusion_matrix"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    assert report["mean_auroc"] == pytest.approx(np.mean(aurocs))
    assert report["findings_with_both_classes"] == len(FINDINGS) - 1
    cut = np.array([thresholds[name] for name in FINDINGS])
    assert report["flags_per_image"] == pytest.approx(np.mean([(row >= cut).sum() for row in probabilities]))
    assert report["findings_per_image"] == pytest.approx(labels.sum() / len(labels))
    assert report["prevalence"] == pytest.approx(labels.mean())
    assert report["mean_probability"] == pytest.approx(probabilities.mean())
    assert report["brier_score"] == pytest.approx(
        np.mean([brier_score_loss(labels[:, i], probabilities[:, i]) for i in range(len(FINDINGS))])
    )
    only_256 = sources == 256
    assert report["per_source"]["256"]["images"] == only_256.sum()
    assert report["per_source"]["256"]["auroc"]["Mass"] == pytest.approx(
        roc_auc_score(labels[only_256, FINDINGS.index("Mass")], probabilities[only_256, FINDINGS.index("Mass")])
    )


@pytest.fixture
def trained(tmp_path, settings):
    settings.DISPREDO_MODEL_DIR = tmp_path / "models"
    settings.DISPREDO_MLTRAIN_DIR = tmp_path / "mltrain"
    make_preprocessed(tmp_path / "mltrain" / "preprocessed")
    return registry.train_and_register(tiny_config(tmp_path, name="tiny", data_dir=None, activate=True), verbosity=0)


@pytest.mark.slow
@pytest.mark.django_db
def test_evaluate_saves_the_report_with_the_version_and_refuses_seen_patients(tmp_path, trained):
    from mltrain.export import onnx_session, run_onnx

    # A "test" split holding training patients is refused, and nothing is stored.
    leaky = tmp_path / "leaky"
    make_preprocessed(leaky)
    np.save(leaky / "test_patients.npy", np.load(leaky / "train_patients.npy")[:20])
    with pytest.raises(CommandError, match="trained on"):
        call_command("evaluate", "--version", "tiny", "--data-dir", str(leaky), verbosity=0, stdout=StringIO())
    assert ModelVersion.objects.get(name="tiny").evaluation == {}

    out = StringIO()
    call_command("evaluate", "--split", "test", verbosity=1, stdout=out)

    trained.refresh_from_db()
    report = trained.evaluation["test"]
    directory = registry.artefact_directory(trained)
    assert json.loads((directory / "evaluation_test.json").read_text()) == report
    assert (directory / "evaluation_test.md").read_text().startswith("# Evaluation of tiny on the test split")
    assert (directory / "roc_test.png").read_bytes()[:4] == b"\x89PNG"
    assert report["engine"] == "onnxruntime" and report["images"] == 20
    assert report["used_for_model_selection"] is False
    assert "mean AUROC" in out.getvalue()
    # The figures are those of the served ONNX model at the version's thresholds.
    data = tmp_path / "mltrain" / "preprocessed"
    probabilities, _ = run_onnx(onnx_session(directory / ONNX_FILE), np.load(data / "test_pixels.npy"))
    labels = np.load(data / "test_labels.npy")
    i = FINDINGS.index("Atelectasis")
    assert report["findings"]["Atelectasis"]["auroc"] == pytest.approx(roc_auc_score(labels[:, i], probabilities[:, i]))


@pytest.mark.django_db
def test_evaluate_explains_an_unknown_version():
    with pytest.raises(CommandError, match="No model version named 'nope'"):
        call_command("evaluate", "--version", "nope", verbosity=0, stdout=StringIO())


def test_patient_bootstrap_resamples_whole_patients_and_pairs_the_score_sets():
    from mltrain.metrics import interval, patient_bootstrap

    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(60), 2)  # two images per patient
    labels = (rng.random((120, 14)) < 0.3).astype(int)
    perfect = labels + rng.random((120, 14)) * 0.5  # ranks every positive above every negative
    noise = rng.random((120, 14))

    rounds = patient_bootstrap(labels, [perfect, noise], patients, rounds=200, seed=1)

    assert rounds.shape == (200, 2)
    np.testing.assert_allclose(rounds[:, 0], 1.0)
    low, high = interval(rounds[:, 1])
    assert 0.4 < low < 0.5 < high < 0.6
    # The same resamples: repeating with the seed repeats the figures.
    np.testing.assert_array_equal(rounds, patient_bootstrap(labels, [perfect, noise], patients, rounds=200, seed=1))


def test_weighted_auroc_is_auroc_on_the_images_repeated_by_their_weights():
    from mltrain.metrics import auroc, weighted_auroc

    rng = np.random.default_rng(4)
    labels = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 0])
    scores = np.round(rng.random(10), 1)  # one decimal: many ties
    weights = rng.integers(0, 4, (50, 10))
    weights[0] = labels * 2  # no negative left: undefined

    got = weighted_auroc(labels, scores, weights)

    assert np.isnan(got[0])
    for row, weight in zip(got[1:], weights[1:]):
        repeated = np.repeat(np.arange(10), weight)
        expected = auroc(labels[repeated], scores[repeated])
        assert row == pytest.approx(expected, abs=1e-12) or (np.isnan(row) and np.isnan(expected))
