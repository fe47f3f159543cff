"""Reliability and operating points from holdout scores (dispredo_core.reliability)."""

import numpy as np
import pytest

from dispredo_core.findings import FINDINGS
from dispredo_core.reliability import (
    HoldoutError,
    check_specificity,
    operating_point,
    patient_weights,
    reliability,
    specificity_threshold,
    weighted_auroc,
)


def test_the_specificity_threshold_keeps_that_share_of_negatives_below_it():
    negatives = np.arange(100) / 100  # 0.00 .. 0.99
    threshold = specificity_threshold(negatives, 0.95)
    assert threshold == pytest.approx(0.95)
    assert (negatives < threshold).mean() == 0.95
    # Ties cannot be split: the threshold moves above the whole tied run.
    tied = np.array([0.1] * 5 + [0.2] * 5)
    assert specificity_threshold(tied, 0.6) == float(np.nextafter(np.float32(0.2), np.float32(1)))
    assert (tied.astype(np.float32) < np.float32(specificity_threshold(tied, 0.6))).all()
    assert specificity_threshold(tied, 0.5) == 0.2
    assert specificity_threshold([], 0.95) == 1.0


def test_specificity_out_of_range_is_refused_with_its_value():
    with pytest.raises(HoldoutError, match=r"^The target specificity must be at least 0.5 and below 1, not 1\.$"):
        check_specificity(1.0)
    with pytest.raises(HoldoutError, match=r"^The target specificity must be a number between 0 and 1, not 'high'\.$"):
        check_specificity("high")
    assert check_specificity("0.9") == 0.9


def _holdout(seed=0, images=600, patients=300):
    rng = np.random.default_rng(seed)
    labels = (rng.random((images, len(FINDINGS))) < 0.15).astype(np.uint8)
    # Atelectasis separates well, Mass not at all; the rest in between.
    strength = np.linspace(0.0, 3.0, len(FINDINGS))[::-1]
    strength[FINDINGS.index("Mass")] = 0.0
    logits = rng.normal(size=labels.shape) + labels * strength
    return 1 / (1 + np.exp(-logits + 2)), labels, rng.integers(0, patients, images)


def test_reliability_marks_a_finding_by_its_interval_against_the_floor():
    probabilities, labels, patients = _holdout()
    figures = reliability(probabilities, labels, patients)
    assert figures["floor"] == 0.6
    atelectasis, mass = figures["findings"]["Atelectasis"], figures["findings"]["Mass"]
    assert atelectasis["auroc"] > 0.9 and atelectasis["low"] >= 0.6 and atelectasis["reliable"] is True
    assert 0.35 < mass["auroc"] < 0.65 and mass["low"] < 0.6 and mass["reliable"] is False
    for row in figures["findings"].values():
        assert row["low"] <= row["auroc"] <= row["high"]
        assert row["reliable"] == (row["low"] >= 0.6)
    # The point estimate is the plain Mann-Whitney AUROC.
    from sklearn.metrics import roc_auc_score

    i = FINDINGS.index("Effusion")
    assert figures["findings"]["Effusion"]["auroc"] == pytest.approx(roc_auc_score(labels[:, i], probabilities[:, i]))


def test_a_finding_without_positives_is_not_reliable():
    probabilities, labels, patients = _holdout()
    labels[:, FINDINGS.index("Hernia")] = 0
    row = reliability(probabilities, labels, patients)["findings"]["Hernia"]
    assert row == {"auroc": None, "low": None, "high": None, "positives": 0, "reliable": False}
    point = operating_point(probabilities, labels, patients, 0.9)["findings"]["Hernia"]
    assert point["sensitivity"] == [None, None, None]


def test_the_operating_point_states_the_sensitivity_it_buys_with_intervals():
    probabilities, labels, patients = _holdout()
    point = operating_point(probabilities, labels, patients, 0.9)
    assert point["target_specificity"] == 0.9
    for i, name in enumerate(FINDINGS):
        row = point["findings"][name]
        negatives = probabilities[labels[:, i] == 0, i]
        positives = probabilities[labels[:, i] == 1, i]
        assert (negatives < row["threshold"]).mean() >= 0.9
        assert row["specificity"][0] == pytest.approx((negatives < row["threshold"]).mean())
        assert row["sensitivity"][0] == pytest.approx((positives >= row["threshold"]).mean())
        for estimate, low, high in (row["sensitivity"], row["specificity"]):
            assert low <= estimate <= high
    # A stricter target raises every threshold and buys less sensitivity.
    strict = operating_point(probabilities, labels, patients, 0.98)
    for name in FINDINGS:
        assert strict["findings"][name]["threshold"] >= point["findings"][name]["threshold"]
        assert strict["findings"][name]["sensitivity"][0] <= point["findings"][name]["sensitivity"][0]


def test_patient_weights_draw_whole_patients():
    patients = np.array([7, 7, 7, 3, 9, 9])
    weights = patient_weights(patients, rounds=50, seed=2)
    assert weights.shape == (50, 6)
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 1] == weights[:, 2]).all()
    assert (weights[:, 4] == weights[:, 5]).all()
    # Each resample draws as many patients as there are.
    assert (weights[:, [0, 3, 4]].sum(axis=1) == 3).all()
    labels = np.array([1, 0, 1, 0, 1, 0])
    assert np.isnan(weighted_auroc(np.zeros(6), np.arange(6), weights[:1]))[0]
    assert 0 <= np.nanmin(weighted_auroc(labels, np.arange(6), weights)) <= 1


def test_weights_a_block_at_a_time_are_the_same_draws(monkeypatch):
    # Memory is bounded by drawing the resamples a block of rounds at a time; the draws, and so
    # every interval, are those of all rounds at once.
    from dispredo_core import reliability

    rng = np.random.default_rng(3)
    probabilities, labels = rng.random((300, 14)), (rng.random((300, 14)) < 0.2).astype(int)
    patients = rng.integers(0, 120, 300)
    whole = reliability.patient_weights(patients, rounds=40, seed=1)
    blocks = list(reliability.weight_blocks(patients, rounds=40, seed=1, block_rounds=7))
    assert [len(block) for block in blocks] == [7, 7, 7, 7, 7, 5]
    assert np.array_equal(np.concatenate(blocks), whole)
    at_once = reliability.reliability(probabilities, labels, patients), reliability.operating_point(probabilities, labels, patients)
    monkeypatch.setattr(reliability, "BLOCK_CELLS", 300 * 37)  # 27 blocks of 37 rounds, and one of 1
    assert (reliability.reliability(probabilities, labels, patients), reliability.operating_point(probabilities, labels, patients)) == at_once
