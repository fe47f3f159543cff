"""Classification figures shared by training (validation) and ``manage.py evaluate``.

AUROC is NaN for a finding with only one class in the data (torchxrayvision's convention);
mean AUROC averages the findings where it is defined.
"""

import math
import warnings

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score

from dispredo_core.findings import FINDINGS
from dispredo_core.reliability import ROUNDS, interval, patient_weights, weighted_auroc  # noqa: F401 (shared)


def auroc(labels, scores):
    """AUROC of ``scores`` for binary ``labels``, or NaN when only one class is present."""
    labels = np.asarray(labels).astype(int)
    if labels.min(initial=1) == labels.max(initial=0):
        return math.nan
    return float(roc_auc_score(labels, scores))


def per_finding_auroc(labels, probabilities, findings=FINDINGS):
    """``{finding: AUROC or NaN}`` for label and probability arrays [N, len(findings)]."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    return {name: auroc(labels[:, i], probabilities[:, i]) for i, name in enumerate(findings)}


def mean_auroc(aurocs):
    """Mean of the defined (non-NaN) values of ``aurocs`` (a dict or sequence); NaN if none."""
    values = [v for v in (aurocs.values() if isinstance(aurocs, dict) else aurocs) if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def binary_report(labels, scores, threshold):
    """AUROC, precision, recall, F1, accuracy and confusion matrix at ``threshold`` for one finding."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    flagged = (scores >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, flagged, labels=[0, 1]).ravel())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "auroc": auroc(labels, scores),
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": (tp + tn) / len(labels) if len(labels) else math.nan,
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "positives": int(labels.sum()),
        "negatives": int(len(labels) - labels.sum()),
    }


BOOTSTRAP_ROUNDS = ROUNDS


def patient_bootstrap(labels, score_sets, patients, rounds=BOOTSTRAP_ROUNDS, seed=0):
    """Mean AUROC of each of ``score_sets`` ([N, 14] arrays) on ``rounds`` resamples of the patients
    (drawn with replacement, each with all of its images); float [rounds, len(score_sets)].

    Every score set sees the same resamples, so differences between columns are paired.
    """
    labels = np.asarray(labels).astype(int)
    weights = patient_weights(patients, rounds, seed)
    results = np.empty((rounds, len(score_sets)))
    for k, scores in enumerate(score_sets):
        scores = np.asarray(scores)
        per_finding = np.stack([weighted_auroc(labels[:, i], scores[:, i], weights) for i in range(labels.shape[1])], 1)
        with warnings.catch_warnings():  # a resample where no finding has both classes is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            results[:, k] = np.nanmean(per_finding, axis=1)
    return results


def json_safe(value):
    """``value`` with NaN and infinities replaced by None, for JSON and JSONField."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
