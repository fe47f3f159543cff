"""A corpus of images that are not frontal chest X-rays, built at test time from what is installed.

Nothing is downloaded and no image file is committed: the images come from scikit-learn's and
scikit-image's bundled sample images (only the files inside the wheels, never a pooch fetch),
pydicom's bundled CT and MR test slices, renders made here (text, charts, screenshot-like UI),
synthetic patterns (noise, uniform, gradients, checkerboards) and inverted real chest X-rays from
the NIH sample. Sizes vary, and both grayscale and RGB images are included.
"""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

# scikit-image data files shipped inside the wheel (skimage/data/*.png|jpg), read directly from
# disk so that no fetcher can try the network.
SKIMAGE_FILES = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "chessboard_GRAY.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "color.png",
    "grass.png",
    "gravel.png",
    "horse.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "logo.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "phantom.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)

# pydicom test slices shipped inside the wheel: cross-sectional CT and MR, not radiographs.
PYDICOM_FILES = ("CT_small.dcm", "MR_small.dcm", "liver_1frame.dcm")

# Real frontal X-rays of the NIH sample, inverted (a negative is not what the model was trained on).
INVERTED_XRAYS = ("images_002/images/00000075_000.png", "images_002/images/00001369_000.png")


def build_corpus(nih_sample_dir):
    """[(name, PIL.Image), ...]: at least 40 images that are not frontal chest X-rays."""
    corpus = []
    corpus += _sklearn_images()
    corpus += _skimage_images()
    corpus += _dicom_slices()
    corpus += _text_renders()
    corpus += _charts()
    corpus += _ui_renders()
    corpus += _synthetic()
    corpus += _inverted_xrays(Path(nih_sample_dir))
    return corpus


def _sklearn_images():
    from sklearn.datasets import load_digits, load_sample_images

    images = []
    sample = load_sample_images()
    for filename, array in zip(sample.filenames, sample.images):
        images.append((f"sklearn:{Path(filename).name}", Image.fromarray(array)))
    digits = load_digits()
    for index, size in ((0, 64), (1, 128), (8, 256), (17, 512)):
        array = np.round(digits.images[index] * (255.0 / 16.0)).astype(np.uint8)
        image = Image.fromarray(array, mode="L").resize((size, size), Image.Resampling.NEAREST)
        images.append((f"sklearn:digit-{digits.target[index]}-{size}px", image))
    return images


def _skimage_images():
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    images = []
    for name in SKIMAGE_FILES:
        with Image.open(folder / name) as image:
            image.load()
            images.append((f"skimage:{name}", image.copy()))
    return images


def _dicom_slices():
    import pydicom
    from pydicom.data import get_testdata_file

    images = []
    for name in PYDICOM_FILES:
        dataset = pydicom.dcmread(get_testdata_file(name))
        pixels = dataset.pixel_array.astype(np.float64)
        if pixels.ndim == 3:
            pixels = pixels[0]
        low, high = np.percentile(pixels, [0.5, 99.5])
        scaled = np.clip((pixels - low) / max(high - low, 1e-9), 0.0, 1.0)
        images.append((f"pydicom:{name}", Image.fromarray(np.round(scaled * 255).astype(np.uint8), mode="L")))
    return images


def _text_renders():
    images = []
    page = Image.new("L", (600, 800), 255)
    draw = ImageDraw.Draw(page)
    for line in range(38):
        draw.text((30, 20 + line * 20), f"Line {line:02d}: the quick brown fox jumps over the lazy dog " * 2, fill=0)
    images.append(("text:document-page", page))

    title = Image.new("RGB", (800, 300), (250, 250, 240))
    draw = ImageDraw.Draw(title)
    draw.text((40, 100), "CHEST X-RAY REPORT", fill=(20, 20, 120), font_size=72)
    images.append(("text:large-title", title))

    code = Image.new("RGB", (512, 512), (30, 30, 30))
    draw = ImageDraw.Draw(code)
    for line in range(30):
        indent = 20 + 24 * (line % 4)
        source = f"def scores(self, pixels): return x{line} * {line + 1}"
        draw.text((indent, 10 + line * 16), source, fill=(180, 220, 160))
    images.append(("text:code-dark", code))

    scan = Image.new("L", (1024, 1024), 235)
    draw = ImageDraw.Draw(scan)
    for line in range(60):
        draw.text((60, 30 + line * 16), "Patient name ____________  Date ________  Signature ________", fill=40)
    images.append(("text:scanned-form-1024", scan))
    return images


