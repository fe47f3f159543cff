"""Known inputs give known model pixels: the rules of ``to_model_pixels`` and ``open_xray``
(resizing, aspect, EXIF orientation, colour and bit depth, dtype), each compared with an
independent implementation of the rule (``pixel_reference``), not with the code under test.
Lossless PNG carries the known values; JPEG takes the same path once decoded (test_input_exif).
"""

import io

import numpy as np
import pytest
from PIL import Image

from dispredo_core.imaging import open_xray, to_grayscale, to_model_pixels
from dispredo_site.testing.pixel_reference import luma, resized, shown

SIZES = (64, 128)
# Gray levels. Pillow resizes in two 8-bit passes with fixed-point weights, the reference in one
# float pass; a nearest, box, bicubic or Lanczos resize of these patterns is off by far more.
TOLERANCE = 1
ORIENTATION = 0x0112


def pattern(name, height=1024, width=1024):
    """A known uint8 image [height, width]."""
    y, x = np.mgrid[0:height, 0:width]
    values = {
        "horizontal gradient": lambda: x * 255 / (width - 1),
        "vertical gradient": lambda: y * 255 / (height - 1),
        "checkerboard of 16 px": lambda: (x // 16 + y // 16) % 2 * 255,
        "checkerboard of 24 px": lambda: (x // 24 + y // 24) % 2 * 255,
        # Bright, a quarter of the width and an eighth of the height, in the top left corner.
        "corner block": lambda: np.where((x < width // 4) & (y < height // 8), 230, 20),
        "seeded noise": lambda: np.random.default_rng(18).integers(0, 256, (height, width)),
    }[name]()
    return np.round(values).astype(np.uint8)


PATTERNS = (
    "horizontal gradient",
    "vertical gradient",
    "checkerboard of 16 px",
    "checkerboard of 24 px",
    "corner block",
    "seeded noise",
)


def assert_close(pixels, expected):
    assert np.abs(pixels.astype(np.float64) - expected).max() <= TOLERANCE


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", PATTERNS)
def test_a_1024_px_pattern_gives_its_triangle_filtered_pixels(name, size):
    source = pattern(name)
    pixels = to_model_pixels(Image.fromarray(source), size)
    assert pixels.dtype == np.uint8 and pixels.shape == (size, size)
    assert_close(pixels, resized(source, size))


@pytest.mark.parametrize("size", SIZES)
def test_the_corner_block_stays_in_its_corner_at_its_size(size):
    pixels = to_model_pixels(Image.fromarray(pattern("corner block")), size)
    block = pixels[: size // 8 - 1, : size // 4 - 1]  # inside the block, clear of its blurred edge
    assert block.min() == 230 and pixels[size // 8 + 1 :, :].max() == 20 and pixels[:, size // 4 + 1 :].max() == 20


@pytest.mark.parametrize("name", ["checkerboard of 16 px", "corner block", "seeded noise"])
def test_a_smaller_image_is_enlarged_by_bilinear_interpolation(name):
    source = pattern(name, 64, 64)
    assert_close(to_model_pixels(Image.fromarray(source), 128), resized(source, 128))


@pytest.mark.parametrize(("width", "height"), [(320, 160), (160, 320), (1000, 700)])
def test_a_non_square_image_is_stretched_to_the_square_not_cropped_or_padded(width, height):
    source = pattern("corner block", height, width)
    pixels = to_model_pixels(Image.fromarray(source), 64)
    assert_close(pixels, resized(source, 64))
    # The block is a quarter of the width and an eighth of the height whatever the aspect.
    assert pixels[:6, :14].min() == 230 and pixels[10:, :].max() == 20 and pixels[:, 18:].max() == 20


def test_an_image_already_at_the_size_is_taken_as_it_is():
    source = pattern("seeded noise", 64, 64)
    pixels = to_model_pixels(Image.fromarray(source), 64)
    np.testing.assert_array_equal(pixels, source)
    assert pixels.dtype == np.uint8 and pixels.min() == 0 and pixels.max() == 255


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["gray_1024", "rgba_1024"])
def test_real_nih_originals_give_their_triangle_filtered_pixels(sample_images, kind, size):
    with Image.open(sample_images[kind]) as image:
        pixels = to_model_pixels(image, size)
        stored = np.asarray(image)
    gray = stored if stored.ndim == 2 else np.round(luma(stored[..., :3]))
    assert_close(pixels, resized(gray, size))


# 16 colours, each a pixel of a 4 x 4 image (so that no resize is involved).
COLOURS = np.array(
    [
        [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]],
        [[0, 0, 0], [10, 200, 30], [200, 10, 30], [30, 10, 200]],
        [[128, 128, 128], [255, 255, 0], [0, 255, 255], [255, 0, 255]],
        [[1, 2, 3], [90, 180, 250], [250, 180, 90], [77, 77, 77]],
    ],
    dtype=np.uint8,
)
# Alpha from transparent to opaque: it must not change the gray.
ALPHA = np.linspace(0, 255, 16).astype(np.uint8).reshape(4, 4, 1)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "PA"])
def test_colour_becomes_its_601_luma_and_alpha_is_ignored(mode):
    if mode in ("P", "PA"):
        # Each pixel the index of its colour in a palette of exactly these 16 colours.
        image = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4), mode="P")
        image.putpalette(COLOURS.reshape(-1).tolist())
        if mode == "PA":
            image = image.convert("PA")
            image.putalpha(Image.fromarray(ALPHA[..., 0]))
    else:
        image = Image.fromarray(np.concatenate([COLOURS, ALPHA], axis=2) if mode == "RGBA" else COLOURS)
    assert image.mode == mode
    pixels = to_model_pixels(image, 4)
    expected = luma(COLOURS)
    assert_close(pixels, expected)
    assert pixels[0, 0] == 76 and pixels[0, 1] == 150 and pixels[0, 2] == 29  # red, green, blue


