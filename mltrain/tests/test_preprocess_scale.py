"""What lets preprocess run at full scale: images written in place, a bounded number in flight,
the official split on demand, and the synthetic full-size layout of bench.nih_full_layout."""

import importlib
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mltrain.preprocess import IN_FLIGHT_CHUNKS, MAX_CHUNKSIZE, PixelFile, PreprocessError, load_all, preprocess

from mltrain.tests.nih_layout import HEADER, made_up_row, write_label_file


def test_a_pixel_file_takes_images_in_any_order(tmp_path):
    path = tmp_path / "train_pixels.npy"
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 3), dtype=np.uint8)

    file = PixelFile(path, 5, 3)
    for position in (3, 0, 4, 1, 2):
        file.write(position, images[position])
    file.close()

    assert np.array_equal(np.load(path, mmap_mode="r"), images)
    assert np.load(path).dtype == np.uint8


def test_a_pixel_file_is_zeros_where_nothing_was_written(tmp_path):
    file = PixelFile(tmp_path / "val_pixels.npy", 4, 2)
    file.write(1, np.full((2, 2), 7, dtype=np.uint8))
    file.close()

    assert np.load(tmp_path / "val_pixels.npy").tolist() == [[[0, 0], [0, 0]], [[7, 7], [7, 7]]] + [[[0, 0], [0, 0]]] * 2


def tiny_png(tmp_path):
    path = tmp_path / "tiny.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(path)
    return str(path)


def test_the_pool_takes_only_a_bounded_number_of_images_ahead_and_closes_early(tmp_path):
    image, total, pulled = tiny_png(tmp_path), 3000, [0]

    def tasks():
        for index in range(total):
            pulled[0] += 1
            yield (None, index), image, 4

    results = load_all(tasks(), total, workers=2)
    key, pixels, width, error = next(results)
    settled, deadline = -1, time.monotonic() + 10
    while pulled[0] != settled and time.monotonic() < deadline:  # wait until the pool takes no more
        settled = pulled[0]
        time.sleep(0.2)
    closer = threading.Thread(target=results.close, daemon=True)  # stop early: the pool must still close
    closer.start()
    closer.join(timeout=30)

    assert settled <= IN_FLIGHT_CHUNKS * 2 * MAX_CHUNKSIZE + 1 < total
    assert not closer.is_alive()
    assert pixels.shape == (4, 4) and (width, error) == (8, None)


def test_it_can_require_the_official_split(small_nih, tmp_path):
    with pytest.raises(PreprocessError) as error:
        preprocess(small_nih, tmp_path / "out", size=16, workers=1, progress=False, official_split=True)

    assert str(error.value) == (
        f"--official-split: {small_nih} has no train_val_list.txt and test_list.txt. Put the official lists "
        "of the NIH download beside its label file, or leave out --official-split for a split by patient."
    )
    assert not (tmp_path / "out").exists()


# bench.nih_full_layout, on a made-up sample: a label file of 23 rows and 3 small images.


@pytest.fixture(scope="module")
def layout():
    """The bench script's module (``python -m bench.nih_full_layout``)."""
    return importlib.import_module("bench.nih_full_layout")


@pytest.fixture
def made_up_sample(tmp_path):
    sample = tmp_path / "sample"
    folder = sample / "images_001" / "images"
    folder.mkdir(parents=True)
    rows = [made_up_row(f"{p:08d}_{i:03d}.png", "No Finding", p, 64) for p in range(1, 8) for i in range(3)]
    rows += [made_up_row("00000009_000.png", "Mass", 9, 64), made_up_row("00000010_000.png", "Mass", 10, 64)]
    write_label_file(sample / "Data_Entry_2017.csv", HEADER, sorted(rows, reverse=True))  # the layout sorts them
    for value, name in enumerate(("00000002_001.png", "00000005_002.png", "99999999_000.png")):
        Image.fromarray(np.full((8, 8), value * 50, dtype=np.uint8)).save(folder / name)
    return sample


def build(layout, folder, sample, **options):
    return layout.build_layout(folder, sample, images="all", folder_sizes=(5, 10, 8), progress=None, **options)


def files(folder):
    return {path.relative_to(folder).as_posix(): path for path in sorted(folder.glob("images_*/images/*.png"))}


