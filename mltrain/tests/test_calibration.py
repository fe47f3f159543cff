"""Aligning and calibrating ensemble members, folded into their heads (``mltrain.calibration``),
and ``manage.py calibrate`` for an ensemble trained without it."""

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from dispredo_core.artefact import read_metadata
from mltrain import calibration, registry
from mltrain.members import load_members
from mltrain.metrics import auroc
from mltrain.tests.helpers import make_preprocessed, tiny_config


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_platt_parameters_recover_a_known_rescaling():
    rng = np.random.default_rng(0)
    scores = rng.normal(0.0, 1.5, (20000, 1))
    labels = (rng.random((20000, 1)) < _sigmoid(2.0 * scores - 1.0)).astype(int)

    slopes, intercepts = calibration.platt_parameters(scores, labels)

    assert slopes[0] == pytest.approx(2.0, abs=0.1)
    assert intercepts[0] == pytest.approx(-1.0, abs=0.1)


def test_one_class_columns_keep_their_scores_and_inverted_ones_become_constant():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(200, 2))
    labels = np.zeros((200, 2), dtype=int)
    labels[:, 1] = scores[:, 1] < -0.5  # higher score, fewer positives

    slopes, intercepts = calibration.platt_parameters(scores, labels)

    assert (slopes[0], intercepts[0]) == (1.0, 0.0)
    prevalence = labels[:, 1].mean()
    assert slopes[1] == 0.0
    assert intercepts[1] == pytest.approx(np.log(prevalence / (1 - prevalence)))


def test_members_on_different_scales_are_aligned_before_pooling():
    rng = np.random.default_rng(2)
    signal = [rng.normal(size=(400, 1)) for _ in range(2)]
    labels = [(rng.random((400, 1)) < _sigmoid(1.5 * s - 1.0)).astype(int) for s in signal]
    # The same quality of ranking, but member 2's logits are 6 times wider and shifted.
    raw = [_sigmoid(signal[0]), _sigmoid(6.0 * signal[1] + 3.0)]

    heads, calibrated, figures = calibration.fit_ensemble(raw, labels)

    pooled_labels = np.concatenate(labels)[:, 0]
    before = auroc(pooled_labels, np.concatenate(raw)[:, 0])
    after = auroc(pooled_labels, np.concatenate(calibrated)[:, 0])
    each = np.mean([auroc(y[:, 0], p[:, 0]) for y, p in zip(labels, raw)])
    assert before < each - 0.03  # pooling unaligned scores loses ranking
    assert after == pytest.approx(each, abs=0.02)
    assert figures["members"][1]["scales"][0] == pytest.approx(6.0 * figures["members"][0]["scales"][0], rel=0.2)
    # What each head will do to its member's output is what was scored.
    for member, (slopes, intercepts), scores in zip(raw, heads, calibrated):
        np.testing.assert_allclose(calibration.apply(member, slopes, intercepts), scores, atol=1e-5)
    # Calibrated: the mean probability is close to the prevalence.
    assert np.concatenate(calibrated).mean() == pytest.approx(pooled_labels.mean(), abs=0.03)


def test_members_that_share_a_fold_are_averaged_before_the_shared_map():
    rng = np.random.default_rng(3)
    signal = [rng.normal(size=(600, 1)) for _ in range(2)]
    labels = [(rng.random((600, 1)) < _sigmoid(1.5 * s - 2.0)).astype(int) for s in signal]
    # Two members per fold (members 0, 1 left out fold 0; 2, 3 fold 1), each the signal plus its own
    # noise, on different scales: their average ranks better than either.
    raw = [_sigmoid(scale * (signal[fold] + rng.normal(size=(600, 1)))) for fold, scale in ((0, 1.0), (1, 3.0), (0, 0.5), (1, 2.0))]
    member_folds = [0, 1, 0, 1]

    heads, calibrated, figures = calibration.fit_ensemble(raw, labels, member_folds)

    assert len(heads) == 4 and len(calibrated) == 2
    assert [member["fold"] for member in figures["members"]] == [1, 2, 1, 2]
    # Each fold's figures are the mean of what its members' calibrated heads output, as served.
    for fold, scores in enumerate(calibrated):
        members = [m for m, f in enumerate(member_folds) if f == fold]
        expected = np.mean([calibration.apply(raw[m], *heads[m]) for m in members], axis=0)
        np.testing.assert_allclose(scores, expected, atol=1e-5)
    pooled_labels = np.concatenate(labels)[:, 0]
    single = np.mean([auroc(labels[f][:, 0], raw[m][:, 0]) for m, f in enumerate(member_folds)])
    assert auroc(pooled_labels, np.concatenate(calibrated)[:, 0]) > single + 0.02