def test_gray_with_alpha_keeps_its_gray():
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4) * 17
    image = Image.fromarray(np.stack([gray, ALPHA[..., 0]], axis=2), mode="LA")
    np.testing.assert_array_equal(to_model_pixels(image, 4), gray)


def known_16_bit():
    """Values 1000..5080 (step 16 = one output gray level), some 5 or 11 above a step, and their
    expected 8-bit pixels: (value - min) / (max - min) * 255, rounded (never a tie here)."""
    steps = np.arange(256)
    values = np.concatenate([1000 + 16 * steps, 1000 + 16 * steps[:-1] + 5, 1000 + 16 * steps[:-1] + 11, [3000, 3000]])
    expected = np.concatenate([steps, steps[:-1], steps[:-1] + 1, [125, 125]])
    return values.reshape(32, 24), expected.reshape(32, 24).astype(np.uint8)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32])
def test_16_32_bit_and_float_images_are_stretched_from_their_own_min_to_max(dtype):
    values, expected = known_16_bit()
    image = Image.fromarray(values.astype(dtype))
    assert image.mode == {np.uint16: "I;16", np.int32: "I", np.float32: "F"}[dtype]
    gray = to_grayscale(image)
    assert gray.mode == "L" and gray.size == (24, 32)
    np.testing.assert_array_equal(np.asarray(gray), expected)


def test_a_16_bit_png_upload_is_stretched_from_its_own_min_to_max():
    """A 12-bit detector's 0..4095 in a 16-bit PNG comes out 0..255, not 0..15 (as value / 257 would)."""
    values, expected = known_16_bit()
    buffer = io.BytesIO()
    Image.fromarray((values - 1000).astype(np.uint16)).save(buffer, format="PNG")
    image = open_xray(buffer.getvalue())
    assert image.mode == "L" and image.format == "PNG"
    np.testing.assert_array_equal(np.asarray(image), expected)


def test_a_16_bit_plate_taller_than_one_band_is_stretched_by_its_whole_range():
    """The rows go through in bands; the range is the whole image's, not each band's."""
    height, width = 1100, 1024  # 1024 rows a band
    values = np.full((height, width), 2000, dtype=np.uint16)
    values[:512] = 1000  # the minimum in the first band,
    values[-1, -1] = 5080  # the maximum in the last
    pixels = np.asarray(to_grayscale(Image.fromarray(values)))
    assert pixels.shape == (height, width)
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255 and pixels[1024, 0] == pixels[600, 0] == round(1000 * 255 / 4080)


def test_a_flat_16_bit_image_is_black():
    np.testing.assert_array_equal(to_grayscale(Image.fromarray(np.full((8, 8), 3000, dtype=np.uint16))), 0)


def png(pixels, orientation):
    """Lossless PNG bytes of ``pixels`` with an EXIF Orientation (an eXIf chunk)."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    with io.BytesIO() as buffer:
        Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)
        return buffer.getvalue()


# Distinct values, so that every turn and mirror gives different pixels.
STORED = (np.arange(6 * 9, dtype=np.uint8) * 4).reshape(6, 9)
STORED_SQUARE = (np.arange(8 * 8, dtype=np.uint8) * 3).reshape(8, 8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_upload_is_turned_as_its_exif_orientation_says(orientation):
    image = open_xray(png(STORED, orientation))
    expected = shown(STORED, orientation)
    assert image.size == expected.shape[::-1]
    np.testing.assert_array_equal(np.asarray(image), expected)
    # The turned image carries no orientation left: model pixels of it are not turned again.
    square = open_xray(png(STORED_SQUARE, orientation))
    np.testing.assert_array_equal(to_model_pixels(square, 8), shown(STORED_SQUARE, orientation))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_training_pixels_are_turned_as_the_exif_orientation_says(orientation):
    """mltrain opens files with Pillow and calls to_model_pixels on them."""
    with Image.open(io.BytesIO(png(STORED_SQUARE, orientation))) as image:
        np.testing.assert_array_equal(to_model_pixels(image, 8), shown(STORED_SQUARE, orientation))


def test_a_colour_upload_is_turned_after_its_conversion_to_gray():
    colour = np.stack([STORED, STORED // 2, 255 - STORED], axis=2)
    image = open_xray(png(colour, 6))
    assert image.mode == "L"
    assert_close(np.asarray(image), shown(luma(colour), 6))
