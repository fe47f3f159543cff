"""The batches a network is fitted on: a ``keras.utils.PyDataset`` over uint8 pixel arrays."""

import numpy as np


def batches(pixels, labels, batch_size, seed):
    """A ``keras.utils.PyDataset`` of shuffled float32 batches ([B, S, S, 1], [B, K]) read from
    ``pixels`` (uint8 [N, S, S], memory-mapped or not) and ``labels``, reshuffled each epoch.

    Every batch has ``batch_size`` images (the remainder of an epoch's shuffle is left for the next
    ones), so compiling backends (JAX/XLA) build one training step, not one per remainder.
    Augmentation is not done here but by the training model's own layers, on whichever backend runs.
    """
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(pixels))

        def __len__(self):
            return max(1, len(pixels) // batch_size)

        def __getitem__(self, index):
            chosen = np.sort(self.order[index * batch_size : (index + 1) * batch_size])  # sorted: memmap locality
            x = np.asarray(pixels[chosen], dtype=np.float32)[..., None]
            y = np.asarray(labels[chosen], dtype=np.float32).reshape(len(chosen), -1)
            return x, y

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(pixels))

    return Batches()
