"""A cross-validated ensemble joined with HOG + logistic regression (``manage.py addhog``)."""

from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from dispredo_core.artefact import read_metadata
from dispredo_core.findings import FINDINGS
from dispredo_core.serving import (
    CAMS,
    HOG_FILE,
    HOLDOUT_FILE,
    INPUT_NAME,
    ONNX_FILE,
    OUTPUT_NAMES,
    PROBABILITIES,
    run_batch,
)
from mltrain import hog, hog_member, registry
from mltrain.evaluation import evaluate
from mltrain.folds import pooled_folds
from mltrain.members import load_members
from mltrain.tests.helpers import SPLIT_COUNTS, tiny_config


def test_the_served_hog_is_the_numpy_hog():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 64, 64)).astype(np.uint8)
    images[1] = 128  # flat: no gradient anywhere
    images[2, :, 32:] = 250  # an edge on noise
    images[3] = np.add.outer(np.arange(64), 2 * np.arange(64)).astype(np.uint8)  # one oblique direction

    served = hog.hog_graph(tf.constant(images.astype(np.float32)[..., None])).numpy()

    assert served.shape == (4, 7 * 7 * 4 * hog.BINS)
    np.testing.assert_allclose(served, hog.hog(images), atol=1e-5)
    # A 32 px image gives 3x3 blocks.
    assert hog.hog_graph(tf.constant(images[:1, :32, :32].astype(np.float32)[..., None])).shape == (1, 3 * 3 * 36)


def test_the_linear_map_gives_the_logistic_regressions_logits():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    features = rng.normal(5.0, 3.0, (80, 6))
    labels = np.zeros((80, 2), dtype=np.uint8)
    labels[:, 0] = features[:, 0] + rng.normal(0, 2, 80) > 5  # the second finding never occurs

    weights, biases = hog.fit_linear(features, labels, strength=0.1)

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=3000))
    pipeline.fit(features, labels[:, 0])
    np.testing.assert_allclose(features @ weights[:, 0] + biases[0], pipeline.decision_function(features), atol=1e-8)
    np.testing.assert_array_equal(weights[:, 1], 0.0)
    assert biases[1] == 0.0


def test_a_network_whose_logits_do_not_move_is_left_out_of_the_score():
    logits = np.stack([np.linspace(-2, 2, 50), np.full(50, 0.3) + 1e-5 * np.sin(np.arange(50))], axis=1)

    np.testing.assert_array_equal(hog_member.network_weights(logits), [hog_member.WEIGHT, 0.0])

    member = hog_member.HogPart(
        weights=np.zeros((3, 2)), biases=np.zeros(2), hog_centre=np.array([1.0, 1.0]), hog_scale=np.array([2.0, 2.0]),
        cnn_centre=np.array([0.0, 0.3]), cnn_scale=np.array([2.0, 1e-3]), cnn_weight=hog_member.network_weights(logits),
    )
    score = member.combine(np.array([[2.0, 0.30001]]), np.array([[5.0, 5.0]]))
    # 0.5 * (2 - 0) / 2 + 0.5 * (5 - 1) / 2, and for the second finding the HOG part alone.
    np.testing.assert_allclose(score, [[1.5, 1.0]])


