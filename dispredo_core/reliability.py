"""What a model version's scores are worth, from scores of patients it did not train on.

Every artefact carries such "holdout" scores (out-of-fold scores of a cross-validated ensemble, or
the validation split's) in ``HOLDOUT_FILE``. From them come, per finding:

- **reliability**: AUROC with a 95 % patient-bootstrap interval. A finding whose interval's lower
  end is below ``RELIABILITY_FLOOR`` is not reliable with this model: it is shown greyed and never
  flagged. 0.5 is chance; a lower bound of 0.6 says, with 97.5 % confidence, that the model ranks a
  patient with the finding above one without it clearly more often than a coin would.
- **operating point**: the threshold that gives a target specificity on the holdout negatives,
  with the sensitivity and specificity it buys, each with its 95 % patient-bootstrap interval.

Only NumPy: the web process (``manage.py operating_point``, the admin) computes these too.
Resamples draw patients with replacement, each with all of its images, so an image is counted as
often as its patient was drawn (``patient_weights``).
"""

import math
import warnings
from pathlib import Path

import numpy as np

from dispredo_core.findings import FINDINGS
from dispredo_core.serving import HOLDOUT_FILE

RELIABILITY_FLOOR = 0.6
DEFAULT_SPECIFICITY = 0.95
LEVEL = 0.95
ROUNDS = 1000


class HoldoutError(ValueError):
    """The holdout scores are missing or unusable; the message says what to do."""


BLOCK_CELLS = 1 << 21  # rounds x images of weights held at once (16 MB of float64)


def patient_weights(patients, rounds=ROUNDS, seed=0):
    """float64 [rounds, N]: how often each image is drawn in each resample of the patients."""
    return np.concatenate(list(weight_blocks(patients, rounds, seed, block_rounds=rounds)))


def weight_blocks(patients, rounds=ROUNDS, seed=0, block_rounds=None):
    """``patient_weights`` a block of rounds at a time (the same draws in the same order), so memory
    stays bounded however many images there are: by default ``BLOCK_CELLS`` weights a block."""
    ids, patient_of = np.unique(np.asarray(patients), return_inverse=True)
    rng = np.random.default_rng(seed)
    step = block_rounds or max(1, BLOCK_CELLS // max(1, len(patient_of)))
    for start in range(0, rounds, step):
        draws = range(min(step, rounds - start))
        counts = np.stack([np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids)) for _ in draws])
        yield counts[:, patient_of].astype(np.float64)


