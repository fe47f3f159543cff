"""The input guard: does an uploaded image look like the frontal chest X-rays the model learnt from?

The model gives 14 probabilities for any image at all, a photograph or a screenshot included, so
the web app first asks this one-class check and refuses what does not look like a frontal chest
radiograph. The guard knows only the model's training images (nothing else is needed to fit it)
and works on the model's own input pixels (``dispredo_core.imaging.to_model_pixels``), so serving does
no extra decoding; it uses NumPy alone, never scikit-learn or TensorFlow.

Each image is summarised three ways, and each summary gives a distance from the training images:

- shape: the image reduced to a 16x16 thumbnail by block means and standardised by its own mean
  and spread, then the Mahalanobis distance of its coordinates on the top principal components
  of the training thumbnails (the mean chest thumbnail is subtracted, not the image's sign, so a
  negative image lies far away);
- residual: the log of what those components leave unexplained of the thumbnail;
- intensity: the Mahalanobis distance of a few statistics (mean, spread, quantiles of the grey
  levels, mean horizontal and vertical pixel differences, and the correlation of the thumbnail with
  the mean chest thumbnail).

Each distance is standardised by its mean and spread on the training images and the score is the
largest of the three, so an image unusual in any one way is refused. ``mltrain.guard.fit`` chooses
the threshold from scores of training images the guard was not fitted on; an image is accepted
when its score is at most the threshold.
"""

import zipfile
import zlib

import numpy as np

from dispredo_core.serving import GUARD_FILE

REFUSAL_MESSAGE = "This does not look like a frontal chest X-ray, so it was not scored."

FORMAT_VERSION = 1
THUMBNAIL = 16  # side of the block-mean thumbnail
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SPREAD_FLOOR = 0.02  # of the 0..1 grey scale: a (nearly) uniform image is not blown up into noise
PARTS = ("shape", "residual", "intensity")
METHOD = (
    "Largest of three standardised distances from the training X-rays, computed on the model's "
    "input pixels: Mahalanobis distance on the top principal components of a per-image "
    "standardised 16x16 thumbnail, the log reconstruction residual of those components, and "
    "Mahalanobis distance of grey-level statistics (mean, spread, quantiles, pixel differences, "
    "correlation with the mean chest thumbnail); refused above a threshold set on held-out "
    "training images."
)

# Arrays of the .npz file and the number of dimensions each must have.
_ARRAYS = {
    "format_version": 0,
    "size": 0,
    "thumbnail": 0,
    "threshold": 0,
    "mean_thumbnail": 1,
    "components": 2,
    "component_scales": 1,
    "statistics_mean": 1,
    "statistics_precision": 2,
    "part_mean": 1,
    "part_scale": 1,
    "fitted_images": 0,
    "refuse_fraction": 0,
    "held_out_refusal_rate": 0,
    "folds": 0,
}
# Figures about the fitting, unknown (NaN) for a guard built by hand.
_MAY_BE_UNKNOWN = ("refuse_fraction", "held_out_refusal_rate")


def as_batch(pixels, size):
    """``pixels`` (uint8 [S, S] or [N, S, S]) as uint8 [N, S, S]; raises ``ValueError`` otherwise."""
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3 or array.shape[1:] != (size, size):
        raise ValueError(f"The input guard expects {size}x{size} pixels, got an array of shape {np.shape(pixels)}.")
    if array.dtype != np.uint8:
        raise ValueError(f"The input guard expects uint8 pixels, got {array.dtype}.")
    return array


def thumbnails(batch, side=THUMBNAIL):
    """Block means of ``batch`` (uint8 [N, S, S]) to [N, side*side] on a 0..1 scale, each
    standardised by its own mean and spread (floored at ``SPREAD_FLOOR``)."""
    count, size = len(batch), batch.shape[1]
    if size % side == 0:
        block = size // side
        sums = batch.reshape(count, side, block, side, block).sum(axis=(2, 4), dtype=np.int32)
        flat = sums / float(block * block)
    else:
        edges = (np.arange(side) * size) // side
        counts = np.diff(np.append(edges, size))
        sums = np.add.reduceat(np.add.reduceat(batch.astype(np.float64), edges, axis=1), edges, axis=2)
        flat = sums / (counts[:, None] * counts[None, :])
    flat = flat.reshape(count, -1) / 255.0
    centred = flat - flat.mean(axis=1, keepdims=True)
    spread = np.maximum(flat.std(axis=1, keepdims=True), SPREAD_FLOOR)
    return centred / spread


