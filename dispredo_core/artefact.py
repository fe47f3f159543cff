"""The on-disk format of a trained model version, shared by ``mltrain train`` and the web app.

A model version is a directory (the file and tensor names are ``dispredo_core.serving``'s)::

    metadata.json   format_version, name, strategy, findings (in order), thresholds,
                    input_size, serving (file, input and output names), keras_files,
                    metrics, config, data_manifest, created_at; holdout, reliability,
                    operating_point and guard where the artefact carries them
    model.onnx      the serving model (ONNX Runtime; the web process never imports TensorFlow)
    *.keras         the trained Keras model(s), for retraining and evaluation
    holdout_scores.npz   scores of patients the model did not train on (``dispredo_core.reliability``):
                    the source of ``reliability``, ``operating_point`` and ``thresholds``
    guard.npz       the input guard fitted on the training images (``dispredo_core.guard``)
    MODEL_CARD.md   optional: training data, intended use, figures, limitations
    patients.json   the patients the model trained on ("train") and selected it on ("val")
    hog.npz         only for an ensemble joined with HOG + logistic regression (``mltrain.hog_member``):
                    each member's regression, standardisers and calibration, served inside model.onnx

The serving model takes ``image``: float32 [N, S, S, 1] holding the uint8 pixels of
``dispredo_core.imaging.to_model_pixels`` (0..255; normalisation is inside the model) and returns
``probabilities``: float32 [N, 14] in the order of ``findings`` and ``cams``: float32
[N, h, w, 14], each finding's class activation map (last conv features times head weights).

Artefacts are written to a temporary directory and renamed when complete, so a directory
with a readable metadata.json is a finished one.
"""

import json
from pathlib import Path

from dispredo_core.findings import FINDINGS
from dispredo_core.serving import METADATA_FILE, MODEL_CARD_FILE, ONNX_FILE

FORMAT_VERSION = 1


class ArtefactError(Exception):
    """A model directory that is missing, incomplete or of an unknown format."""


# The project's folder (the repository root): relative artefact locations are relative to it.
PROJECT_DIR = Path(__file__).resolve().parents[1]


def resolve(location):
    """An artefact location as stored in the database: absolute, or relative to the project."""
    path = Path(location)
    return path if path.is_absolute() else PROJECT_DIR / path


def model_card_path(location):
    """Where the model card of the artefact at ``location`` is, if it has one."""
    return resolve(location) / MODEL_CARD_FILE


def read_metadata(location):
    """The validated metadata of the artefact at ``location``; raises ``ArtefactError``."""
    directory = resolve(location)
    try:
        metadata = json.loads((directory / METADATA_FILE).read_text())
    except FileNotFoundError as exc:
        raise ArtefactError(f"No model artefact at {directory} (missing {METADATA_FILE}).") from exc
    except json.JSONDecodeError as exc:
        raise ArtefactError(f"{directory / METADATA_FILE} is not valid JSON: {exc}.") from exc
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ArtefactError(
            f"Model artefact {directory} has format version {metadata.get('format_version')!r}; "
            f"this Dispredo reads version {FORMAT_VERSION}."
        )
    if list(metadata.get("findings", [])) != list(FINDINGS):
        raise ArtefactError(f"Model artefact {directory} does not predict the 14 findings in order.")
    missing = [name for name in FINDINGS if name not in metadata.get("thresholds", {})]
    if missing:
        raise ArtefactError(f"Model artefact {directory} has no threshold for {', '.join(missing)}.")
    serving = directory / metadata.get("serving", {}).get("file", ONNX_FILE)
    if not serving.is_file():
        raise ArtefactError(f"Model artefact {directory} has no serving model ({serving.name}).")
    return metadata


def write_metadata(directory, metadata):
    """Write metadata.json into ``directory`` (a temporary one, renamed by the caller)."""
    metadata = {"format_version": FORMAT_VERSION, **metadata}
    (Path(directory) / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True))
    return metadata