def test_every_fold_needs_a_member():
    raw = [np.full((4, 1), 0.3), np.full((4, 1), 0.6)]
    labels = [np.zeros((4, 1)), np.zeros((4, 1)), np.zeros((4, 1))]
    with pytest.raises(ValueError, match="Every fold needs at least one member that left it out."):
        calibration.fit_ensemble(raw, labels, member_folds=[0, 1])


def test_calibration_folded_into_the_head_equals_rescaling_the_outputs():
    from mltrain.config import TrainConfig
    from mltrain.networks import build_model

    network = build_model(TrainConfig(size=32, alpha=0.25), outputs=14)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (6, 32, 32, 1)).astype(np.float32)
    before = network.predict(images, verbose=0)
    slopes = np.linspace(0.0, 3.0, 14)
    intercepts = np.linspace(-2.0, 1.0, 14)

    calibration.calibrate_head(network, slopes, intercepts)

    np.testing.assert_allclose(network.predict(images, verbose=0), calibration.apply(before, slopes, intercepts), atol=1e-5)


@pytest.mark.slow
@pytest.mark.django_db
def test_calibrate_makes_a_calibrated_copy_of_an_uncalibrated_ensemble(tmp_path, data_dir, capsys):
    raw = registry.train_and_register(tiny_config(tmp_path, name="raw", folds=2, epochs=2, calibrate=False), verbosity=0)
    assert raw.metrics["calibration"] is None
    assert raw.metrics["val"]["mean_auroc"] == raw.metrics["uncalibrated_out_of_fold_mean_auroc"]

    call_command("calibrate", "--version", "raw", "--name", "cal")

    assert capsys.readouterr().out.startswith("Registered cal: out-of-fold mean AUROC ")
    cal = registry.find_version("cal")
    # The folds were rebuilt exactly: the same members score the same out-of-fold images.
    assert cal.metrics["uncalibrated_out_of_fold_mean_auroc"] == pytest.approx(raw.metrics["val"]["mean_auroc"], abs=1e-6)
    assert cal.metrics["training"]["calibrated_from"] == "raw"
    metadata = read_metadata(registry.artefact_directory(cal))
    assert metadata["config"]["calibrate"] is True
    assert metadata["threshold_method"].startswith("specificity 0.95 on the holdout negatives: calibrated out-of-fold predictions")
    # Each calibrated member is its raw member with the head rescaled as recorded.
    pixels = np.load(data_dir / "test_pixels.npy").astype(np.float32)[..., None]
    raw_directory = registry.artefact_directory(raw)
    raw_members = [member.network for member in load_members(raw_directory, read_metadata(raw_directory))]
    cal_members = [member.network for member in load_members(registry.artefact_directory(cal), metadata)]
    fitted = cal.metrics["calibration"]
    for index, (before, after) in enumerate(zip(raw_members, cal_members)):
        member = fitted["members"][index]
        slopes, intercepts = calibration.head_parameters(
            np.array(member["centres"]), np.array(member["scales"]), np.array(fitted["slopes"]), np.array(fitted["intercepts"])
        )
        expected = calibration.apply(before.predict(pixels, verbose=0), slopes, intercepts)
        np.testing.assert_allclose(after.predict(pixels, verbose=0), expected, atol=1e-4)

    with pytest.raises(CommandError, match="^cal is already calibrated.$"):
        call_command("calibrate", "--version", "cal", "--name", "again")
    with pytest.raises(CommandError, match="^No model version named 'missing'; list them in the admin.$"):
        call_command("calibrate", "--version", "missing", "--name", "again")
    single = registry.train_and_register(tiny_config(tmp_path, name="single"), verbosity=0)
    with pytest.raises(CommandError, match=r"^single is not a cross-validated ensemble \(trained without --folds\)"):
        call_command("calibrate", "--version", single.name, "--name", "again")
    other = make_preprocessed(tmp_path / "other", seed=5, balanced=False)
    with pytest.raises(CommandError, match=r"\(its seed, splits differ\): its folds cannot be rebuilt. Pass --data-dir with that data.$"):
        call_command("calibrate", "--version", "raw", "--name", "again", "--data-dir", str(other))
