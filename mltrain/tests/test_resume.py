"""train --resume: epoch checkpoints written atomically, a run found and checked before it continues,
and an interrupted run that ends as the uninterrupted one does."""

import json
import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from diagnosis.lifecycle.models import ModelVersion
from mltrain import checkpoints
from mltrain.checkpoints import EpochState, Member
from mltrain.config import TrainConfig
from mltrain.tests.helpers import make_preprocessed


def test_an_epoch_state_reads_back_as_written(tmp_path):
    member = Member(tmp_path / "member-1")
    assert member.state() is None
    weights = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7], dtype=np.int64)]
    state = EpochState(
        epoch=3, seconds=1.5, stopped=True,
        model=weights, optimizer=[np.array(4, dtype=np.int64)],
        callbacks={
            "early_stopping": {"wait": 2, "best": 0.625, "best_weights": weights, "none": None},
            "validation": {"history": [0.5, float("nan"), 0.625]},
        },
    )
    member.save_state(state)

    read = member.state()
    assert (read.epoch, read.seconds, read.stopped) == (3, 1.5, True)
    for got, want in zip(read.model + read.callbacks["early_stopping"]["best_weights"], weights * 2):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert read.optimizer[0] == 4
    assert {k: v for k, v in read.callbacks["early_stopping"].items() if k != "best_weights"} == {
        "wait": 2, "best": 0.625, "none": None,
    }
    np.testing.assert_array_equal(read.callbacks["validation"]["history"], [0.5, np.nan, 0.625])
    # Written under a temporary name and renamed: nothing else is left in the folder.
    assert [path.name for path in member.directory.iterdir()] == ["epoch.npz"]


REPO = Path(__file__).resolve().parents[2]
TINY = ["--size", "32", "--batch-size", "8", "--seed", "3"]


@pytest.fixture
def folders(tmp_path, settings):
    """Preprocessed tiny data, with models and runs under ``tmp_path``."""
    settings.DISPREDO_MODEL_DIR = tmp_path / "models"
    settings.DISPREDO_MLTRAIN_DIR = tmp_path / "mltrain"
    return make_preprocessed(tmp_path / "data", balanced=False)


def refusal(*options):
    with pytest.raises(CommandError) as refused:
        call_command("train", *options, verbosity=0, stdout=StringIO())
    return str(refused.value)


@pytest.mark.django_db
def test_resume_refuses_without_a_checkpoint(tmp_path, folders):
    runs = tmp_path / "mltrain" / "runs"
    assert refusal("--data-dir", str(folders), *TINY, "--resume") == (
        f"No interrupted run to resume in {runs}. Train without --resume to start one."
    )
    assert refusal("--data-dir", str(folders), *TINY, "--resume", "--name", "nothing") == (
        f"No interrupted run named 'nothing' to resume: {runs / 'nothing'} holds no checkpoint. "
        "Train without --resume to start it."
    )


@pytest.mark.django_db
def test_resume_refuses_a_run_started_with_other_settings_and_a_new_run_refuses_its_name(tmp_path, folders):
    manifest = json.loads((folders / "manifest.json").read_text())
    started = TrainConfig(size=32, batch_size=8, seed=3, epochs=4, folds=2, name="cv", data_dir=str(folders))
    checkpoints.start(started, folders, manifest)

    assert refusal("--data-dir", str(folders), *TINY, "--epochs", "5", "--resume") == (
        "The interrupted run 'cv' was started with other settings, so --resume would not continue it: "
        "epochs 4 (now 5), folds 2 (now 1). Resume with the same options, or train without --resume to start again."
    )
    other = make_preprocessed(tmp_path / "other", balanced=False)
    assert refusal("--data-dir", str(other), *TINY, "--epochs", "4", "--folds", "2", "--resume", "--name", "cv") == (
        "The interrupted run 'cv' was started with other settings, so --resume would not continue it: "
        f"data {folders.resolve()} (now {other.resolve()}). Resume with the same options, or train without "
        "--resume to start again."
    )
    assert refusal("--data-dir", str(folders), *TINY, "--epochs", "4", "--folds", "2", "--name", "cv") == (
        f"An interrupted run named 'cv' is in {tmp_path / 'mltrain' / 'runs' / 'cv'}; continue it with --resume, "
        "or delete that folder to start it again."
    )