def statistics(batch, thumbs, mean_direction):
    """Grey-level statistics [N, 10] of ``batch`` (uint8 [N, S, S]) on a 0..1 scale, with its
    ``thumbs``: mean, spread, five quantiles, mean absolute horizontal and vertical differences,
    and the correlation of the thumbnail with ``mean_direction`` (the unit-length mean training
    thumbnail)."""
    count, pixels = len(batch), batch.shape[1] * batch.shape[2]
    # One 256-bin histogram per image gives the moments and the quantiles without sorting.
    offsets = (np.arange(count, dtype=np.intp) * 256)[:, None]
    histogram = np.bincount((batch.reshape(count, -1) + offsets).ravel(), minlength=256 * count)
    histogram = histogram.reshape(count, 256).astype(np.float64)
    levels = np.arange(256.0)
    mean = histogram @ levels / pixels
    spread = np.sqrt(np.maximum(histogram @ levels**2 / pixels - mean**2, 0.0))
    # Quantiles interpolated linearly between closest ranks (NumPy's default method): the value
    # of 0-based rank r is the number of grey levels whose cumulative count is <= r.
    cumulative = np.cumsum(histogram, axis=1)
    rank = np.asarray(QUANTILES) * (pixels - 1)
    low = np.floor(rank)
    high = np.minimum(low + 1, pixels - 1)
    value_low = (cumulative[:, None, :] <= low[None, :, None]).sum(axis=2)
    value_high = (cumulative[:, None, :] <= high[None, :, None]).sum(axis=2)
    quantiles = value_low + (value_high - value_low) * (rank - low)
    signed = batch.astype(np.int16)
    horizontal = np.abs(np.diff(signed, axis=2)).sum(axis=(1, 2)) / (batch.shape[1] * (batch.shape[2] - 1))
    vertical = np.abs(np.diff(signed, axis=1)).sum(axis=(1, 2)) / ((batch.shape[1] - 1) * batch.shape[2])
    correlation = thumbs @ mean_direction / np.sqrt(thumbs.shape[1])
    return np.column_stack(
        [mean / 255.0, spread / 255.0, quantiles / 255.0, horizontal / 255.0, vertical / 255.0, correlation]
    )


def mahalanobis(values, mean, precision):
    """Mahalanobis distance of each row of ``values`` from ``mean`` under ``precision``."""
    centred = values - mean
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, precision, centred), 0.0))


