"""One balanced binary training set per finding, from the training split only.

The original design: for each finding, cap the negatives (the original kept 12,000), then
SMOTETomek: SMOTE synthesises minority images between neighbours, Tomek links then remove both
images of each pair of nearest neighbours of opposite classes, which keeps the classes equal.
Positives are capped too, so a finding's memory and time are bounded by the caps and the image
size, whatever the size of the dataset. Validation and test are never read, so nothing synthetic or
resampled reaches an evaluation (balancing belongs inside the training part only).

Writes ``<preprocessed>/balanced/`` (see ``mltrain.dataset``) through a temporary sibling.
"""

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dispredo_core.findings import FINDINGS

from .dataset import BALANCE_REPORT_FILE, BALANCED_DIR, DatasetError, load_split, read_manifest
from .preprocess import make_sibling, replace_directory

METHODS = ("smotetomek", "none")
MAX_NEGATIVES = 12_000
MAX_POSITIVES = 12_000
SMOTE_NEIGHBOURS = 5
CHUNK_ROWS = 512  # images made or converted at a time, so temporary copies stay small


class BalanceError(Exception):
    """Balancing cannot go on; the message says what to do."""


def balance(
    directory,
    method="smotetomek",
    max_negatives=MAX_NEGATIVES,
    max_positives=MAX_POSITIVES,
    seed=42,
    progress=True,
    findings=None,
    on_finding=None,
):
    """Balance the training split of the preprocessed data in ``directory``; returns the report.

    ``max_negatives`` and ``max_positives`` (None or 0: no cap) draw that many images of each
    class at random before resampling, so that memory and time depend on the caps and the image
    size only, never on the size of the dataset. ``method`` "none" keeps the (capped) training
    set as it is. ``findings`` balances only those (all by default); ``on_finding(name, entry)``
    is called as each is done. Raises ``BalanceError``.
    """
    if method not in METHODS:
        raise BalanceError(f"--method must be one of {', '.join(METHODS)}, not {method!r}.")
    for option, cap in (("--max-negatives", max_negatives), ("--max-positives", max_positives)):
        if cap is not None and (not isinstance(cap, int) or cap < 0):
            raise BalanceError(f"{option} must be 0 (no cap) or more, not {cap!r}.")
    if not isinstance(seed, int) or seed < 0:
        raise BalanceError(f"--seed must be a whole number 0 or more, not {seed!r}.")
    unknown = sorted(set(findings or ()) - set(FINDINGS))
    if unknown:
        raise BalanceError(f"Unknown finding {unknown[0]!r}; expected one of {', '.join(FINDINGS)}.")
    max_negatives, max_positives = max_negatives or None, max_positives or None
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
    report = {
        "method": method,
        "seed": seed,
        "max_negatives": max_negatives,
        "max_positives": max_positives,
        "findings": {},
    }
    chosen = [finding for finding in FINDINGS if not findings or finding in findings]
    try:
        for finding in tqdm(chosen, desc="balance", unit="finding", disable=not progress, file=sys.stderr):
            started = time.perf_counter()
            index = FINDINGS.index(finding)
            labels = np.asarray(train.labels[:, index])
            rows = _capped_rows(labels, max_negatives, max_positives, seed, index)
            pixels, kept = train.pixels[rows], labels[rows]  # reads only these rows of the memory map
            entry = {"before": _counts(labels), "drawn": _counts(kept)}
            report["findings"][finding] = entry
            try:
                if method == "smotetomek":
                    pixels, kept = smotetomek(pixels, kept, seed)
            except BalanceError as exc:
                entry.update(after=None, skipped=str(exc))
            else:
                np.save(staging / f"{finding}_pixels.npy", pixels.reshape(len(kept), size, size))
                np.save(staging / f"{finding}_labels.npy", kept.astype(np.uint8))
                entry["after"] = _counts(kept)
            del pixels, kept
            entry["seconds"] = round(time.perf_counter() - started, 1)
            if on_finding:
                on_finding(finding, entry)
        (staging / BALANCE_REPORT_FILE).write_text(json.dumps(report, indent=2))
        replace_directory(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def smotetomek(pixels, labels, seed):
    """SMOTETomek over flattened ``pixels`` (uint8 [M, S, S]); returns uint8 pixels and 0/1 labels.

    The same images as imbalanced-learn's ``SMOTETomek(smote=SMOTE(k_neighbors=k,
    random_state=seed), tomek=TomekLinks(sampling_strategy="all"))`` gives (a test holds it to
    that), with its neighbour searches and random draws, but with one float32 copy of the
    resampled images instead of several float64 ones: the synthetic images are made a chunk at a
    time into it, and the images kept are converted back to uint8 a chunk at a time.
    """
    from imblearn.under_sampling import TomekLinks
    from sklearn.neighbors import NearestNeighbors

    counts = np.bincount(labels, minlength=2)
    if counts.min() == 0:
        which = "positive" if counts[1] == 0 else "negative"
        raise BalanceError(f"no {which} image in the training split")
    if counts.min() < 2:
        raise BalanceError(f"a single {'positive' if counts[1] < 2 else 'negative'} image; SMOTE needs at least 2")
    shape, count = pixels.shape[1:], len(labels)
    minority = int(np.argmin(counts))  # SMOTE's "auto": the smaller class grows to the larger one's count
    made = int(counts.max() - counts.min())
    flat = np.empty((count + made, int(np.prod(shape))), dtype=np.float32)  # exact for 0..255
    flat[:count] = pixels.reshape(count, -1)
    if made:
        members = flat[:count][labels == minority]
        neighbours = min(SMOTE_NEIGHBOURS, int(counts.min()) - 1)
        nearest = NearestNeighbors(n_neighbors=neighbours + 1).fit(members)
        nearest = nearest.kneighbors(members, return_distance=False)[:, 1:]
        # imbalanced-learn's draws, in its order: a (member, neighbour) pair and a step for each new image.
        random = np.random.RandomState(seed)
        pairs = random.randint(low=0, high=nearest.size, size=made)
        steps = random.uniform(size=made)[:, np.newaxis]
        bases, partners = pairs // nearest.shape[1], nearest[pairs // nearest.shape[1], pairs % nearest.shape[1]]
        for start in range(0, made, CHUNK_ROWS):
            part = slice(start, start + CHUNK_ROWS)
            base = members[bases[part]]
            flat[count + start : count + start + len(base)] = base + steps[part] * (members[partners[part]] - base)
        del members
    labels = np.concatenate([labels, np.full(made, minority, dtype=labels.dtype)])
    # Tomek links: pairs of mutual nearest neighbours of opposite classes; both images go.
    nearest = NearestNeighbors(n_neighbors=2).fit(flat).kneighbors(flat, return_distance=False)[:, 1]
    kept = np.flatnonzero(~TomekLinks.is_tomek(labels, nearest, (0, 1)))
    out = np.empty((len(kept), flat.shape[1]), dtype=np.uint8)
    for start in range(0, len(kept), CHUNK_ROWS):
        out[start : start + CHUNK_ROWS] = np.clip(np.rint(flat[kept[start : start + CHUNK_ROWS]]), 0, 255)
    return out.reshape(len(kept), *shape), np.asarray(labels[kept], dtype=np.uint8)


def _capped_rows(labels, max_negatives, max_positives, seed, index):
    """The rows kept of one finding: every image of a class under its cap, else that many at random."""
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == 0)
    if max_negatives is not None and len(negatives) > max_negatives:
        negatives = np.random.default_rng([seed, index]).choice(negatives, size=max_negatives, replace=False)
    if max_positives is not None and len(positives) > max_positives:
        positives = np.random.default_rng([seed, index, 1]).choice(positives, size=max_positives, replace=False)
    return np.sort(np.concatenate([positives, negatives]))


def _counts(labels):
    positives = int(np.count_nonzero(labels))
    return {"positive": positives, "negative": int(len(labels) - positives)}
