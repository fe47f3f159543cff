"""Building and fitting one network: seeded, scored on validation images after every epoch
(mean AUROC), optionally with a moving average of its weights, stopped early and left holding
its best epoch's weights."""

import math
import time

import numpy as np

from .batches import batches
from .metrics import mean_auroc, per_finding_auroc

MONITOR = "val_mean_auroc"


def seed_everything(seed):
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def callbacks_module():
    """The callback classes ``(ValidationAUROC, EpochProgress, WeightAverage)``, made on first use
    so that importing this module does not import Keras."""
    import keras

    from .networks import predict

    class ValidationAUROC(keras.callbacks.Callback):
        """Adds ``val_mean_auroc`` (mean AUROC of the validation images) to each epoch's logs.

        For a finding whose validation images have one class only, AUROC is undefined and the
        negated validation cross-entropy is logged instead, so early stopping still works.
        """

        def __init__(self, network, pixels, labels, findings):
            super().__init__()
            self.network = network  # the serving network inside the training model
            self.pixels = pixels  # read a batch at a time by predict (an array, memory map or Rows)
            self.labels = np.asarray(labels).reshape(len(pixels), -1)
            self.findings = findings
            self.history = []

        def on_epoch_end(self, epoch, logs=None):
            probabilities = predict([self.network], self.pixels)
            value = mean_auroc(per_finding_auroc(self.labels, probabilities, self.findings))
            if math.isnan(value):
                p = np.clip(probabilities, 1e-7, 1 - 1e-7)
                value = -float(np.mean(-(self.labels * np.log(p) + (1 - self.labels) * np.log(1 - p))))
            self.history.append(value)
            if logs is not None:
                logs[MONITOR] = value

        def state(self):
            return {"history": list(self.history)}

        def restore(self, state):
            self.history = list(state["history"])

    class EpochProgress(keras.callbacks.Callback):
        """A tqdm progress bar per epoch, written to ``stream`` (the command's stdout)."""

        def __init__(self, stream, label, epochs, steps):
            super().__init__()
            self.stream, self.label, self.epochs, self.steps = stream, label, epochs, steps
            self.bar = None

        def on_epoch_begin(self, epoch, logs=None):
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.steps, desc=f"{self.label} epoch {epoch + 1}/{self.epochs}", unit="batch",
                file=self.stream, leave=True, dynamic_ncols=False, ncols=100, mininterval=1.0,
            )

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.4f}", val_auroc=f"{logs.get(MONITOR, float('nan')):.4f}")
            self.bar.close()

    class WeightAverage(keras.callbacks.Callback):
        """Keeps an exponential moving average of ``network``'s weights (batch-norm statistics too)
        and swaps it in at each epoch's end, so the callbacks after this one score and keep the
        average; the raw weights go back before the next epoch, so training itself is unchanged."""

        def __init__(self, network, momentum):
            super().__init__()
            self.network, self.momentum = network, momentum
            self.average = self.raw = self.restored = None

        def on_train_begin(self, logs=None):
            if self.restored is not None:  # train --resume: the average and raw weights of the last epoch
                self.average = [np.array(w, dtype=np.float64) for w in self.restored["average"]]
                self.raw = self.restored["raw"]
                return
            self.average = [np.array(w, dtype=np.float64) for w in self.network.get_weights()]

        def on_train_batch_end(self, batch, logs=None):
            for average, weight in zip(self.average, self.network.get_weights()):
                average *= self.momentum
                average += (1.0 - self.momentum) * weight

        def on_epoch_end(self, epoch, logs=None):
            self.raw = self.network.get_weights()
            self.network.set_weights([w.astype(np.float32) for w in self.average])

        def on_epoch_begin(self, epoch, logs=None):
            if self.raw is not None:
                self.network.set_weights(self.raw)

        def state(self):
            return {"average": list(self.average), "raw": self.raw}

        def restore(self, state):
            self.restored = state

    return ValidationAUROC, EpochProgress, WeightAverage


def early_stopping(config):
    """Keras's ``EarlyStopping`` on validation mean AUROC keeping the best weights, with the state
    ``train --resume`` needs (wait, best score, epoch and weights) saved and put back."""
    import keras

    class KeepBest(keras.callbacks.EarlyStopping):
        restored = None

        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if self.restored is not None:
                for key in ("wait", "stopped_epoch", "best", "best_epoch", "best_weights"):
                    setattr(self, key, self.restored[key])

        def state(self):
            return {key: getattr(self, key) for key in ("wait", "stopped_epoch", "best", "best_epoch", "best_weights")}

        def restore(self, state):
            self.restored = state

    # min_epochs: a weight average that still lags its start must not end the run, nor be kept.
    return KeepBest(
        monitor=MONITOR, mode="max", patience=config.patience, restore_best_weights=True, verbose=0,
        start_from_epoch=config.min_epochs,
    )


