"""Per-epoch checkpoints of a training run, so ``manage.py train --resume`` continues where it stopped.

A run keeps its state in ``DISPREDO_MLTRAIN_DIR/runs/<name>/`` while it trains::

    run.json                   its configuration and the data it trains on (what --resume must match)
    member-<i>/epoch.npz       network i's training state after its last finished epoch
    member-<i>/network.keras   network i once finished (the kept weights), with member-<i>/fit.json

The state after an epoch is all that later epochs depend on: the training model's variables (weights,
batch-norm statistics and the seed states of its random layers), the optimizer's variables, the
number of epochs done, the seconds spent, whether early stopping ended the fit, and the state of
each stateful callback (``state()`` / ``restore()``: early stopping's best weights and wait, the
weight average, the validation scores so far). Batches depend only on (seed, epoch), so an epoch run
after a restore is the epoch the interrupted run would have run. Keras's own ``BackupAndRestore``
keeps weights and the epoch only, in two files; here each file is written under a temporary name and
renamed, so a kill leaves the previous epoch's state whole. ``train`` removes the folder once the
artefact is registered.

A callback's state is a dict of JSON values and lists of arrays (a non-empty list whose items are
all NumPy arrays is stored as arrays).
"""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
from django.conf import settings

from .config import TrainingError

RUNS_DIR = "runs"
RUN_FILE = "run.json"
STATE_FILE = "epoch.npz"
NETWORK_FILE = "network.keras"
FIT_FILE = "fit.json"
# Fields that do not change what is trained: a run resumes whatever they are now. The data folder
# is compared as the resolved path, with its manifest.
FREE_FIELDS = ("name", "activate", "resume", "distribute", "output_dir", "data_dir")


class ResumeError(TrainingError):
    """There is no run to resume, the run found differs from the one asked for, or one is in the way."""


def runs_directory():
    """Where runs keep their checkpoints while they train."""
    return Path(settings.DISPREDO_MLTRAIN_DIR) / RUNS_DIR


@dataclasses.dataclass
class EpochState:
    """A fit's state after ``epoch`` finished epochs."""

    epoch: int
    seconds: float
    stopped: bool  # early stopping ended the fit at this epoch
    model: list  # the training model's variables, in ``model.variables`` order
    optimizer: list  # the optimizer's variables, in ``optimizer.variables`` order
    callbacks: dict  # name -> that callback's ``state()``


class Member:
    """The checkpoint folder of one network of a run."""

    def __init__(self, directory):
        self.directory = Path(directory)

    def finished(self):
        return (self.directory / FIT_FILE).is_file()

    def finish(self, network, figures):
        """Keep the finished ``network`` and its ``figures``; its epoch state is no longer needed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{os.getpid()}.partial.keras"
        network.save(partial)
        os.replace(partial, self.directory / NETWORK_FILE)
        _write_atomic(self.directory / FIT_FILE, json.dumps(figures).encode())  # written last: the mark
        (self.directory / STATE_FILE).unlink(missing_ok=True)

    def load_finished(self):
        """``(network, figures)`` of a finished member."""
        import keras

        from . import networks  # noqa: F401  (registers the custom layers for deserialisation)

        network = keras.models.load_model(self.directory / NETWORK_FILE, compile=False)
        return network, json.loads((self.directory / FIT_FILE).read_text())

    def state(self):
        """The ``EpochState`` of the last finished epoch, or None before the first."""
        path = self.directory / STATE_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            model = [stored[f"model.{i}"] for i in range(meta["model"])]
            optimizer = [stored[f"optimizer.{i}"] for i in range(meta["optimizer"])]
            callbacks = {}
            for name, entries in meta["callbacks"].items():
                callbacks[name] = {
                    key: [stored[f"{name}.{key}.{i}"] for i in range(value["arrays"])] if isinstance(value, dict) else value
                    for key, value in entries.items()
                }
        return EpochState(meta["epoch"], meta["seconds"], meta["stopped"], model, optimizer, callbacks)

    def save_state(self, state):
        """Write ``state`` in place of the previous epoch's, atomically."""
        arrays = {f"model.{i}": value for i, value in enumerate(state.model)}
        arrays.update({f"optimizer.{i}": value for i, value in enumerate(state.optimizer)})
        meta = {
            "epoch": int(state.epoch),
            "seconds": float(state.seconds),
            "stopped": bool(state.stopped),
            "model": len(state.model),
            "optimizer": len(state.optimizer),
            "callbacks": {},
        }
        for name, entries in state.callbacks.items():
            meta["callbacks"][name] = {}
            for key, value in entries.items():
                if isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
                    arrays.update({f"{name}.{key}.{i}": v for i, v in enumerate(value)})
                    value = {"arrays": len(value)}
                meta["callbacks"][name][key] = value
        arrays["meta"] = np.array(json.dumps(meta))
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.directory / STATE_FILE, lambda handle: np.savez(handle, **arrays))


