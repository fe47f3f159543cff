"""Calibrate the members of an existing cross-validated ensemble into a new model version
(``manage.py calibrate``), without training again.

Each member is scored on the fold it left out, which ``folds.pooled_folds`` rebuilds from the
ensemble's recorded seed and fold count on the same preprocessed data; the members are then
aligned and calibrated as ``train --folds`` does (``mltrain.calibration``) and written, exported
as a new artefact, which the command registers. The trained weights are untouched apart from each head's scale
and bias, and the original version stays as it was.
"""

from pathlib import Path

from dispredo_core.artefact import read_metadata

from .config import TrainingError, from_recorded
from .folds import ensemble_selection, pooled_folds
from .members import network_members
from .package import write_artefact
from .training import check_name_free, read_training_manifest

# Manifest entries that must match for the folds to be the ones the members were trained on.
SAME_DATA_KEYS = ("size", "seed", "split_method", "splits")


def recalibrate(directory, name, data_dir=None, name_taken=None):
    """A calibrated copy of the uncalibrated ensemble artefact at ``directory``, written as ``name``;
    returns its directory (``name_taken``: as for ``training.train``)."""
    directory = Path(directory)
    metadata = read_metadata(directory)
    require_ensemble(metadata, "only an ensemble's members can be calibrated on the folds they left out.")
    if metadata.get("config", {}).get("calibrate"):
        raise TrainingError(f"{metadata['name']} is already calibrated.")
    config, manifest = copy_config(metadata, name, data_dir, name_taken, calibrate=True)
    from .networks import load_networks

    networks = load_networks(directory, metadata["keras_files"])
    pooled = pooled_folds(config.data_dir, config.folds, config.seed)
    selection = ensemble_selection(networks, pooled, calibrate=True)  # calibrates the networks' heads
    training = {**metadata["metrics"]["training"], "calibrated_from": metadata["name"]}
    return write_artefact(config, network_members(networks), training, selection, manifest, config.data_dir)


def copy_config(metadata, name, data_dir=None, name_taken=None, **changes):
    """``(config, manifest)`` for a new version ``name`` made from an ensemble's members without
    training: its recorded configuration, on data whose folds are the ones it was trained on (its
    recorded data directory unless ``data_dir``). Raises ``TrainingError`` for other data or a taken name."""
    data_dir = check_same_data(metadata, data_dir)
    manifest = read_training_manifest(data_dir)
    config = from_recorded(
        metadata.get("config", {}), name=name, activate=False, data_dir=str(data_dir), output_dir=None, **changes
    )
    check_name_free(config, name_taken)
    return config, manifest


def check_same_data(metadata, data_dir=None):
    """The preprocessed data folder an ensemble was trained on (its recorded one unless ``data_dir``),
    checked to be that data, so its folds can be rebuilt; ``TrainingError`` otherwise."""
    data_dir = Path(data_dir or metadata["data_directory"])
    manifest = read_training_manifest(data_dir)
    trained_on = metadata.get("data_manifest", {})
    changed = [key for key in SAME_DATA_KEYS if manifest.get(key) != trained_on.get(key)]
    if changed:
        raise TrainingError(
            f"The preprocessed data in {data_dir} is not the data {metadata['name']} was trained on "
            f"(its {', '.join(changed)} differ): its folds cannot be rebuilt. Pass --data-dir with that data."
        )
    return data_dir


def require_ensemble(metadata, why):
    """``TrainingError`` (saying ``why`` it matters) unless the artefact is a cross-validated ensemble."""
    if metadata.get("config", {}).get("folds", 1) < 2:
        raise TrainingError(f"{metadata['name']} is not a cross-validated ensemble (trained without --folds): {why}")
