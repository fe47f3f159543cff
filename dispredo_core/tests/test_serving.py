"""The serving contract (``dispredo_core.serving``): the names on disk and in the graph, which the
shipped model uses, and how a session is opened."""

import json
from pathlib import Path

import numpy as np
import pytest

from dispredo_core import serving

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "default"


def test_the_names_are_those_of_the_format_on_disk():
    # Changing one of these changes the artefact format: artefacts made before would no longer load.
    assert (serving.METADATA_FILE, serving.ONNX_FILE, serving.PATIENTS_FILE) == (
        "metadata.json", "model.onnx", "patients.json"
    )
    assert (serving.HOLDOUT_FILE, serving.GUARD_FILE, serving.HOG_FILE, serving.MODEL_CARD_FILE) == (
        "holdout_scores.npz", "guard.npz", "hog.npz", "MODEL_CARD.md"
    )
    assert (serving.INPUT_NAME, serving.OUTPUT_NAMES) == ("image", ("probabilities", "cams"))


def test_the_shipped_model_is_written_in_those_names():
    metadata = json.loads((SHIPPED / serving.METADATA_FILE).read_text())

    assert metadata["serving"]["file"] == serving.ONNX_FILE
    assert metadata["serving"]["input"] == serving.INPUT_NAME
    assert tuple(metadata["serving"]["outputs"]) == serving.OUTPUT_NAMES
    assert tuple(metadata["serving"]["pixel_range"]) == serving.PIXEL_RANGE
    recorded = (metadata["patients_file"], metadata["guard"]["file"], metadata["hog"]["file"], metadata["holdout"]["file"])
    assert recorded == (serving.PATIENTS_FILE, serving.GUARD_FILE, serving.HOG_FILE, serving.HOLDOUT_FILE)
    assert all((SHIPPED / name).is_file() for name in recorded)


def test_a_session_runs_the_shipped_graph_by_its_tensor_names():
    session = serving.open_session(SHIPPED / serving.ONNX_FILE, threads=1)

    assert [tensor.name for tensor in session.get_inputs()] == [serving.INPUT_NAME]
    assert tuple(tensor.name for tensor in session.get_outputs()) == serving.OUTPUT_NAMES
    size = json.loads((SHIPPED / serving.METADATA_FILE).read_text())["input_size"]
    probabilities, cams = serving.run_batch(session, np.full((2, size, size, 1), 128.0, np.float32))
    assert probabilities.shape == (2, 14) and cams.shape[0] == 2 and cams.shape[-1] == 14
    assert np.all((probabilities > 0) & (probabilities < 1))


@pytest.mark.parametrize("variable, threads, expected", [(None, None, 2), ("3", None, 3), ("3", 1, 1)])
def test_session_options_take_threads_from_the_call_the_environment_or_two(monkeypatch, variable, threads, expected):
    if variable is None:
        monkeypatch.delenv(serving.THREADS_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(serving.THREADS_VARIABLE, variable)

    options = serving.session_options(threads)

    assert options.intra_op_num_threads == expected
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
