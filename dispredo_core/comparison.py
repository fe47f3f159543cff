"""Two model versions' scores on the same images: per finding AUROC of each and their difference,
with a 95 % paired patient-bootstrap interval, and the mean over the findings with both classes.

The one paired comparison of Dispredo: ``manage.py compare`` (preprocessed data), the activation
gate (the clinic's signed-off readings) and ``mltrain.lab.baselines`` (a baseline's scores) call it.
Only NumPy, on ``reliability``'s bootstrap: each resample draws patients with replacement, each
with all of its images, and both score arrays are counted on the same resamples, so the
differences are paired. Also which patients a version trained on (its artefact's patients.json),
the ones whose images are not fair ground for comparing it.
"""

import json
import warnings

import numpy as np

from dispredo_core.artefact import ArtefactError, read_metadata, resolve
from dispredo_core.findings import DISPLAY_NAMES, FINDINGS
from dispredo_core.reliability import LEVEL, ROUNDS, interval, patient_weights, weighted_auroc
from dispredo_core.serving import PATIENTS_FILE

LEFT_OUT = -1  # a label for "no answer for this finding on this image" (e.g. not assessable)


def compare_scores(labels, candidate, against, patients, *, mask=None, rounds=ROUNDS, seed=0, level=LEVEL):
    """Compare ``candidate`` with ``against`` (score arrays [N, 14]) on ``labels`` [N, 14].

    A label of ``LEFT_OUT`` (or False in ``mask``, when given) leaves that image out for that
    finding only. ``patients`` [N] groups the images for the bootstrap. Returns::

        {"images", "patients", "rounds", "level",
         "findings": {name: {"positives", "negatives", "candidate", "against", "difference",
                             "low", "high"}},          # AUROCs; None where a class is missing
         "mean": {"findings", "candidate", "against", "difference", "low", "high", "share_ahead"}}

    ``difference`` is candidate minus against; the mean is over the findings with both classes
    (None values and 0 findings when there is none); ``share_ahead`` is the share of resamples in
    which the candidate's mean is the higher.
    """
    labels = np.asarray(labels).astype(np.int64)
    candidate, against = np.asarray(candidate, np.float64), np.asarray(against, np.float64)
    patients = np.asarray(patients)
    if not (labels.shape == candidate.shape == against.shape == (len(patients), len(FINDINGS))):
        raise ValueError("labels and both score arrays must be [N, 14] and patients [N], for the same N images.")
    used = labels >= 0 if mask is None else np.asarray(mask, bool) & (labels >= 0)
    weights = patient_weights(patients, rounds, seed) if len(labels) else np.zeros((rounds, 0))
    findings, resampled = {}, []
    for index, name in enumerate(FINDINGS):
        rows = used[:, index]
        truth = labels[rows, index]
        row = {"positives": int((truth == 1).sum()), "negatives": int((truth == 0).sum())}
        if row["positives"] and row["negatives"]:
            ones = np.ones((1, int(rows.sum())))
            chosen = weights[:, rows]
            ours = weighted_auroc(truth, candidate[rows, index], np.vstack([ones, chosen]))
            theirs = weighted_auroc(truth, against[rows, index], np.vstack([ones, chosen]))
            difference = ours[1:] - theirs[1:]  # NaN where a resample lost a class
            resampled.append(difference)
            low, high = interval(difference, level)
            row.update(candidate=float(ours[0]), against=float(theirs[0]), difference=float(ours[0] - theirs[0]))
            row.update(low=low, high=high)
        else:
            row.update(candidate=None, against=None, difference=None, low=None, high=None)
        findings[name] = row
    defined = [row for row in findings.values() if row["difference"] is not None]
    mean = {"findings": len(defined), "candidate": None, "against": None, "difference": None,
            "low": None, "high": None, "share_ahead": None}
    if defined:
        with warnings.catch_warnings():  # a resample where every finding lost a class is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            per_round = np.nanmean(np.vstack(resampled), axis=0)
        low, high = interval(per_round, level)
        drawn = per_round[~np.isnan(per_round)]
        mean.update(
            candidate=float(np.mean([row["candidate"] for row in defined])),
            against=float(np.mean([row["against"] for row in defined])),
            difference=float(np.mean([row["difference"] for row in defined])),
            low=low,
            high=high,
            share_ahead=float(np.mean(drawn > 0)) if len(drawn) else None,
        )
    return {
        "images": int(len(labels)),
        "patients": int(len(np.unique(patients))),
        "rounds": rounds,
        "level": level,
        "findings": findings,
        "mean": mean,
    }


def _fmt(value, sign=False):
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def table_lines(comparison, candidate_name, against_name):
    """The comparison as lines of text: per finding AUROC of each, then the mean naming both."""
    width = 9
    lines = [f"{'AUROC of':<20} {'candidate':>{width}} {'against':>{width}}  difference (95 % interval)"]
    for name, row in comparison["findings"].items():
        if row["difference"] is None:
            figures = f"{'n/a':>{width}} {'n/a':>{width}}  n/a ({row['positives']} present, {row['negatives']} absent)"
        else:
            figures = (
                f"{_fmt(row['candidate']):>{width}} {_fmt(row['against']):>{width}}  "
                f"{_fmt(row['difference'], True)} ({_fmt(row['low'], True)} to {_fmt(row['high'], True)})"
            )
        lines.append(f"{DISPLAY_NAMES.get(name, name):<20} {figures}")
    lines.append(mean_line(comparison, candidate_name, against_name))
    return lines


def mean_line(comparison, candidate_name, against_name):
    """One sentence: the mean AUROC of each, the difference, its interval and what it rests on."""
    mean = comparison["mean"]
    rests_on = f"{comparison['images']} images of {comparison['patients']} patients"
    if not mean["findings"]:
        return f"No finding has both classes among {rests_on}: nothing to compare on."
    return (
        f"Mean AUROC over the {mean['findings']} findings with both classes: {candidate_name} {_fmt(mean['candidate'])}, "
        f"{against_name} {_fmt(mean['against'])}; difference {_fmt(mean['difference'], True)} "
        f"({comparison['level'] * 100:g} % interval {_fmt(mean['low'], True)} to {_fmt(mean['high'], True)}, "
        f"{comparison['rounds']} paired resamples of the patients), on {rests_on}."
    )


def trained_patients(version):
    """The set of patient ids ``version`` trained on or selected its model with (patients.json's
    "train" and "val"), or None when its artefact records none (nothing can be excluded for it)."""
    directory = resolve(version.artefact_path)
    try:
        metadata = read_metadata(directory)
    except ArtefactError:
        metadata = {}
    path = directory / metadata.get("patients_file", PATIENTS_FILE)
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text())
        return {int(number) for split in ("train", "val") for number in recorded.get(split, [])}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ArtefactError(f"The patients file {path} of {version.name} cannot be read: {exc}") from exc
