"""Fitting the input guard (``dispredo_core.guard``) on a model's training images.

The threshold must refuse at most ``refuse_fraction`` of real X-rays, which scores of the images a
guard was fitted on would understate. So the training images are split into ``folds``
patient-grouped folds; a guard fitted on the other folds scores each fold, the threshold is the
``1 - refuse_fraction`` quantile of those out-of-fold scores (an observed score, so at most that
fraction of them lies above it), and the guard is then refitted on all the images with that
threshold.
"""

import numpy as np

from dispredo_core.guard import PARTS, THUMBNAIL, InputGuard, as_batch, statistics, thumbnails

COMPONENTS = 10  # principal components of the thumbnails kept
SHRINKAGE = 0.05  # towards the diagonal, for the covariance of the grey-level statistics


class GuardError(ValueError):
    """The images cannot give a guard (too few, wrong shape)."""


def fit(pixels, patients, refuse_fraction=0.01, folds=5, seed=0):
    """An ``InputGuard`` for ``pixels`` (uint8 [N, S, S]) of ``patients`` (int [N]), with its
    threshold set so that about ``refuse_fraction`` of held-out training images are refused."""
    pixels = np.asarray(pixels)
    patients = np.asarray(patients)
    if pixels.ndim != 3 or pixels.shape[1] != pixels.shape[2]:
        raise GuardError(f"Expected square images [N, S, S], got shape {pixels.shape}.")
    if len(patients) != len(pixels):
        raise GuardError(f"{len(pixels)} images but {len(patients)} patient IDs.")
    if not 0.0 < refuse_fraction < 1.0:
        raise GuardError(f"refuse_fraction must be between 0 and 1, got {refuse_fraction}.")
    size = pixels.shape[1]
    if size < THUMBNAIL:
        raise GuardError(f"Images of {size} px are smaller than the {THUMBNAIL} px thumbnail.")
    if len(np.unique(patients)) < folds or len(pixels) < 4 * (COMPONENTS + len(PARTS) + 10):
        raise GuardError(f"Too few images ({len(pixels)}) or patients for {folds} folds.")

    held_out = np.empty(len(pixels))
    for train, test in _patient_folds(patients, folds, seed):
        held_out[test] = _fit_arrays(pixels[train], size).scores(pixels[test])
    threshold = float(np.quantile(held_out, 1.0 - refuse_fraction, method="higher"))

    guard = _fit_arrays(pixels, size)
    guard.threshold = threshold
    guard.fitted_images = len(pixels)
    guard.refuse_fraction = float(refuse_fraction)
    guard.held_out_refusal_rate = float(np.mean(held_out > threshold))
    guard.folds = int(folds)
    return guard


def _patient_folds(patients, folds, seed):
    """(train indices, test indices) of ``folds`` folds with no patient in two folds."""
    from sklearn.model_selection import GroupKFold

    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return splitter.split(np.zeros(len(patients)), groups=patients)


def _fit_arrays(pixels, size):
    """An ``InputGuard`` fitted on ``pixels`` (threshold not yet set)."""
    batch = as_batch(pixels, size)
    thumbs = thumbnails(batch, THUMBNAIL)
    mean_thumbnail = thumbs.mean(axis=0)
    _, singular, vt = np.linalg.svd(thumbs - mean_thumbnail, full_matrices=False)
    k = min(COMPONENTS, len(singular))
    scales = np.maximum(singular[:k] / np.sqrt(len(batch) - 1), 1e-9)

    norm = np.linalg.norm(mean_thumbnail)
    direction = mean_thumbnail / norm if norm > 0 else mean_thumbnail
    stats = statistics(batch, thumbs, direction)
    covariance = np.cov(stats, rowvar=False)
    covariance = (1.0 - SHRINKAGE) * covariance + SHRINKAGE * np.diag(np.diag(covariance))
    covariance += 1e-12 * np.eye(len(covariance))

    guard = InputGuard(
        size=size,
        threshold=np.inf,
        thumbnail=THUMBNAIL,
        mean_thumbnail=mean_thumbnail,
        components=vt[:k],
        component_scales=scales,
        statistics_mean=stats.mean(axis=0),
        statistics_precision=np.linalg.inv(covariance),
    )
    parts = guard.parts(pixels)
    guard.part_mean = parts.mean(axis=0)
    guard.part_scale = np.maximum(parts.std(axis=0), 1e-9)
    return guard
