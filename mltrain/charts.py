"""Charts of the training data, drawn without pyplot (no global state, no display needed)."""

import numpy as np
from matplotlib.figure import Figure

from dispredo_core.findings import DISPLAY_NAMES, FINDINGS, NO_FINDING

from .dataset import SPLITS


def class_frequency_chart(manifest, path):
    """A bar chart of the count of each finding (and of 'No Finding') per split, saved as PNG."""
    names = [DISPLAY_NAMES[name] for name in FINDINGS] + [NO_FINDING]
    positions = np.arange(len(names))
    width = 0.8 / len(SPLITS)
    figure = Figure(figsize=(13, 5.5), dpi=100)
    figure.subplots_adjust(left=0.055, right=0.99, top=0.93, bottom=0.2)  # fixed: one draw, not two
    axes = figure.subplots()
    for offset, split in enumerate(SPLITS):
        summary = manifest["splits"][split]
        counts = [summary["per_finding"][name] for name in FINDINGS] + [summary["no_finding"]]
        bars = axes.bar(
            positions + (offset - (len(SPLITS) - 1) / 2) * width,
            counts,
            width,
            label=f"{split} ({summary['count']:,} images, {summary['patients']:,} patients)",
        )
        axes.bar_label(bars, fontsize=6, padding=1)
    axes.set_xticks(positions, names, rotation=40, ha="right")
    axes.set_ylabel("images")
    axes.set_title(
        f"Images per finding and split: {manifest['images_found']:,} images at {manifest['size']} px, "
        f"{manifest['split_method']} split by patient (an image may have several findings)"
    )
    axes.legend()
    axes.margins(y=0.08)
    figure.savefig(path, format="png")
    return path