@pytest.mark.slow
@pytest.mark.django_db
def test_addhog_serves_each_network_joined_with_its_folds_hog_regression(tmp_path, data_dir, capsys):
    from mltrain.export import AGREEMENT_TOLERANCE, keras_outputs, onnx_session, run_onnx

    registry.train_and_register(tiny_config(tmp_path, name="cv", folds=2, epochs=2), verbosity=0)

    call_command("addhog", "--version", "cv", "--name", "cv-hog", "--strength", "0.01")

    out = capsys.readouterr().out
    assert "Registered cv-hog: out-of-fold mean AUROC " in out and "HOG + LR alone" in out
    version = registry.find_version("cv-hog")
    assert not version.is_active
    directory = registry.artefact_directory(version)
    metadata = read_metadata(directory)
    assert metadata["hog"]["from"] == "cv" and metadata["hog"]["strength"] == 0.01
    assert metadata["hog"]["network_weight"] == hog_member.WEIGHT
    assert metadata["threshold_method"].startswith(
        "specificity 0.95 on the holdout negatives: calibrated out-of-fold predictions of 2 patient-grouped "
        "folds of train + val joined with HOG"
    )
    # manage.py holdout rebuilds the joined members' out-of-fold scores as addhog computed them.
    with np.load(directory / HOLDOUT_FILE) as stored:
        written = stored["probabilities"]
    call_command("holdout", "--version", "cv-hog", verbosity=0)
    with np.load(directory / HOLDOUT_FILE) as stored:
        np.testing.assert_allclose(stored["probabilities"], written, atol=1e-5)
    assert set(metadata["thresholds"]) == set(FINDINGS)
    pooled = SPLIT_COUNTS["train"] + SPLIT_COUNTS["val"]
    edema = version.metrics["val"]["findings"]["Edema"]
    assert edema["positives"] + edema["negatives"] == pooled

    # Each member's HOG part was fitted without the fold its network left out.
    members = load_members(directory, metadata)
    assert [type(member) for member in members] == [hog_member.HybridMember] * 2
    parts = hog_member.load_parts(directory / HOG_FILE)
    pooled_data = pooled_folds(data_dir, 2, metadata["config"]["seed"])
    features = hog.hog(pooled_data["pixels"])
    fitting = pooled_data["fold_of"] != 0
    weights, biases = hog.fit_linear(features[fitting], pooled_data["labels"][fitting], 0.01)
    np.testing.assert_allclose(parts[0].weights, weights)
    np.testing.assert_allclose(parts[0].biases, biases)
    assert parts[0].weights.shape == (3 * 3 * 36, len(FINDINGS))

    # The one ONNX graph computes HOG and both parts; its maps are the networks' own.
    pixels = np.load(data_dir / "test_pixels.npy")
    probabilities, cams = run_onnx(onnx_session(directory / ONNX_FILE), pixels)
    expected = np.mean([member.probabilities(pixels) for member in members], axis=0)
    assert probabilities.shape == (len(pixels), len(FINDINGS))
    assert np.max(np.abs(probabilities - expected)) <= AGREEMENT_TOLERANCE
    _, network_cams = keras_outputs(members, pixels)
    np.testing.assert_allclose(cams, network_cams, atol=1e-4 * np.abs(network_cams).max())
    report = evaluate(version, split="test", data_dir=data_dir)
    assert report["images"] == SPLIT_COUNTS["test"]

    with pytest.raises(CommandError, match="^cv-hog already has HOG members.$"):
        call_command("addhog", "--version", "cv-hog", "--name", "again")
    with pytest.raises(CommandError, match="^A model version named 'cv-hog' already exists; choose another --name.$"):
        call_command("addhog", "--version", "cv", "--name", "cv-hog")
    with pytest.raises(CommandError, match="^No model version named 'missing'; list them in the admin.$"):
        call_command("addhog", "--version", "missing", "--name", "again")
    with pytest.raises(CommandError, match="^--strength must be positive.$"):
        call_command("addhog", "--version", "cv", "--name", "again", "--strength", "0")
    single = registry.train_and_register(tiny_config(tmp_path, name="single"), verbosity=0)
    with pytest.raises(CommandError, match=r"^single is not a calibrated cross-validated multilabel ensemble"):
        call_command("addhog", "--version", single.name, "--name", "again")
    assert not registry.find_version("again")


def test_the_joined_graph_does_work_shared_by_its_members_once():
    import onnx
    from onnx import helper, numpy_helper

    from mltrain.export import _join, onnx_session

    def member(scale):
        # image -> Abs -> times 2 (the same in every member) -> times / plus its own scale
        nodes = [
            helper.make_node("Abs", [INPUT_NAME], ["a"]),
            helper.make_node("Mul", ["a", "two"], ["b"]),
            helper.make_node("Mul", ["b", "scale"], [PROBABILITIES]),
            helper.make_node("Add", ["b", "scale"], [CAMS]),
        ]
        constants = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
                     numpy_helper.from_array(np.array(scale, np.float32), "scale")]
        image = helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [None, 3])
        outputs = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [None, 3]) for name in OUTPUT_NAMES]
        graph = helper.make_graph(nodes, "member", [image], outputs, initializer=constants)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    joined = _join([member(1.0), member(3.0)], "mean")

    ops = [node.op_type for node in joined.graph.node]
    assert ops.count("Abs") == 1 and ops.count("Mul") == 1 + 2 and ops.count("Add") == 2  # shared once, own per member
    assert len(joined.graph.initializer) == 3  # one "two", two scales
    onnx.checker.check_model(joined)
    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "joined.onnx"
    onnx.save(joined, str(path))
    image = np.array([[-1.0, 2.0, -3.0]], np.float32)
    probabilities, cams = run_batch(onnx_session(path), image)
    np.testing.assert_allclose(probabilities, np.abs(image) * 2 * (1.0 + 3.0) / 2)
    np.testing.assert_allclose(cams, np.abs(image) * 2 + (1.0 + 3.0) / 2)


@pytest.mark.slow
def test_the_shipped_models_members_give_what_its_graph_serves():
    from mltrain.export import AGREEMENT_TOLERANCE, keras_outputs, onnx_session, run_onnx

    directory = Path(__file__).resolve().parents[2] / "models" / "default"
    metadata = read_metadata(directory)
    members = load_members(directory, metadata)
    assert [type(member) for member in members] == [hog_member.HybridMember] * len(metadata["keras_files"])
    size = metadata["input_size"]
    rng = np.random.default_rng(0)
    gradient = np.add.outer(np.arange(size), np.arange(size)).astype(np.uint8)
    pixels = np.stack([gradient, gradient.T, rng.integers(0, 256, (size, size)).astype(np.uint8)])

    probabilities, cams = keras_outputs(members, pixels)
    served, served_cams = run_onnx(onnx_session(directory / ONNX_FILE), pixels)

    assert np.max(np.abs(probabilities - served)) <= AGREEMENT_TOLERANCE
    np.testing.assert_allclose(cams, served_cams, atol=AGREEMENT_TOLERANCE * 10 * np.abs(served_cams).max())