class Run:
    """The checkpoint folder of one training run."""

    def __init__(self, directory):
        self.directory = Path(directory)

    @property
    def name(self):
        return self.directory.name

    def recorded(self):
        return json.loads((self.directory / RUN_FILE).read_text())

    def member(self, index):
        return Member(self.directory / f"member-{index + 1}")

    def updated(self):
        """When the run last wrote a file (its last checkpoint)."""
        return max(path.stat().st_mtime for path in self.directory.rglob("*"))

    def remove(self):
        shutil.rmtree(self.directory, ignore_errors=True)


def record(config, data_dir, manifest):
    """What ``run.json`` holds for ``config`` (name and size resolved) on the data in ``data_dir``."""
    return {
        "config": dataclasses.asdict(config),
        "data": {"directory": str(Path(data_dir).resolve()), "manifest": manifest},
    }


def start(config, data_dir, manifest):
    """A new run folder for ``config``; refuses when an interrupted run of that name is there."""
    directory = runs_directory() / config.name
    if directory.exists():
        raise ResumeError(
            f"An interrupted run named {config.name!r} is in {directory}; continue it with --resume, "
            "or delete that folder to start it again."
        )
    directory.mkdir(parents=True)
    _write_atomic(directory / RUN_FILE, json.dumps(record(config, data_dir, manifest), indent=2).encode())
    return Run(directory)


def find(name=None):
    """The run named ``name``, or without one the run that wrote a checkpoint last."""
    root = runs_directory()
    if name is not None:
        run = Run(root / name)
        if not (run.directory / RUN_FILE).is_file():
            raise ResumeError(
                f"No interrupted run named {name!r} to resume: {run.directory} holds no checkpoint. "
                "Train without --resume to start it."
            )
        return run
    runs = [Run(path.parent) for path in root.glob(f"*/{RUN_FILE}")] if root.is_dir() else []
    if not runs:
        raise ResumeError(f"No interrupted run to resume in {root}. Train without --resume to start one.")
    return max(runs, key=Run.updated)


def differences(recorded, wanted):
    """``"field old (now new)"`` for each setting in which ``wanted`` (a ``record``) differs from ``recorded``."""
    changed = []
    for key, value in recorded["config"].items():
        if key not in FREE_FIELDS and wanted["config"].get(key) != value:
            changed.append(f"{key} {value!r} (now {wanted['config'].get(key)!r})")
    for key in sorted(set(wanted["config"]) - set(recorded["config"]) - set(FREE_FIELDS)):
        changed.append(f"{key} not recorded (now {wanted['config'][key]!r})")
    if recorded["data"]["directory"] != wanted["data"]["directory"]:
        changed.append(f"data {recorded['data']['directory']} (now {wanted['data']['directory']})")
    elif recorded["data"]["manifest"] != wanted["data"]["manifest"]:
        changed.append(f"the data in {wanted['data']['directory']} (preprocessed again since)")
    return changed


def resume(run, config, data_dir, manifest):
    """``run`` after checking that it trains what ``config`` asks for; ``ResumeError`` if it does not."""
    changed = differences(run.recorded(), record(config, data_dir, manifest))
    if changed:
        raise ResumeError(
            f"The interrupted run {run.name!r} was started with other settings, so --resume would not continue it: "
            f"{', '.join(changed)}. Resume with the same options, or train without --resume to start again."
        )
    return run


def capture(model, epoch, seconds, callbacks):
    """The ``EpochState`` of ``model`` (the compiled training model) after ``epoch`` epochs."""
    import keras

    return EpochState(
        epoch=epoch,
        seconds=seconds,
        stopped=bool(model.stop_training),
        model=[keras.ops.convert_to_numpy(v) for v in model.variables],
        optimizer=[keras.ops.convert_to_numpy(v) for v in model.optimizer.variables],
        callbacks={name: callback.state() for name, callback in callbacks.items()},
    )


def restore(model, state, callbacks):
    """Put ``state`` back into ``model`` (compiled, its optimizer built, under the strategy it trains
    in) and ``callbacks``."""
    if len(state.model) != len(model.variables):
        raise ResumeError(f"The checkpoint holds {len(state.model)} model variables; this network has {len(model.variables)}.")
    for variable, value in zip(model.variables, state.model):
        variable.assign(value)
    if len(state.optimizer) != len(model.optimizer.variables):
        raise ResumeError(
            f"The checkpoint holds {len(state.optimizer)} optimizer variables; this optimizer has {len(model.optimizer.variables)}."
        )
    for variable, value in zip(model.optimizer.variables, state.optimizer):
        variable.assign(value)
    for name, callback in callbacks.items():
        callback.restore(state.callbacks[name])


def saving_callback(member, callbacks, seconds_before=0.0):
    """A Keras callback that writes ``member``'s ``EpochState`` after every epoch. It must come after
    ``callbacks`` (name -> stateful callback) in the fit's list, early stopping included, so it
    records what they did at that epoch's end."""
    import time

    import keras

    class SaveEpoch(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = seconds_before + time.perf_counter() - self.started
            member.save_state(capture(self.model, epoch + 1, seconds, callbacks))

    return SaveEpoch()


def _write_atomic(path, content):
    """Write ``content`` (bytes, or a function of a binary file) to ``path`` through a temporary file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        content(handle) if callable(content) else handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