def fit_network(config, outputs, loss, train_pixels, train_labels, val_pixels, val_labels, findings, label, stream,
                verbosity, member=None):
    """Build and fit one network with early stopping on validation mean AUROC; return ``(network, figures)``.

    ``network`` (the serving network, without the augmentation layers) holds the best epoch's weights.
    Pixels may be memory maps or ``mltrain.rows.Rows``: they are read a batch at a time.
    ``member`` (a ``checkpoints.Member``): write its state after every epoch, start from the state
    it holds, and keep the result there; a finished member is loaded, not fitted again.
    With ``config.distribute`` the network trains under ``mltrain.distribution``'s strategy.
    """
    if member is not None and member.finished():
        if verbosity >= 1:
            stream.write(f"{label}: finished before the interruption; loaded from {member.directory}.\n")
        return member.load_finished()
    state = member.state() if member is not None else None
    if state is not None and verbosity >= 1:
        stream.write(f"{label}: resuming after epoch {state.epoch} of {config.epochs}.\n")
    network, figures = _fit(config, outputs, loss, train_pixels, train_labels, val_pixels, val_labels, findings, label,
                            stream, verbosity, member, state)
    if member is not None:
        member.finish(network, figures)
    return network, figures


def _fit(config, outputs, loss, train_pixels, train_labels, val_pixels, val_labels, findings, label, stream, verbosity,
         member, state):
    import keras

    from . import checkpoints, distribution
    from .networks import build_model, build_training_model

    seed_everything(config.seed)
    strategy = distribution.strategy(config.distribute, config.batch_size, stream if verbosity >= 1 else None)
    with strategy.scope():
        network = build_model(config, outputs=outputs)
        model = build_training_model(network, config)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss)
        # Made now, eagerly: created inside fit's first traced step they take seconds each time.
        model.optimizer.build(model.trainable_variables)
    ValidationAUROC, EpochProgress, WeightAverage = callbacks_module()
    validation = ValidationAUROC(network, val_pixels, val_labels, findings)
    stopping = early_stopping(config)
    stateful = {"validation": validation, "early_stopping": stopping}
    # The average must be swapped in before validation scores it and early stopping keeps it.
    callbacks = []
    if config.ema:
        stateful["weight_average"] = WeightAverage(network, config.ema)
        callbacks.append(stateful["weight_average"])
    callbacks.append(validation)
    first = 0 if state is None else state.epoch
    data = batches(train_pixels, train_labels, config.batch_size, config.seed, first_epoch=first)
    if verbosity >= 1:
        callbacks.append(EpochProgress(stream, label, config.epochs, data.steps))
    callbacks.append(stopping)
    if state is not None:
        with strategy.scope():
            checkpoints.restore(model, state, stateful)
    if member is not None:  # last: it records what the others did at each epoch's end
        callbacks.append(checkpoints.saving_callback(member, stateful, 0.0 if state is None else state.seconds))
    # A fit that early stopping had ended runs no epoch: fit only puts the best weights back.
    last = first if state is not None and state.stopped else config.epochs
    started = time.perf_counter()
    history = model.fit(
        data, steps_per_epoch=data.steps, initial_epoch=first, epochs=last, callbacks=callbacks, shuffle=False,
        verbose=0,
    )
    seconds = time.perf_counter() - started + (0.0 if state is None else state.seconds)
    if config.distribute:  # the kept network outside the strategy: plain variables for export and calibration
        plain = build_model(config, outputs=outputs)
        plain.set_weights(network.get_weights())
        network = plain
    scores = validation.history
    best = config.min_epochs + int(np.argmax(scores[config.min_epochs :]))
    epochs_run = first + len(history.epoch)
    figures = {
        "epochs_run": epochs_run,
        "best_epoch": best + 1,
        "best_val_mean_auroc": float(scores[best]),
        "seconds": seconds,
        "training_images": int(len(train_pixels)),
        "images_seen": int(len(train_pixels)) * epochs_run,
        "optimizer_steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "replicas": int(strategy.num_replicas_in_sync),
    }
    if state is not None:
        figures["resumed_after_epoch"] = state.epoch
    return network, figures
