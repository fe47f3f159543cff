"""The settings sweep (``python -m mltrain.lab.sweep``): settings read with their types, each run scored out of fold."""

import json

import pytest

from mltrain.tests.helpers import SPLIT_COUNTS


def test_sweep_reads_settings_with_their_types():
    from mltrain.lab.sweep import parse_run

    assert parse_run(["name=big", "alpha=0.5", "epochs=3", "augment=false"]) == (
        "big",
        {"alpha": 0.5, "epochs": 3, "augment": False},
    )
    with pytest.raises(SystemExit, match="Unknown setting 'colour'"):
        parse_run(["colour=red"])


@pytest.mark.slow
def test_sweep_scores_each_run_out_of_fold_and_writes_them(tmp_path, data_dir):
    from mltrain.lab.sweep import main

    out = tmp_path / "sweep.json"
    results = main(
        ["--data", str(data_dir), "--folds", "2", "--quiet", "--out", str(out),
         "--run", "name=plain", "alpha=0.25", "epochs=1", "batch_size=8", "degrade=0.0", "augment=false"]
    )

    assert json.loads(out.read_text()).keys() == {"plain"}
    figures = results["plain"]
    assert 0.0 <= figures["oof_mean_auroc"] <= 1.0
    assert len(figures["fold_mean_aurocs"]) == 2 and figures["best_epochs"] == [1, 1]
    assert set(figures["oof_mean_auroc_by_source"]) == {"64px", "larger"}
    assert figures["images_seen"] == SPLIT_COUNTS["train"] + SPLIT_COUNTS["val"]  # each image fits in one fold's other half
