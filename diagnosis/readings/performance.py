"""How a model version does at this clinic: its stored predictions against the signed-off readings.

Per finding, the X-rays whose current reading is signed off and marks the finding present
(positive) or absent (negative); "not assessable" leaves the X-ray out of that finding. At the
version's threshold: the counts, sensitivity and specificity with 95 % intervals, and, where there
are at least ``MIN_PER_CLASS`` positives and negatives, AUROC with a 95 % patient-bootstrap
interval. Resamples draw the X-rays' patients (``reliability.patient_weights``), so several X-rays
of one patient do not count as independent evidence, the same way the version's own figures on
unseen patients were made.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.readings.models import Mark, Reading
from diagnosis.records.models import Prediction
from dispredo_core.findings import DISPLAY_NAMES, FINDINGS
from dispredo_core.reliability import LEVEL, ROUNDS, _number, _rate, interval, patient_weights, weighted_auroc

# AUROC (and its interval) is shown only with at least this many positives and as many negatives.
MIN_PER_CLASS = 5
# The normal quantile of a two-sided 95 % interval, for the Wilson score interval.
Z_95 = 1.959963984540054


@dataclass
class FindingPerformance:
    finding: str
    reliable: bool
    threshold: float
    positives: int = 0
    negatives: int = 0
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    true_negatives: int = 0
    # [estimate, low, high] as fractions, or None without positives (negatives).
    sensitivity: list | None = None
    specificity: list | None = None
    # {"auroc", "low", "high"}, or None with too few positives or negatives.
    auroc: dict | None = None
    # What the version expected on patients it did not train on (empty where it carries none).
    expected_sensitivity: list = field(default_factory=list)
    expected_specificity: list = field(default_factory=list)
    expected_auroc: dict = field(default_factory=dict)

    @property
    def display_name(self):
        return DISPLAY_NAMES[self.finding]

    @property
    def readings(self):
        """The readings this finding rests on: those marking it present or absent."""
        return self.positives + self.negatives

    @property
    def below_expected(self):
        """The figures whose whole interval here lies below what the version expected: the model
        does worse at this clinic than on the patients it was tested on."""
        pairs = (
            ("sensitivity", self.sensitivity, self.expected_sensitivity[:1]),
            ("specificity", self.specificity, self.expected_specificity[:1]),
            ("auroc", self.auroc and [self.auroc["auroc"], self.auroc["low"], self.auroc["high"]],
             [(self.expected_auroc or {}).get("auroc")]),
        )
        return {name for name, here, expected in pairs if here and here[2] is not None and expected
                and expected[0] is not None and here[2] < expected[0]}


@dataclass
class SitePerformance:
    version: ModelVersion
    readings: int  # X-rays with a signed-off current reading and this version's predictions
    patients: int
    findings: list
    minimum: int = MIN_PER_CLASS
    rounds: int = ROUNDS
    level: float = LEVEL


def signed_readings():
    """The current reading of each X-ray, where it is signed off (a superseded version or a draft never counts)."""
    return Reading.objects.signed().current()


def versions_with_readings():
    """Model versions with predictions on X-rays that have a signed-off current reading, newest first."""
    return ModelVersion.objects.filter(predictions__xray__in=signed_readings().values("xray")).distinct()


def wilson(hits, total, z=Z_95):
    """The Wilson score interval of ``hits`` out of ``total`` as ``[low, high]``."""
    if total == 0:
        return [None, None]
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _rate_with_interval(hits, members, weights):
    """``[estimate, low, high]`` of the share of ``members`` that are ``hits``: the patient-bootstrap
    interval, widened to the Wilson interval where that is wider (a percentile bootstrap of 5 out of
    5 says 100-100 %, which a handful of readings cannot show)."""
    estimate, low, high = _rate(hits, members, weights)
    if estimate is None:
        return None
    w_low, w_high = wilson(int((hits & members).sum()), int(members.sum()))
    if low is None:
        return [estimate, w_low, w_high]
    return [estimate, min(low, w_low), max(high, w_high)]


def _expected(version, finding):
    point = (version.operating_point or {}).get("findings", {}).get(finding, {})
    return {
        "expected_sensitivity": point.get("sensitivity") or [],
        "expected_specificity": point.get("specificity") or [],
        "expected_auroc": version.finding_reliability(finding),
    }


def site_performance(version, *, minimum=MIN_PER_CLASS, rounds=ROUNDS, seed=0):
    """Per finding, ``version``'s predictions against the current signed-off readings of the same X-rays.

    A prediction "reaches the threshold" when its probability is at or above the version's threshold
    now; for a reliable finding that is exactly its flag, and a finding that is not reliable is
    never flagged, but its threshold is still measured, to compare with what the version expected.
    """
    read = signed_readings().filter(xray__in=Prediction.objects.filter(model_version=version).values("xray"))
    marks = dict(read.values_list("xray", "marks"))
    rows = Prediction.objects.filter(model_version=version, xray__in=read.values("xray")).values_list(
        "xray", "xray__patient", "finding", "probability"
    )
    xrays = sorted(marks)
    column = {pk: i for i, pk in enumerate(xrays)}
    patients = np.zeros(len(xrays), dtype=np.int64)
    scores = np.full((len(xrays), len(FINDINGS)), np.nan)
    for xray, patient, finding, probability in rows:
        patients[column[xray]] = patient
        if finding in FINDINGS:
            scores[column[xray], FINDINGS.index(finding)] = probability
    weights = patient_weights(patients, rounds, seed) if xrays else np.zeros((rounds, 0))
    findings = [
        _finding(version, name, [marks[pk].get(name) for pk in xrays], scores[:, i], weights, minimum)
        for i, name in enumerate(FINDINGS)
    ]
    return SitePerformance(
        version=version,
        readings=len(xrays),
        patients=len(set(patients.tolist())),
        findings=findings,
        minimum=minimum,
        rounds=rounds,
    )


def _finding(version, name, marks, scores, weights, minimum):
    threshold = float(version.thresholds[name])
    row = FindingPerformance(
        finding=name, reliable=version.is_reliable(name), threshold=threshold, **_expected(version, name)
    )
    marks = np.asarray(marks, dtype=object)
    used = ((marks == Mark.PRESENT) | (marks == Mark.ABSENT)) & ~np.isnan(scores)
    labels = marks[used] == Mark.PRESENT
    scores, weights = scores[used], weights[:, used]
    reached = scores >= threshold
    row.positives, row.negatives = int(labels.sum()), int((~labels).sum())
    row.true_positives = int((reached & labels).sum())
    row.false_negatives = row.positives - row.true_positives
    row.false_positives = int((reached & ~labels).sum())
    row.true_negatives = row.negatives - row.false_positives
    row.sensitivity = _rate_with_interval(reached, labels, weights)
    row.specificity = _rate_with_interval(~reached, ~labels, weights)
    if row.positives >= minimum and row.negatives >= minimum:
        estimate = _number(weighted_auroc(labels.astype(int), scores, np.ones((1, len(scores))))[0])
        low, high = interval(weighted_auroc(labels.astype(int), scores, weights))
        row.auroc = {"auroc": estimate, "low": low, "high": high}
    return row