def test_the_layout_puts_every_row_in_the_folders_of_the_download(layout, made_up_sample, tmp_path):
    summary = build(layout, tmp_path / "full", made_up_sample)

    placed = files(tmp_path / "full")
    names = sorted(Path(name).name for name in placed)
    assert len(placed) == 23 and names == sorted(f"{p:08d}_{i:03d}.png" for p in range(1, 8) for i in range(3)) + [
        "00000009_000.png", "00000010_000.png"
    ]
    assert [name for name in placed if name.startswith("images_001/")] == [f"images_001/images/{n}" for n in names[:5]]
    assert summary["folders"] == {"images_001": 5, "images_002": 10, "images_003": 8}
    assert (tmp_path / "full" / "Data_Entry_2017.csv").read_bytes() == (made_up_sample / "Data_Entry_2017.csv").read_bytes()


def test_the_layout_is_hard_links_to_the_sample(layout, made_up_sample, tmp_path):
    build(layout, tmp_path / "full", made_up_sample)

    sample = {path.name: os.stat(path).st_ino for path in made_up_sample.glob("images_001/images/*.png")}
    placed = files(tmp_path / "full")
    inodes = {name: os.stat(path).st_ino for name, path in placed.items()}
    assert set(inodes.values()) == set(sample.values())
    # An image the sample has is linked to itself; the others take the sample's images in turn.
    assert inodes["images_001/images/00000002_001.png"] == sample["00000002_001.png"]
    assert inodes["images_002/images/00000005_002.png"] == sample["00000005_002.png"]
    assert os.stat(made_up_sample / "images_001" / "images" / "99999999_000.png").st_nlink > 1


def test_building_the_layout_again_changes_nothing(layout, made_up_sample, tmp_path):
    build(layout, tmp_path / "full", made_up_sample)
    before = {name: os.stat(path).st_ino for name, path in files(tmp_path / "full").items()}
    lists = [(tmp_path / "full" / name).read_text() for name in ("train_val_list.txt", "test_list.txt")]

    again = build(layout, tmp_path / "full", made_up_sample)

    assert (again["linked"], again["kept"], again["removed"]) == (0, 23, 0)
    assert {name: os.stat(path).st_ino for name, path in files(tmp_path / "full").items()} == before
    assert [(tmp_path / "full" / name).read_text() for name in ("train_val_list.txt", "test_list.txt")] == lists


def test_a_smaller_limit_removes_the_rest(layout, made_up_sample, tmp_path):
    build(layout, tmp_path / "full", made_up_sample)

    summary = build(layout, tmp_path / "full", made_up_sample, limit=7)

    assert (summary["linked"], summary["kept"], summary["removed"]) == (0, 7, 16)
    assert summary["folders"] == {"images_001": 5, "images_002": 2}
    assert not (tmp_path / "full" / "images_003").exists()


def test_the_generated_lists_split_by_patient(layout, made_up_sample, tmp_path):
    summary = build(layout, tmp_path / "full", made_up_sample)

    train_val = (tmp_path / "full" / "train_val_list.txt").read_text().split()
    test = (tmp_path / "full" / "test_list.txt").read_text().split()
    assert summary["lists"] == "generated by patient (the sample has no official lists)"
    assert sorted(train_val + test) == sorted(Path(name).name for name in files(tmp_path / "full"))
    assert train_val == sorted(train_val) and test == sorted(test)
    patient = lambda name: name.split("_")[0]  # noqa: E731
    assert not {patient(name) for name in train_val} & {patient(name) for name in test}
    assert 0 < len(test) <= round(layout.OFFICIAL_TEST_SHARE * 23)


def test_the_full_distribution_adds_up_to_the_label_file(layout):
    folders = layout.folder_of_rows(112_120)

    assert np.bincount(folders)[1:].tolist() == [4_999] + [10_000] * 10 + [7_121]
    assert layout.FULL_SIZE == 112_120


def test_the_layout_refuses_a_folder_it_did_not_build(layout, made_up_sample, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")

    with pytest.raises(layout.BenchError) as error:
        build(layout, tmp_path / "mine", made_up_sample)

    assert str(error.value) == f"{tmp_path / 'mine'} holds other files (no .nih_full_layout.json); give a new or empty folder."


def test_the_layout_says_when_hard_links_cannot_cross_filesystems(layout, made_up_sample):
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(made_up_sample).st_dev:
        pytest.skip("no second filesystem (/dev/shm) to try a hard link across")
    folder = other / f"dispredo-layout-test-{os.getpid()}"
    try:
        with pytest.raises(layout.BenchError) as error:
            build(layout, folder, made_up_sample)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    assert "is on another filesystem than the sample" in str(error.value)
    assert str(error.value).endswith("hard links cannot cross filesystems. Give a folder on the sample's filesystem.")
