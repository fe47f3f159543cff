"""One balanced binary training set per finding, from the training split only.

The original design: for each finding, cap the negatives (the original kept 12,000), then
SMOTETomek (imbalanced-learn): SMOTE synthesises minority images between neighbours, Tomek
links then remove both images of each pair of nearest neighbours of opposite classes, which
keeps the classes equal. Validation and test are never read, so nothing synthetic or
resampled reaches an evaluation (balancing belongs inside the training part only).

Writes ``<preprocessed>/balanced/`` (see ``mltrain.dataset``) through a temporary sibling.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from diagnosis.findings import FINDINGS

from .dataset import BALANCE_REPORT_FILE, BALANCED_DIR, DatasetError, load_split, read_manifest
from .preprocess import make_sibling, replace_directory

METHODS = ("smotetomek", "none")
MAX_NEGATIVES = 12_000
SMOTE_NEIGHBOURS = 5


class BalanceError(Exception):
    """Balancing cannot go on; the message says what to do."""


def balance(directory, method="smotetomek", max_negatives=MAX_NEGATIVES, seed=42, progress=True):
    """Balance the training split of the preprocessed data in ``directory``; returns the report.

    ``max_negatives`` (None or 0: no cap) draws that many negatives at random before
    resampling, so that memory and time stay bounded on the full dataset. ``method`` "none"
    keeps the (capped) training set as it is. Raises ``BalanceError``.
    """
    if method not in METHODS:
        raise BalanceError(f"--method must be one of {', '.join(METHODS)}, not {method!r}.")
    if max_negatives is not None and (not isinstance(max_negatives, int) or max_negatives < 0):
        raise BalanceError(f"--max-negatives must be 0 (no cap) or more, not {max_negatives!r}.")
    if not isinstance(seed, int) or seed < 0:
        raise BalanceError(f"--seed must be a whole number 0 or more, not {seed!r}.")
    max_negatives = max_negatives or None
    directory = Path(directory).expanduser().resolve()
    try:
        manifest = read_manifest(directory)
        train = load_split(directory, "train")
    except DatasetError as exc:
        raise BalanceError(str(exc)) from exc
    size = manifest["size"]

    out = directory / BALANCED_DIR
    try:
        staging = make_sibling(out, "partial")
    except OSError as exc:
        raise BalanceError(
            f"Cannot write {out}: {exc.strerror or exc}. Fix the permissions of {directory}."
        ) from exc
    report = {"method": method, "seed": seed, "max_negatives": max_negatives, "findings": {}}
    try:
        findings = tqdm(FINDINGS, desc="balance", unit="finding", disable=not progress, file=sys.stderr)
        for index, finding in enumerate(findings):
            labels = np.asarray(train.labels[:, index])
            rows = _capped_rows(labels, max_negatives, np.random.default_rng([seed, index]))
            entry = {"before": _counts(labels)}
            pixels, kept = train.pixels[rows], labels[rows]  # reads only these rows of the memory map
            if method == "smotetomek":
                try:
                    pixels, kept = smotetomek(pixels, kept, seed)
                except BalanceError as exc:
                    entry.update(after=None, skipped=str(exc))
                    report["findings"][finding] = entry
                    continue
            np.save(staging / f"{finding}_pixels.npy", pixels.reshape(len(kept), size, size))
            np.save(staging / f"{finding}_labels.npy", kept.astype(np.uint8))
            entry["after"] = _counts(kept)
            report["findings"][finding] = entry
        (staging / BALANCE_REPORT_FILE).write_text(json.dumps(report, indent=2))
        replace_directory(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def smotetomek(pixels, labels, seed):
    """SMOTETomek over flattened ``pixels`` (uint8 [M, S, S]); returns uint8 pixels and 0/1 labels."""
    from imblearn.combine import SMOTETomek
    from imblearn.over_sampling import SMOTE
    from imblearn.under_sampling import TomekLinks

    counts = np.bincount(labels, minlength=2)
    if counts.min() == 0:
        which = "positive" if counts[1] == 0 else "negative"
        raise BalanceError(f"no {which} image in the training split")
    if counts.min() < 2:
        raise BalanceError(f"a single {'positive' if counts[1] < 2 else 'negative'} image; SMOTE needs at least 2")
    shape = pixels.shape[1:]
    # float32 halves the memory of sklearn's float64 default and keeps pixel values exact.
    flat = pixels.reshape(len(pixels), -1).astype(np.float32)
    sampler = SMOTETomek(
        smote=SMOTE(k_neighbors=min(SMOTE_NEIGHBOURS, int(counts.min()) - 1), random_state=seed),
        tomek=TomekLinks(sampling_strategy="all"),
        random_state=seed,
    )
    flat, labels = sampler.fit_resample(flat, labels)
    pixels = np.clip(np.rint(flat), 0, 255).astype(np.uint8).reshape(len(flat), *shape)
    return pixels, np.asarray(labels, dtype=np.uint8)


def _capped_rows(labels, max_negatives, rng):
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == 0)
    if max_negatives is not None and len(negatives) > max_negatives:
        negatives = rng.choice(negatives, size=max_negatives, replace=False)
    return np.sort(np.concatenate([positives, negatives]))


def _counts(labels):
    positives = int(np.count_nonzero(labels))
    return {"positive": positives, "negative": int(len(labels) - positives)}