def weighted_auroc(labels, scores, weights):
    """AUROC of ``scores`` with each image counted ``weights[r, i]`` times, for each row ``r`` of
    ``weights`` [R, N]: what AUROC gives on the data with the images repeated, computed at once
    for all R (the Mann-Whitney count, ties counted half). NaN where a row lacks a class."""
    order = np.argsort(scores, kind="stable")
    ordered = np.asarray(scores)[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # runs of tied scores
    positive = np.asarray(labels)[order] == 1
    weights = np.asarray(weights, dtype=np.float64)[:, order]
    pos = np.add.reduceat(weights * positive, starts, axis=1)
    neg = np.add.reduceat(weights * ~positive, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives scored strictly lower
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / pairs, math.nan)


def interval(values, level=LEVEL):
    """The central ``level`` interval of bootstrap ``values`` as ``[low, high]`` (None where all NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).all():
        return [None, None]
    tail = (1 - level) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return [float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))]


def _number(value):
    return None if value is None or not math.isfinite(value) else float(value)


def specificity_threshold(negative_scores, specificity):
    """The lowest threshold at which at least ``specificity`` of ``negative_scores`` fall below it
    (a case is flagged at or above the threshold); 1.0 is the most it can be."""
    negatives = np.sort(np.asarray(negative_scores, dtype=np.float64))
    if not len(negatives):
        return 1.0
    # Scores are float32 model outputs: the step above the highest one is taken in float32 too, so
    # that the threshold still lies above it when compared in float32.
    above = np.nextafter(np.float32(negatives[-1]), np.float32(np.inf))
    candidates = np.append(np.unique(negatives), float(above))
    below = np.searchsorted(negatives, candidates, side="left") / len(negatives)
    return float(min(candidates[np.argmax(below >= specificity - 1e-12)], 1.0))


def _resampled_rate(hits, members, weights):
    """The share of ``members`` that are ``hits`` in each resample (row of ``weights``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights * (hits & members)).sum(axis=1) / (weights * members).sum(axis=1)


def _rate(hits, members, weights):
    """Point estimate and interval of the share of ``members`` that are ``hits``, per resample."""
    return _estimate(hits, members, _resampled_rate(hits, members, weights))


def _estimate(hits, members, resampled):
    """Point estimate of the share of ``members`` that are ``hits``, and the interval of ``resampled``."""
    if not members.any():
        return [None, None, None]
    return [float(hits[members].mean()), *interval(resampled)]


def check_specificity(specificity):
    """``specificity`` as a float in (0, 1), or ``HoldoutError`` naming the bad value."""
    try:
        value = float(specificity)
    except (TypeError, ValueError):
        raise HoldoutError(f"The target specificity must be a number between 0 and 1, not {specificity!r}.") from None
    if not 0.5 <= value < 1.0:
        raise HoldoutError(f"The target specificity must be at least 0.5 and below 1, not {value:g}.")
    return value


def reliability(probabilities, labels, patients, floor=RELIABILITY_FLOOR, rounds=ROUNDS, seed=0):
    """Per finding AUROC with its interval and whether the interval clears ``floor``."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels).astype(int)
    resampled = {name: [] for name in FINDINGS}
    for weights in weight_blocks(patients, rounds, seed):
        for i, name in enumerate(FINDINGS):
            resampled[name].append(weighted_auroc(labels[:, i], probabilities[:, i], weights))
    ones = np.ones((1, len(labels)))
    findings = {}
    for i, name in enumerate(FINDINGS):
        low, high = interval(np.concatenate(resampled[name]))
        findings[name] = {
            "auroc": _number(weighted_auroc(labels[:, i], probabilities[:, i], ones)[0]),
            "low": low,
            "high": high,
            "positives": int(labels[:, i].sum()),
            "reliable": low is not None and low >= floor,
        }
    return {"floor": floor, "level": LEVEL, "rounds": rounds, "findings": findings}


def operating_point(probabilities, labels, patients, specificity=DEFAULT_SPECIFICITY, rounds=ROUNDS, seed=0):
    """Per finding the threshold for ``specificity`` on the holdout negatives, and the expected
    sensitivity and specificity there as ``[estimate, low, high]``."""
    specificity = check_specificity(specificity)
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels).astype(bool)
    thresholds = [specificity_threshold(probabilities[~labels[:, i], i], specificity) for i in range(len(FINDINGS))]
    flagged = probabilities >= np.asarray(thresholds)
    sensitivity, specificity_ = ([[] for _ in FINDINGS] for _ in range(2))
    for weights in weight_blocks(patients, rounds, seed):
        for i in range(len(FINDINGS)):
            sensitivity[i].append(_resampled_rate(flagged[:, i], labels[:, i], weights))
            specificity_[i].append(_resampled_rate(~flagged[:, i], ~labels[:, i], weights))
    findings = {}
    for i, name in enumerate(FINDINGS):
        findings[name] = {
            "threshold": thresholds[i],
            "sensitivity": _estimate(flagged[:, i], labels[:, i], np.concatenate(sensitivity[i])),
            "specificity": _estimate(~flagged[:, i], ~labels[:, i], np.concatenate(specificity_[i])),
        }
    return {"target_specificity": specificity, "level": LEVEL, "rounds": rounds, "findings": findings}


def save_holdout(directory, probabilities, labels, patients, description):
    """Write the holdout scores into an artefact ``directory``; return the metadata entry."""
    probabilities = np.asarray(probabilities, np.float32)
    np.savez(
        Path(directory) / HOLDOUT_FILE,
        probabilities=probabilities,
        labels=np.asarray(labels, np.uint8),
        patients=np.asarray(patients, np.int64),
    )
    return {
        "file": HOLDOUT_FILE,
        "description": description,
        "images": int(len(probabilities)),
        "patients": int(len(np.unique(patients))),
    }


def load_holdout(directory, metadata):
    """``(probabilities, labels, patients)`` of the artefact in ``directory``, or ``HoldoutError``."""
    entry = metadata.get("holdout") or {}
    if not entry.get("file"):
        raise HoldoutError(
            f"Model {metadata.get('name')} carries no holdout scores, so its operating point cannot be "
            "chosen; run manage.py holdout --version with its name first."
        )
    path = Path(directory) / entry["file"]
    try:
        with np.load(path) as stored:
            arrays = stored["probabilities"], stored["labels"], stored["patients"]
    except (OSError, KeyError, ValueError) as exc:
        raise HoldoutError(f"The holdout scores {path} cannot be read: {exc}") from exc
    if arrays[0].shape != arrays[1].shape or arrays[0].shape[1:] != (len(FINDINGS),) or len(arrays[2]) != len(arrays[0]):
        raise HoldoutError(f"The holdout scores {path} do not hold 14 findings per image.")
    return arrays


def holdout_metadata(directory, probabilities, labels, patients, description, specificity=DEFAULT_SPECIFICITY):
    """What an artefact's metadata.json carries about its holdout scores (also written to
    ``directory``): the holdout entry, reliability, operating point, and the thresholds to flag at."""
    point = operating_point(probabilities, labels, patients, specificity)
    return {
        "holdout": save_holdout(directory, probabilities, labels, patients, description),
        "reliability": reliability(probabilities, labels, patients),
        "operating_point": point,
        "thresholds": {name: row["threshold"] for name, row in point["findings"].items()},
        "threshold_method": (
            f"specificity {point['target_specificity']:g} on the holdout negatives: {description} "
            "(flag when probability >= threshold and the finding is reliable)"
        ),
    }