def _figure_image(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    image = Image.open(buffer)
    image.load()
    return image


def _charts():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rng = np.random.default_rng(0)
    images = []

    figure = Figure(figsize=(6, 4), dpi=80)
    axes = figure.add_subplot()
    x = np.linspace(0, 10, 200)
    axes.plot(x, np.sin(x), x, np.cos(x) * 0.5)
    axes.set_title("Training loss")
    images.append(("chart:line-plot", _figure_image(figure)))

    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.add_subplot()
    fpr = np.linspace(0, 1, 100)
    for power in (0.3, 0.5, 0.8):
        axes.plot(fpr, fpr**power)
    axes.plot([0, 1], [0, 1], "k--")
    axes.set_xlabel("False positive rate")
    axes.set_ylabel("True positive rate")
    axes.set_title("ROC curves")
    images.append(("chart:roc-curves", _figure_image(figure)))

    figure = Figure(figsize=(7, 4), dpi=90)
    axes = figure.add_subplot()
    axes.bar(range(14), rng.integers(10, 200, 14))
    axes.set_title("Findings per class")
    images.append(("chart:bar-chart", _figure_image(figure)))

    figure = Figure(figsize=(4, 4), dpi=64)
    axes = figure.add_subplot()
    axes.scatter(rng.normal(size=300), rng.normal(size=300), s=6)
    images.append(("chart:scatter-256px", _figure_image(figure).convert("L")))

    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.add_subplot()
    axes.imshow(rng.normal(size=(20, 20)), cmap="viridis")
    axes.set_title("Heatmap")
    images.append(("chart:heatmap", _figure_image(figure)))
    return images


def _ui_renders():
    images = []
    form = Image.new("RGB", (1280, 800), (245, 246, 248))
    draw = ImageDraw.Draw(form)
    draw.rectangle((0, 0, 1280, 60), fill=(33, 37, 41))
    draw.text((20, 20), "Dispredo - Worklist", fill=(255, 255, 255), font_size=20)
    draw.rectangle((0, 60, 220, 800), fill=(230, 232, 236))
    for n in range(8):
        draw.text((20, 90 + 40 * n), f"Menu item {n + 1}", fill=(40, 40, 40), font_size=16)
    for n in range(6):
        top = 100 + 90 * n
        draw.text((260, top), f"Field {n + 1}", fill=(20, 20, 20), font_size=16)
        draw.rectangle((260, top + 25, 900, top + 60), outline=(150, 150, 150), fill=(255, 255, 255))
    draw.rounded_rectangle((260, 660, 420, 710), radius=8, fill=(13, 110, 253))
    draw.text((300, 675), "Upload", fill=(255, 255, 255), font_size=18)
    images.append(("ui:form-screenshot", form))

    grid = Image.new("RGB", (1024, 768), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    draw.rectangle((0, 0, 1024, 50), fill=(0, 90, 160))
    for row in range(20):
        top = 70 + row * 34
        if row % 2:
            draw.rectangle((20, top, 1004, top + 34), fill=(240, 244, 250))
        for column in range(5):
            cell = f"R{row} C{column} 0.{row * 7 % 100:02d}"
            draw.text((30 + column * 200, top + 8), cell, fill=(30, 30, 30), font_size=14)
    images.append(("ui:table-screenshot", grid))

    dark = Image.new("L", (800, 600), 25)
    draw = ImageDraw.Draw(dark)
    for n in range(5):
        draw.rounded_rectangle((40 + 150 * n, 60, 170 + 150 * n, 200), radius=12, fill=70 + 20 * n)
        draw.text((55 + 150 * n, 120), f"Card {n}", fill=230, font_size=18)
    draw.rectangle((40, 260, 760, 560), outline=200, width=3)
    images.append(("ui:dark-dashboard", dark))
    return images


def _synthetic():
    rng = np.random.default_rng(1)
    images = []
    uniform = rng.integers(0, 256, (512, 512), dtype=np.uint8)
    images.append(("noise:uniform-gray-512", Image.fromarray(uniform, mode="L")))
    gauss = np.clip(rng.normal(128, 40, (300, 400, 3)), 0, 255).astype(np.uint8)
    images.append(("noise:gaussian-rgb", Image.fromarray(gauss, mode="RGB")))
    coarse = Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), mode="L")
    blurred = coarse.resize((256, 256), Image.Resampling.BICUBIC)
    images.append(("noise:smooth-blobs-256", blurred))

    images.append(("uniform:black", Image.new("L", (256, 256), 0)))
    images.append(("uniform:white", Image.new("L", (1024, 1024), 255)))
    images.append(("uniform:grey", Image.new("RGB", (400, 400), (128, 128, 128))))

    ramp = np.tile(np.linspace(0, 255, 512), (512, 1)).astype(np.uint8)
    images.append(("gradient:horizontal", Image.fromarray(ramp, mode="L")))
    images.append(("gradient:vertical-rgb", Image.fromarray(np.stack([ramp.T] * 3, axis=-1), mode="RGB")))
    yy, xx = np.mgrid[-1:1:256j, -1:1:256j]
    radial = np.clip(255 * (1 - np.sqrt(xx**2 + yy**2) / np.sqrt(2)), 0, 255).astype(np.uint8)
    images.append(("gradient:radial", Image.fromarray(radial, mode="L")))

    for cells, size in ((8, 256), (32, 1024)):
        board = (np.indices((cells, cells)).sum(axis=0) % 2 * 255).astype(np.uint8)
        image = Image.fromarray(board, mode="L").resize((size, size), Image.Resampling.NEAREST)
        images.append((f"checkerboard:{cells}x{cells}", image))
    return images


def _inverted_xrays(nih_sample_dir):
    images = []
    for relative in INVERTED_XRAYS:
        with Image.open(nih_sample_dir / relative) as image:
            gray = image.convert("RGBA").convert("L") if image.mode in ("RGBA", "LA") else image.convert("L")
            images.append((f"inverted-xray:{Path(relative).name}", ImageOps.invert(gray)))
    return images
