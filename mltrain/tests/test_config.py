"""``TrainConfig``: checked when made, declared once for ``manage.py train``, read back from artefacts."""

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
from django.core.management import CommandError

from dispredo_core.serving import METADATA_FILE
from mltrain.config import TrainConfig, TrainingError, add_arguments, from_options, from_recorded
from mltrain.management.commands.train import Command

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default"


def _parser():
    return Command().create_parser("manage.py", "train")


def test_every_field_is_an_option_of_the_train_command():
    destinations = {action.dest for action in _parser()._actions}
    missing = [entry.name for entry in dataclasses.fields(TrainConfig) if entry.name not in destinations]
    assert not missing, f"TrainConfig fields without a manage.py train option: {missing}"


def test_no_options_give_the_default_configuration():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert from_options(vars(parser.parse_args([]))) == TrainConfig()


def test_options_reach_their_fields_with_their_types():
    options = vars(_parser().parse_args([
        "--strategy", "per-finding", "--size", "64", "--alpha", "0.5", "--ema", "0.99", "--normalise", "image",
        "--no-augment", "--no-calibrate", "--data-dir", "data", "--out", "models", "--name", "x", "--activate",
        "--degrade-min-scale", "0.5",
    ]))
    config = from_options(options)
    assert config == TrainConfig(
        strategy="per-finding", size=64, alpha=0.5, ema=0.99, normalise="image", augment=False, calibrate=False,
        data_dir="data", output_dir="models", name="x", activate=True, degrade_min_scale=0.5,
    )


def test_a_choice_outside_the_list_is_refused_by_the_parser():
    with pytest.raises(CommandError) as refused:
        _parser().parse_args(["--alpha", "0.3"])
    assert str(refused.value) == "Error: argument --alpha: invalid choice: 0.3 (choose from 0.25, 0.5, 0.75, 1.0)"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"ema": 1.0}, "ema must be in [0, 1), not 1.0."),
        ({"ema": -0.5}, "ema must be in [0, 1), not -0.5."),
        ({"normalise": "zscore"}, "normalise must be one of fixed, image, not 'zscore'."),
        ({"min_epochs": -1}, "min_epochs must be an integer from 0 to epochs - 1 (59), not -1."),
        ({"min_epochs": 5, "epochs": 5}, "min_epochs must be an integer from 0 to epochs - 1 (4), not 5."),
        ({"folds": 0}, "folds must be a positive integer, not 0."),
        ({"folds": 3, "strategy": "per-finding"}, "folds (a cross-validated ensemble) applies to the multilabel strategy only."),
    ],
)
def test_config_refuses_bad_options_with_their_message(changes, message):
    with pytest.raises(ValueError) as error:
        TrainConfig(**changes)
    assert str(error.value) == message


def test_the_shipped_models_recorded_configuration_reads_back():
    recorded = json.loads((DEFAULT_MODEL / METADATA_FILE).read_text())["config"]
    assert {"auxiliary", "mixup", "repeats", "lr_patience"} <= set(recorded)  # written by an older version

    config = from_recorded(recorded, name="copy")

    assert (config.strategy, config.folds, config.ema, config.normalise, config.calibrate) == (
        "multilabel", 5, 0.99, "image", True
    )
    assert config.name == "copy" and config.size == 64


@pytest.mark.parametrize("retired", [{"repeats": 2}, {"auxiliary": 0.5}, {"mixup": 0.2}, {"lr_patience": 3}])
def test_a_model_trained_with_a_retired_option_cannot_be_remade(retired):
    with pytest.raises(TrainingError) as refused:
        from_recorded({"strategy": "multilabel", "folds": 2, **retired})
    assert str(refused.value) == (
        f"The model was trained with {next(iter(retired))}, which this version of Dispredo no longer has; "
        "train a new one instead."
    )