class InputGuard:
    """A fitted guard: ``scores`` of model pixels (higher = less like the training X-rays) and
    ``accepts`` (score <= ``threshold``). Fitted by ``mltrain.guard.fit``; stored as an .npz."""

    def __init__(
        self,
        *,
        size,
        threshold,
        mean_thumbnail,
        components,
        component_scales,
        statistics_mean,
        statistics_precision,
        part_mean=None,
        part_scale=None,
        thumbnail=THUMBNAIL,
        fitted_images=0,
        refuse_fraction=float("nan"),
        held_out_refusal_rate=float("nan"),
        folds=0,
    ):
        self.size = int(size)
        self.thumbnail = int(thumbnail)
        self.threshold = float(threshold)
        self.mean_thumbnail = np.asarray(mean_thumbnail, dtype=np.float64)
        self.components = np.asarray(components, dtype=np.float64)
        self.component_scales = np.asarray(component_scales, dtype=np.float64)
        self.statistics_mean = np.asarray(statistics_mean, dtype=np.float64)
        self.statistics_precision = np.asarray(statistics_precision, dtype=np.float64)
        self.part_mean = np.zeros(len(PARTS)) if part_mean is None else np.asarray(part_mean, dtype=np.float64)
        self.part_scale = np.ones(len(PARTS)) if part_scale is None else np.asarray(part_scale, dtype=np.float64)
        self.fitted_images = int(fitted_images)
        self.refuse_fraction = float(refuse_fraction)
        self.held_out_refusal_rate = float(held_out_refusal_rate)
        self.folds = int(folds)
        norm = np.linalg.norm(self.mean_thumbnail)
        self.mean_direction = self.mean_thumbnail / norm if norm > 0 else self.mean_thumbnail

    # --- scoring ----------------------------------------------------------------------------

    def parts(self, pixels):
        """The three raw distances [N, 3] (shape, residual, intensity), before standardising."""
        batch = as_batch(pixels, self.size)
        thumbs = thumbnails(batch, self.thumbnail)
        centred = thumbs - self.mean_thumbnail
        coordinates = centred @ self.components.T
        shape = np.sqrt(((coordinates / self.component_scales) ** 2).sum(axis=1))
        residual = np.sqrt(((centred - coordinates @ self.components) ** 2).sum(axis=1))
        intensity = mahalanobis(
            statistics(batch, thumbs, self.mean_direction), self.statistics_mean, self.statistics_precision
        )
        return np.column_stack([shape, np.log(residual + 1e-6), intensity])

    def scores(self, pixels):
        """float64 [N]: for each image of ``pixels`` (uint8 [N, S, S] or one [S, S]), the largest
        standardised distance; higher is less like the training X-rays."""
        standardised = (self.parts(pixels) - self.part_mean) / self.part_scale
        return standardised.max(axis=1)

    def accepts(self, pixels):
        """Whether one image (uint8 [S, S]) looks like a frontal chest X-ray: score <= threshold."""
        return bool(self.scores(pixels)[0] <= self.threshold)

    # --- storage ----------------------------------------------------------------------------

    def save(self, path):
        """Write the guard to ``path`` (.npz, plain arrays, no pickle)."""
        with open(path, "wb") as handle:
            np.savez(
                handle,
                format_version=np.int64(FORMAT_VERSION),
                size=np.int64(self.size),
                thumbnail=np.int64(self.thumbnail),
                threshold=np.float64(self.threshold),
                mean_thumbnail=self.mean_thumbnail,
                components=self.components,
                component_scales=self.component_scales,
                statistics_mean=self.statistics_mean,
                statistics_precision=self.statistics_precision,
                part_mean=self.part_mean,
                part_scale=self.part_scale,
                fitted_images=np.int64(self.fitted_images),
                refuse_fraction=np.float64(self.refuse_fraction),
                held_out_refusal_rate=np.float64(self.held_out_refusal_rate),
                folds=np.int64(self.folds),
            )

    @classmethod
    def load(cls, path):
        """The guard stored at ``path``; raises ``ValueError`` saying why when it cannot be used."""
        try:
            stored = np.load(path, allow_pickle=False)
            if not isinstance(stored, np.lib.npyio.NpzFile):
                raise ValueError("it is a single array, not an .npz archive")
            with stored:
                missing = sorted(set(_ARRAYS) - set(stored.files))
                if missing:
                    raise ValueError(f"missing arrays {', '.join(missing)}")
                arrays = {name: stored[name] for name in _ARRAYS}
        except FileNotFoundError as exc:
            raise ValueError(f"Input guard file {path} does not exist.") from exc
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"Input guard file {path} is not a readable guard: {exc}") from exc
        for name, ndim in _ARRAYS.items():
            value = arrays[name]
            if (
                value.ndim != ndim
                or not np.issubdtype(value.dtype, np.number)
                or (name not in _MAY_BE_UNKNOWN and not np.all(np.isfinite(value)))
            ):
                raise ValueError(f"Input guard file {path} is damaged: array {name!r} is malformed.")
        if int(arrays["format_version"]) != FORMAT_VERSION:
            raise ValueError(
                f"Input guard file {path} has format version {int(arrays['format_version'])}; "
                f"this code reads version {FORMAT_VERSION}."
            )
        side = int(arrays["thumbnail"])
        k = arrays["components"].shape[0]
        statistics_count = arrays["statistics_mean"].shape[0]
        if (
            int(arrays["size"]) < side
            or arrays["mean_thumbnail"].shape != (side * side,)
            or arrays["components"].shape != (k, side * side)
            or arrays["component_scales"].shape != (k,)
            or np.any(arrays["component_scales"] <= 0)
            or arrays["statistics_precision"].shape != (statistics_count, statistics_count)
            or arrays["part_mean"].shape != (len(PARTS),)
            or arrays["part_scale"].shape != (len(PARTS),)
            or np.any(arrays["part_scale"] <= 0)
        ):
            raise ValueError(f"Input guard file {path} is damaged: its arrays do not fit together.")
        del arrays["format_version"]
        return cls(**{name: value[()] if value.ndim == 0 else value for name, value in arrays.items()})

    def description(self):
        """A JSON-safe summary for the artefact's metadata.json."""

        def number(value, digits=6):
            return None if not np.isfinite(value) else round(float(value), digits)

        return {
            "file": GUARD_FILE,
            "method": METHOD,
            "threshold": number(self.threshold),
            "size": self.size,
            "thumbnail": self.thumbnail,
            "components": int(self.components.shape[0]),
            "fitted_images": self.fitted_images,
            "refuse_fraction": number(self.refuse_fraction),
            "threshold_rule": (
                f"quantile {number(1 - self.refuse_fraction)} of out-of-fold scores of {self.folds} "
                "patient-grouped folds of the training images, then refitted on all of them"
            ),
            "held_out_refusal_rate": number(self.held_out_refusal_rate),
            "refusal_message": REFUSAL_MESSAGE,
        }
