"""Tiny preprocessed folders and training settings the mltrain tests train on (seconds, not minutes)."""

import json

import numpy as np

from dispredo_core.findings import FINDINGS
from mltrain.config import TrainConfig
from mltrain.dataset import FORMAT_VERSION

SIZE = 32
SPLIT_COUNTS = {"train": 28, "val": 20, "test": 20}


def make_preprocessed(directory, size=SIZE, seed=0, balanced=True):
    """A tiny preprocessed directory in mltrain.dataset's format, every finding in both classes of each split."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    patient = 1
    splits = {}
    for split, count in SPLIT_COUNTS.items():
        labels = np.zeros((count, len(FINDINGS)), dtype=np.uint8)
        labels[np.arange(len(FINDINGS)) % count, np.arange(len(FINDINGS))] = 1  # a positive per finding
        labels |= (rng.random((count, len(FINDINGS))) < 0.15).astype(np.uint8)
        labels[-2:] = 0  # and at least two negatives
        pixels = rng.integers(0, 256, (count, size, size), dtype=np.uint8)
        # A learnable signal: the first finding brightens the top-left corner.
        pixels[labels[:, 0] == 1, : size // 2, : size // 2] = 250
        patients = np.arange(patient, patient + count, dtype=np.int64)
        patient += count
        np.save(directory / f"{split}_pixels.npy", pixels)
        np.save(directory / f"{split}_labels.npy", labels)
        np.save(directory / f"{split}_patients.npy", patients)
        np.save(directory / f"{split}_names.npy", np.array([f"{p:08d}_000.png" for p in patients]))
        np.save(directory / f"{split}_source_sizes.npy", np.where(np.arange(count) % 2, 64, 256).astype(np.int32))
        splits[split] = {
            "count": count,
            "patients": count,
            "per_finding": dict(zip(FINDINGS, map(int, labels.sum(axis=0)))),
            "no_finding": int((labels.sum(axis=1) == 0).sum()),
        }
    manifest = {
        "format_version": FORMAT_VERSION,
        "size": size,
        "findings": list(FINDINGS),
        "seed": seed,
        "source": "synthetic",
        "split_method": "grouped",
        "splits": splits,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    if balanced:
        (directory / "balanced").mkdir()
        train_pixels = np.load(directory / "train_pixels.npy")
        train_labels = np.load(directory / "train_labels.npy")
        for index, finding in enumerate(FINDINGS):
            np.save(directory / "balanced" / f"{finding}_pixels.npy", train_pixels[:16])
            column = train_labels[:16, index].copy()
            column[:8] = 1 - column[:8] if column.sum() in (0, 16) else column[:8]
            np.save(directory / "balanced" / f"{finding}_labels.npy", column)
    return directory


def tiny_config(tmp_path, **changes):
    options = dict(
        strategy="multilabel",
        size=SIZE,
        alpha=0.25,
        epochs=1,
        patience=1,
        batch_size=8,
        seed=3,
        data_dir=str(tmp_path / "data"),
        output_dir=str(tmp_path / "models"),
    )
    options.update(changes)
    return TrainConfig(**options)