def wait_for(path, process, seconds=240):
    """Wait until ``path`` exists while ``process`` runs; fail if it ends first or time runs out."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"train ended (status {process.returncode}) before {path} was written: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"No {path} after {seconds} s.")
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.django_db
def test_a_killed_ensemble_resumes_at_its_member_and_epoch_and_ends_as_an_uninterrupted_run(tmp_path, folders):
    from mltrain.export import onnx_session, run_onnx

    options = [
        "--data-dir", str(folders), *TINY, "--epochs", "3", "--patience", "2", "--folds", "2", "--ema", "0.9",
        "--no-calibrate",
    ]
    env = {
        **os.environ, "DISPREDO_DATA_DIR": str(tmp_path / "site"), "DISPREDO_MLTRAIN_DIR": str(tmp_path / "mltrain"),
        "DISPREDO_MODEL_DIR": str(tmp_path / "models"), "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("DATABASE_URL", None)
    python, manage = sys.executable, str(REPO / "manage.py")
    command = f"{python} {manage} migrate -v0 && exec {python} {manage} train {' '.join(options)} --name resumed -v0"
    process = subprocess.Popen(["sh", "-c", command], env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "mltrain" / "runs" / "resumed"
    wait_for(run / "member-2" / "epoch.npz", process)
    os.kill(process.pid, signal.SIGKILL)  # a real interruption: no handler runs
    process.wait()
    # Killed with the first fold's network finished and the second part-way.
    assert Member(run / "member-1").finished() and not Member(run / "member-2").finished()
    reached = Member(run / "member-2").state().epoch
    assert 1 <= reached < 3

    out = StringIO()
    call_command("train", *options, "--resume", stdout=out)  # without --name: the run that wrote last
    assert f"fold 1/2: finished before the interruption; loaded from {run / 'member-1'}." in out.getvalue()
    assert f"fold 2/2: resuming after epoch {reached} of 3." in out.getvalue()
    assert not run.exists()  # registered: its checkpoints are removed
    call_command("train", *options, "--name", "whole", verbosity=0)

    resumed, whole = (ModelVersion.objects.get(name=name) for name in ("resumed", "whole"))
    assert resumed.thresholds == whole.thresholds
    assert resumed.metrics["val"] == whole.metrics["val"]
    assert resumed.metrics["training"]["fits"]["fold 2"]["resumed_after_epoch"] == reached
    for key in ("epochs_run", "best_epoch", "best_val_mean_auroc"):
        assert [resumed.metrics["training"]["fits"][f][key] for f in ("fold 1", "fold 2")] == [
            whole.metrics["training"]["fits"][f][key] for f in ("fold 1", "fold 2")
        ]
    pixels = np.load(folders / "val_pixels.npy")
    scores = [run_onnx(onnx_session(Path(v.artefact_path) / "model.onnx"), pixels)[0] for v in (resumed, whole)]
    # Batches and augmentation depend on (seed, epoch) and the saved state, and ops are deterministic:
    # the resumed run's served probabilities are the uninterrupted run's, bit for bit.
    assert np.max(np.abs(scores[0] - scores[1])) == 0.0


@pytest.mark.slow
def test_a_member_that_early_stopping_had_ended_is_not_trained_further(tmp_path):
    """Killed after the checkpoint of the epoch at which early stopping ended the fit (before the
    network was kept): resuming trains no epoch and returns the best epoch's weights."""
    import keras

    from dispredo_core.findings import FINDINGS
    from mltrain import dataset
    from mltrain.fit import fit_network
    from mltrain.networks import WeightedBinaryCrossentropy, build_model, build_training_model
    from mltrain.tests.helpers import tiny_config

    make_preprocessed(tmp_path / "data", balanced=False)
    train, val = (dataset.load_split(tmp_path / "data", name) for name in ("train", "val"))
    config = tiny_config(tmp_path, epochs=5, patience=1)
    model = build_training_model(build_model(config), config)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy")
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(9)
    best = [np.full_like(w, 0.01 * i) for i, w in enumerate(model.get_weights())]
    member = Member(tmp_path / "member-1")
    member.save_state(EpochState(
        epoch=3, seconds=2.0, stopped=True,
        model=[keras.ops.convert_to_numpy(v) for v in model.variables],
        optimizer=[keras.ops.convert_to_numpy(v) for v in model.optimizer.variables],
        callbacks={
            "validation": {"history": [0.5, 0.75, 0.625]},
            "early_stopping": {"wait": 1, "stopped_epoch": 2, "best": 0.75, "best_epoch": 1, "best_weights": best},
        },
    ))

    network, figures = fit_network(
        config, len(FINDINGS), WeightedBinaryCrossentropy([1.0] * len(FINDINGS)),
        train.pixels, train.labels, val.pixels, val.labels, FINDINGS, "tiny", StringIO(), 0, member=member,
    )

    assert (figures["epochs_run"], figures["best_epoch"], figures["best_val_mean_auroc"]) == (3, 2, 0.75)
    assert figures["optimizer_steps"] == 9 and figures["resumed_after_epoch"] == 3 and figures["seconds"] >= 2.0
    kept = build_training_model(network, config).get_weights()
    for got, want in zip(kept, best):
        np.testing.assert_array_equal(got, want)
    assert member.finished() and not (member.directory / "epoch.npz").exists()
