"""The HOG + logistic regression reference scored on Dispredo's own split."""

import numpy as np
import pytest

from mltrain import nih
from mltrain.hog import BINS, STRENGTHS, hog
from mltrain.lab.baselines import linear_baseline
from mltrain.tests.nih_layout import HEADER, write_label_file
from mltrain.tests.helpers import make_preprocessed


def test_hog_sees_edges_and_their_direction():
    flat = np.full((1, 32, 32), 128, dtype=np.uint8)
    vertical_edge = flat.copy()
    vertical_edge[:, :, 16:] = 250  # brightness changes along x: gradient direction 0 degrees

    assert hog(flat).shape == (1, 3 * 3 * 4 * BINS)  # 4x4 cells of 8 px, 3x3 blocks of 2x2 cells
    np.testing.assert_allclose(hog(flat), 0.0, atol=1e-6)
    features = hog(vertical_edge).reshape(3, 3, 4, BINS)
    assert features[..., 0].sum() > 0
    np.testing.assert_allclose(features[..., 1:], 0.0, atol=1e-6)


def test_the_baseline_chooses_its_strength_on_validation_and_scores_test(tmp_path):
    data = make_preprocessed(tmp_path / "data", balanced=False)

    result = linear_baseline(data)

    assert result["strength"] in STRENGTHS
    assert set(result["val_mean_auroc"]) == set(STRENGTHS)
    assert result["strength"] == max(result["val_mean_auroc"], key=result["val_mean_auroc"].get)
    # The synthetic data's first finding is a bright top-left quarter: HOG sees its edge.
    assert result["test_auroc"]["Atelectasis"] > 0.8
    assert 0.0 <= result["test_mean_auroc"] <= 1.0


def test_out_of_fold_scores_come_from_a_fit_without_the_fold(tmp_path):
    from mltrain.folds import pooled_folds
    from mltrain.hog import fit_predict
    from mltrain.lab.baselines import cross_validated
    from mltrain.metrics import per_finding_auroc

    data = make_preprocessed(tmp_path / "data", balanced=False)

    result = cross_validated(data, strength=1e-3, folds=2, seed=0)

    pooled = pooled_folds(data, 2, 0)
    held_out = pooled["fold_of"] == 1
    features = hog(pooled["pixels"])
    expected = fit_predict(features[~held_out], pooled["labels"][~held_out], features[held_out], 1e-3)
    np.testing.assert_allclose(result["scores"][held_out], expected)
    assert len(result["fold_mean_auroc"]) == 2
    # Every image scored once, out of fold: the bright quarter is still found.
    assert per_finding_auroc(pooled["labels"], result["scores"])["Atelectasis"] > 0.8


def test_the_attributes_baseline_reads_age_sex_and_view_of_each_image(tmp_path, capsys):
    from mltrain.lab.baselines import features_of, main
    from mltrain.tests.nih_layout import point_at_label_file

    data = make_preprocessed(tmp_path / "data", balanced=False)
    splits = ("train", "val", "test")
    names = np.concatenate([np.load(data / f"{split}_names.npy") for split in splits])
    labels = np.concatenate([np.load(data / f"{split}_labels.npy") for split in splits])
    # Consolidation (the second finding) comes with old age; sex and view follow the image's order.
    rows = [
        [str(name), "x", "0", "1", "80" if label[1] else str(30 + i % 20), "MF"[i % 2], ("PA", "AP")[i % 3 == 0],
         "2500", "2048", "0.143", "0.143"]
        for i, (name, label) in enumerate(zip(names, labels))
    ]

    with pytest.raises(SystemExit) as refused:
        main(["--data", str(data), "--features", "attributes"])
    assert refused.value.code == 2
    assert capsys.readouterr().err.startswith(
        "--features attributes needs the NIH label file the data came from (synthetic): No NIH label file in synthetic"
    )

    point_at_label_file(data, tmp_path / "nih", rows)
    features = features_of("attributes", data, None, names[:3])
    first_age = (float(rows[0][4]) - 50) / 20  # standardised: (age - 50) / 20
    np.testing.assert_allclose(features[0], [first_age, 1.0, 1.0, first_age**2])  # male, AP
    np.testing.assert_allclose(features[1][1:3], [0.0, 0.0])  # female, PA
    result = main(["--data", str(data), "--features", "attributes", "--folds", "2"])
    assert result["features"] == 4
    assert result["test_auroc"]["Consolidation"] == 1.0  # age alone separates it
    assert "Age, age², sex and view (4 features) + logistic regression" in capsys.readouterr().out
    assert len(result["cross_validated"]["fold_mean_auroc"]) == 2


def test_the_thumbnail_is_the_layout_of_brightness_whatever_the_exposure():
    from mltrain.lab.baselines import thumbnail

    image = np.full((1, 32, 32), 40, dtype=np.uint8)
    image[:, :16, :16] = 200  # a bright top-left quarter

    cells = thumbnail(image).reshape(16, 16)

    # One quarter at +sqrt(3), three at -1/sqrt(3): the image standardised, then block means.
    np.testing.assert_allclose(cells[:8, :8], np.sqrt(3), rtol=1e-3)
    np.testing.assert_allclose(cells[8:, :], -1 / np.sqrt(3), rtol=1e-3)
    dimmer = (image.astype(np.float32) * 0.5 + 30).astype(np.uint8)
    np.testing.assert_allclose(thumbnail(dimmer), thumbnail(image), atol=1e-3)


def _row(name, age="45", sex="F", view="PA"):
    return [name, "No Finding", "0", name[:8].lstrip("0") or "0", age, sex, view, "2500", "2048", "0.143", "0.143"]


def test_attributes_are_read_in_the_order_asked_with_impossible_ages_clipped(tmp_path):
    path = tmp_path / "Data_Entry_2017.csv"
    write_label_file(path, HEADER, [
        _row("00000001_000.png", "57", "M", "PA"),
        _row("00000002_000.png", "414", "F", "AP"),
        _row("00000003_000.png", "30", "F", "PA"),
    ])

    attributes = nih.read_image_attributes(path, ["00000002_000.png", "00000001_000.png"])

    np.testing.assert_array_equal(attributes, [[100.0, 0.0, 1.0], [57.0, 1.0, 0.0]])
    assert attributes.dtype == np.float32


@pytest.mark.parametrize(
    "rows, message",
    [
        ([_row("00000001_000.png")], "Data_Entry_2017.csv does not list 1 of the images, e.g. 00000009_000.png."),
        ([_row("00000009_000.png", sex="X")],
         "Data_Entry_2017.csv line 2 (00000009_000.png) has gender 'X' and view 'PA'; expected M/F and AP/PA."),
        ([_row("00000009_000.png", age="old")], "Data_Entry_2017.csv line 2 (00000009_000.png) has the age 'old'."),
    ],
)
def test_attributes_refuse_unlisted_images_and_unreadable_values(tmp_path, rows, message):
    path = tmp_path / "Data_Entry_2017.csv"
    write_label_file(path, HEADER, rows)
    with pytest.raises(nih.NihDataError) as raised:
        nih.read_image_attributes(path, ["00000009_000.png"])
    assert str(raised.value) == message
