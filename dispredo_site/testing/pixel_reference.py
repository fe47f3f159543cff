"""Independent reference implementations of the pixel rules, written from the rules themselves
(numpy only: no Pillow resize, transpose or convert, no pydicom LUT functions), for the pixel
rule tests to compare ``dispredo_core.imaging`` against.

The rules:

- Resizing to the model's S x S is a triangle (bilinear) filter widened by the reduction factor,
  so that a reduction averages every input pixel it covers (antialiased). On each axis, an
  output pixel i of a reduction by s = in / out (s >= 1) is centred at input coordinate
  (i + 0.5) s; input pixel j (centre j + 0.5) weighs max(0, 1 - |j + 0.5 - (i + 0.5) s| / s),
  the weights normalised over the pixels inside the image. An enlargement (s < 1) uses the
  unwidened triangle (width 1): plain bilinear interpolation between pixel centres. The two
  axes are resized independently, so a non-square image is stretched to the square, never
  cropped or padded.
- EXIF Orientation (TIFF 6.0 / Exif 2.3) says where the stored row 0 and column 0 are shown.
- Colour to gray is the ITU-R 601-2 luma L = 0.299 R + 0.587 G + 0.114 B; alpha is ignored.
- A DICOM window (PS3.3 C.11.2.1.2.1) is linear: y = ((x - (c - 0.5)) / (w - 1) + 0.5), clipped
  to 0..1, for the modality value x = stored * slope + intercept.
"""

import numpy as np


def resampling_weights(size_in, size_out):
    """The [size_out, size_in] matrix of one axis's resize (rows sum to 1)."""
    scale = size_in / size_out
    width = max(scale, 1.0)
    centres_in = np.arange(size_in) + 0.5
    weights = np.empty((size_out, size_in))
    for i in range(size_out):
        row = np.clip(1.0 - np.abs(centres_in - (i + 0.5) * scale) / width, 0.0, None)
        weights[i] = row / row.sum()
    return weights


def resized(pixels, size):
    """``pixels`` [h, w] resized to [size, size] by the rule above, as float."""
    height, width = pixels.shape
    return resampling_weights(height, size) @ np.asarray(pixels, dtype=np.float64) @ resampling_weights(width, size).T


# The stored -> shown turn of each EXIF Orientation, from where it says the stored row 0 and
# column 0 are shown.
EXIF_TURNS = {
    1: lambda a: a,  # row 0 at the top, column 0 on the left
    2: lambda a: a[:, ::-1],  # top, right
    3: lambda a: a[::-1, ::-1],  # bottom, right
    4: lambda a: a[::-1, :],  # bottom, left
    5: lambda a: a.T,  # left, top
    6: lambda a: a.T[:, ::-1],  # right, top
    7: lambda a: a.T[::-1, ::-1],  # right, bottom
    8: lambda a: a.T[::-1, :],  # left, bottom
}


def shown(stored, orientation):
    """The stored pixels [h, w] as a viewer shows them for ``orientation``."""
    return np.ascontiguousarray(EXIF_TURNS[orientation](stored))


def luma(rgb):
    """ITU-R 601-2 luma of an [..., 3] RGB array, as float."""
    return np.asarray(rgb, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


def dicom_window(values, centre, width):
    """The linear DICOM window of modality ``values`` as 0..255 display pixels (float)."""
    y = (np.asarray(values, dtype=np.float64) - (centre - 0.5)) / (width - 1) + 0.5
    return np.clip(y, 0.0, 1.0) * 255.0


def min_max(values):
    """``values`` stretched so that their minimum is 0 and their maximum 255 (float)."""
    values = np.asarray(values, dtype=np.float64)
    return (values - values.min()) * 255.0 / (values.max() - values.min())
