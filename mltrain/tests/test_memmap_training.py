"""Training reads memory-mapped splits a batch at a time: row views, batches, pooled folds, the guard's sample."""

from pathlib import Path

import numpy as np
import pytest

from mltrain.folds import pooled_folds
from mltrain.holdout import guard_sample
from mltrain.rows import Rows
from mltrain.tests.helpers import SIZE, make_preprocessed, tiny_config


def numbered(count, start=0, side=2):
    """uint8 images [count, side, side] where image i is all (start + i) % 256."""
    values = (np.arange(start, start + count) % 256).astype(np.uint8)
    return np.repeat(values, side * side).reshape(count, side, side)


@pytest.fixture
def two_memmaps(tmp_path):
    np.save(tmp_path / "a.npy", numbered(5))
    np.save(tmp_path / "b.npy", numbered(3, start=100))
    return np.load(tmp_path / "a.npy", mmap_mode="r"), np.load(tmp_path / "b.npy", mmap_mode="r")


def test_rows_read_the_concatenation_in_the_order_asked(two_memmaps):
    rows = Rows(two_memmaps)
    whole = np.concatenate([np.asarray(part) for part in two_memmaps])

    assert rows.shape == (8, 2, 2) and rows.dtype == np.uint8 and len(rows) == 8
    np.testing.assert_array_equal(np.asarray(rows), whole)
    np.testing.assert_array_equal(rows[[7, 0, 5, 4]], whole[[7, 0, 5, 4]])
    np.testing.assert_array_equal(rows[2:6], whole[2:6])
    np.testing.assert_array_equal(rows[6], whole[6])
    mask = np.array([True, False, False, True, False, True, True, False])
    np.testing.assert_array_equal(rows[mask], whole[mask])


def test_a_subset_of_rows_reads_nothing_until_indexed_and_then_its_own_rows(two_memmaps):
    rows = Rows(two_memmaps)
    mask = np.array([False, True, False, False, True, True, False, True])
    fold = rows.subset(mask)

    assert isinstance(fold, Rows) and fold.shape == (4, 2, 2)
    np.testing.assert_array_equal(fold.index, [1, 4, 5, 7])
    np.testing.assert_array_equal(fold[[3, 0]][:, 0, 0], [102, 1])
    np.testing.assert_array_equal(fold.subset([2, 3])[:][:, 0, 0], [100, 102])


def test_rows_refuse_parts_of_other_shapes_and_rows_out_of_range(two_memmaps):
    with pytest.raises(ValueError, match=r"^Rows of different shapes: \[\(5, 2, 2\), \(2, 3, 3\)\]\.$"):
        Rows([two_memmaps[0], numbered(2, side=3)])
    with pytest.raises(IndexError, match="^Row index out of range for 8 rows.$"):
        Rows(two_memmaps, index=[0, 8])


def test_the_guard_is_fitted_on_every_image_under_the_cap_and_a_fixed_draw_over_it(two_memmaps):
    rows = Rows(two_memmaps)
    patients = np.arange(8) // 2
    whole = np.asarray(rows)

    pixels, chosen_patients = guard_sample(rows, patients, max_pixels=8 * 4)  # 8 images of 4 pixels: all of them
    np.testing.assert_array_equal(pixels, whole)
    np.testing.assert_array_equal(chosen_patients, patients)

    pixels, chosen_patients = guard_sample(rows, patients, max_pixels=5 * 4 + 3)  # room for 5
    drawn = np.sort(np.random.default_rng(0).choice(8, 5, replace=False))
    np.testing.assert_array_equal(pixels, whole[drawn])
    np.testing.assert_array_equal(chosen_patients, patients[drawn])
    np.testing.assert_array_equal(guard_sample(rows, patients, max_pixels=23)[0], pixels)  # the same draw again


def test_pooled_folds_view_the_two_memory_maps_without_copying_them(tmp_path):
    directory = make_preprocessed(tmp_path / "data", balanced=False)
    pooled = pooled_folds(directory, 2, seed=0)

    pixels = pooled["pixels"]
    assert isinstance(pixels, Rows) and all(isinstance(part, np.memmap) for part in pixels.parts)
    assert [Path(part.filename).name for part in pixels.parts] == ["train_pixels.npy", "val_pixels.npy"]
    expected = np.concatenate([np.load(directory / "train_pixels.npy"), np.load(directory / "val_pixels.npy")])
    mask = pooled["fold_of"] == 1
    np.testing.assert_array_equal(pixels.subset(mask)[:], expected[mask])


class Recording:
    """A stand-in for a pixel array that records how many images each read asks for."""

    def __init__(self, array):
        self.array, self.reads = array, []

    def __len__(self):
        return len(self.array)

    @property
    def shape(self):
        return self.array.shape

    def __getitem__(self, key):
        values = self.array[key]
        self.reads.append(len(values))
        return values


@pytest.mark.slow
def test_a_fit_reads_training_and_validation_images_a_batch_at_a_time(tmp_path):
    from dispredo_core.findings import FINDINGS
    from mltrain.fit import fit_network
    from mltrain.networks import WeightedBinaryCrossentropy

    rng = np.random.default_rng(0)
    train = Recording(rng.integers(0, 256, (24, SIZE, SIZE), dtype=np.uint8))
    val = Recording(rng.integers(0, 256, (130, SIZE, SIZE), dtype=np.uint8))  # more than a scoring batch
    labels = (rng.random((154, len(FINDINGS))) < 0.3).astype(np.uint8)
    config = tiny_config(tmp_path, epochs=1, patience=1, augment=False, degrade=0.0)

    fit_network(
        config, len(FINDINGS), WeightedBinaryCrossentropy([1.0] * len(FINDINGS)),
        train, labels[:24], val, labels[24:], FINDINGS, "tiny", None, 0,
    )

    # Every read is one batch: 8 training images, or up to 128 to score (Keras first reads two
    # batches to learn their shapes, then both: 128 + 2 images).
    assert set(train.reads) == {8} and len(train.reads) >= 24 // 8
    assert val.reads == [128, 2, 128, 2]
