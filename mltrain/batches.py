"""The batches a network is fitted on: a ``keras.utils.PyDataset`` over uint8 pixel arrays."""

import numpy as np


def epoch_order(count, seed, epoch):
    """The shuffle of ``count`` images for ``epoch``: a function of (seed, epoch) alone, so an epoch
    run after ``train --resume`` sees the batches the interrupted run would have seen."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def batches(pixels, labels, batch_size, seed, first_epoch=0):
    """A ``keras.utils.PyDataset`` of shuffled float32 batches ([B, S, S, 1], [B, K]) read from
    ``pixels`` (uint8 [N, S, S]: an array, a memory map or ``mltrain.rows.Rows``) and ``labels``.

    It is endless: item ``i`` is batch ``i % steps`` of epoch ``first_epoch + i // steps``, so fit it
    with ``steps_per_epoch=data.steps``. Only the batch's own rows are read, in file order. Every
    batch has ``batch_size`` images (the remainder of an epoch's shuffle is left out), so compiling
    backends (JAX/XLA) build one training step, not one per remainder. Augmentation is not done here
    but by the training model's own layers, on whichever backend runs.
    """
    import keras

    count = len(pixels)

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.steps = max(1, count // batch_size)
            self.first_epoch = first_epoch
            self._orders = {}

        @property
        def num_batches(self):
            return None  # endless; Keras stops each epoch after steps_per_epoch

        def order(self, epoch):
            if epoch not in self._orders:
                self._orders = {epoch: epoch_order(count, seed, epoch)}  # one epoch at a time is kept
            return self._orders[epoch]

        def __getitem__(self, index):
            epoch, step = self.first_epoch + index // self.steps, index % self.steps
            chosen = np.sort(self.order(epoch)[step * batch_size : (step + 1) * batch_size])  # sorted: file order
            x = np.asarray(pixels[chosen], dtype=np.float32)[..., None]
            y = np.asarray(labels[chosen], dtype=np.float32).reshape(len(chosen), -1)
            return x, y

    return Batches()
