"""Writing a trained model as one artefact (``dispredo_core.artefact``).

``write_artefact`` saves each member's network and arrays (``mltrain.members``), exports and
checks the ONNX serving graph, chooses the thresholds on scores of patients the model did not
train on (``mltrain.holdout``), writes everything to a temporary directory, renames it when
complete and registers the ModelVersion.
"""

import dataclasses
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from django.utils import timezone

from dispredo_core.artefact import write_metadata
from dispredo_core.findings import FINDINGS
from dispredo_core.serving import INPUT_NAME, ONNX_FILE, OUTPUT_NAMES, PATIENTS_FILE, PIXEL_RANGE

from . import dataset
from .holdout import artefact_extras, training_images
from .metrics import binary_report, json_safe, mean_auroc, per_finding_auroc


def keras_files(config):
    """The ``.keras`` file names of an artefact: per-finding in FINDINGS order, one per fold of an ensemble."""
    if config.strategy == "per-finding":
        return [f"{finding}.keras" for finding in FINDINGS]
    if config.folds > 1:
        return [f"fold-{fold + 1}.keras" for fold in range(config.folds)]
    return ["model.keras"]


def save_members(directory, members, files):
    """Save each member's network as its entry of ``files`` and the arrays it adds, one ``.npz`` per
    file name holding every member's arrays and their ``count``; return the metadata they add."""
    stored, metadata = {}, {}
    for index, (member, filename) in enumerate(zip(members, files)):
        member.network.save(Path(directory) / filename)  # the serving network alone: no optimizer, no augmentation
        for name, arrays in member.arrays(index).items():
            stored.setdefault(name, {}).update(arrays)
        metadata.update(member.metadata())
    for name, arrays in stored.items():
        np.savez(Path(directory) / name, count=len(members), **arrays)
    return json_safe(metadata)


def write_artefact(config, members, training, selection, manifest, data_dir):
    """Save ``members`` (``mltrain.members``), export and check the ONNX graph, choose thresholds,
    write the artefact atomically; return its directory (``mltrain.registry`` registers it).

    ``selection``: None to choose thresholds on the validation split with the served graph, or
    ``folds.selection_of``'s out-of-fold predictions. ``training``: the figures of the run.
    """
    from .export import check_agreement, export_onnx, onnx_session, run_onnx

    name = config.name
    output_dir = config.output_directory()
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / name

    partial = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=output_dir))
    try:
        files = keras_files(config)
        added = save_members(partial, members, files)
        export_onnx(members, config.size, partial / ONNX_FILE)

        val = dataset.load_split(data_dir, "val")
        val_pixels = np.asarray(val.pixels)
        agreement = check_agreement(members, partial / ONNX_FILE, val_pixels[:64])
        if selection is None:
            # Thresholds and reported validation figures from the served graph on the validation split.
            probabilities, _ = run_onnx(onnx_session(partial / ONNX_FILE), val_pixels)
            selection_labels = np.asarray(val.labels)
            selection_method = "the validation split"
            fitted = {"train": np.unique(dataset.load_split(data_dir, "train").patients), "val": np.unique(val.patients)}
            holdout_patients, description = val.patients, "the validation split, scored by the served graph"
        else:
            # Each image scored by the members that never saw its patient.
            probabilities, selection_labels = selection["probabilities"], selection["labels"]
            selection_method = (
                f"{'calibrated ' if config.calibrate else ''}out-of-fold predictions of {config.folds} "
                f"patient-grouped folds of train + val{members[0].described}"
            )
            fitted = {"train": np.unique(selection["patients"]), "val": np.array([], dtype=np.int64)}
            holdout_patients = selection["patients"]
            description = f"{selection_method}, each image scored by the members that never saw its patient"
        extras = artefact_extras(
            partial, probabilities, selection_labels, holdout_patients, description,
            *training_images(data_dir, pooled=selection is not None),
        )
        metrics = json_safe(
            {
                "val": validation_metrics(probabilities, selection_labels, extras["thresholds"]),
                "selection": selection_method,
                "uncalibrated_out_of_fold_mean_auroc": (
                    None if selection is None
                    else mean_auroc(per_finding_auroc(selection_labels, selection["uncalibrated_probabilities"]))
                ),
                "training": training,
                "calibration": None if selection is None else selection.get("calibration"),
                "export": agreement,
            }
        )
        (partial / PATIENTS_FILE).write_text(
            json.dumps({split: sorted(map(int, ids)) for split, ids in fitted.items()})
        )
        write_metadata(
            partial,
            {
                "name": name,
                "strategy": config.strategy,
                "findings": list(FINDINGS),
                **extras,
                "input_size": config.size,
                "serving": {
                    "file": ONNX_FILE,
                    "input": INPUT_NAME,
                    "outputs": list(OUTPUT_NAMES),
                    "pixel_range": list(PIXEL_RANGE),
                    "cam_shape": list(agreement["cam_shape"][:2]),
                },
                "keras_files": files,
                **added,
                "metrics": metrics,
                "config": dataclasses.asdict(config),
                "data_manifest": manifest,
                "data_directory": str(data_dir),
                "patients_file": PATIENTS_FILE,
                "created_at": timezone.now().isoformat(),
                "versions": library_versions(),
            },
        )
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def validation_metrics(probabilities, labels, thresholds):
    """Mean AUROC and per finding ``metrics.binary_report`` at ``thresholds``."""
    aurocs = per_finding_auroc(labels, probabilities)
    return {
        "mean_auroc": mean_auroc(aurocs),
        "findings": {
            name: binary_report(labels[:, i], probabilities[:, i], thresholds[name]) for i, name in enumerate(FINDINGS)
        },
    }


def keras_backend():
    import keras

    return keras.backend.backend()


def library_versions():
    import keras

    versions = {"keras": keras.__version__, "keras_backend": keras_backend(), "numpy": np.__version__}
    for package in ("tensorflow-cpu", "tensorflow", "jax", "torch"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def summary_table(metadata):
    """Lines of a per-finding table of validation figures from an artefact's ``metadata``."""
    val = metadata["metrics"]["val"]
    lines = [
        f"{'finding':<20} {'val AUROC':>9} {'threshold':>9} {'recall':>7} {'precision':>9} {'pos':>4}",
        "-" * 63,
    ]
    for name in FINDINGS:
        row = val["findings"][name]
        auc = "n/a" if row["auroc"] is None else f"{row['auroc']:.3f}"
        lines.append(
            f"{name:<20} {auc:>9} {row['threshold']:>9.3f} {row['recall']:>7.2f} {row['precision']:>9.2f} {row['positives']:>4}"
        )
    lines.append("-" * 63)
    mean = val["mean_auroc"]
    lines.append(f"{'mean AUROC':<20} {'n/a' if mean is None else f'{mean:.3f}':>9}")
    return lines
