"""bin/train-nih-gpu refuses, saying what is missing, before it starts anything."""

import subprocess

from mltrain.tests.nih_layout import REPO

RECIPE = REPO / "bin" / "train-nih-gpu"


def recipe(*arguments, **env):
    result = subprocess.run(
        ["bash", str(RECIPE), *map(str, arguments)], capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **env}
    )
    return result.returncode, result.stderr.strip()


def test_it_needs_the_folder_of_the_download(tmp_path):
    assert recipe() == (1, "train-nih-gpu: give the folder of the NIH download: bin/train-nih-gpu /data/nih [train options]")
    assert recipe(tmp_path / "nih") == (1, f"train-nih-gpu: the NIH folder {tmp_path / 'nih'} does not exist.")
    assert recipe(tmp_path) == (
        1, f"train-nih-gpu: {tmp_path} has no Data_Entry_2017.csv: point at the folder of the NIH ChestX-ray14 download."
    )


def test_it_needs_the_official_lists(tmp_path):
    (tmp_path / "Data_Entry_2017.csv").write_text("Image Index,Finding Labels,Patient ID\n")
    (tmp_path / "train_val_list.txt").write_text("")

    assert recipe(tmp_path) == (
        1,
        f"train-nih-gpu: {tmp_path} has no test_list.txt: the recipe trains and tests on the official split; "
        "put the lists of the download beside the label file.",
    )


def test_it_needs_every_archive_and_every_image(tmp_path):
    for name in ("Data_Entry_2017.csv", "train_val_list.txt", "test_list.txt"):
        (tmp_path / name).write_text("")
    for number in range(1, 12):
        (tmp_path / f"images_{number:03d}" / "images").mkdir(parents=True)

    assert recipe(tmp_path) == (
        1,
        f"train-nih-gpu: {tmp_path} lacks images_012 (each images_NNN/images/ is one archive of the download, "
        "images_NNN.tar.gz, extracted there).",
    )
    (tmp_path / "images_012" / "images").mkdir(parents=True)
    (tmp_path / "images_012" / "images" / "00030805_000.png").write_bytes(b"")
    assert recipe(tmp_path) == (
        1, f"train-nih-gpu: {tmp_path} holds 1 of the 112,120 images: an archive is missing or incompletely extracted."
    )
