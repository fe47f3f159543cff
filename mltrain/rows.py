"""Rows of memory-mapped arrays, read only when asked for.

``Rows`` stands for the concatenation of arrays along their first axis (the train and val splits of
a cross-validated ensemble), or for a subset of its rows (one fold), without copying them: indexing
reads just the rows asked for, each part's in file order, so a batch of a memory-mapped split costs
its own pages and no more. ``np.asarray`` of a ``Rows`` reads every row; the main training path
never does that.
"""

import numpy as np


class Rows:
    """The rows ``index`` (default: all) of ``parts`` stacked along the first axis."""

    def __init__(self, parts, index=None):
        self.parts = list(parts)
        if not self.parts:
            raise ValueError("Rows needs at least one array.")
        tail = self.parts[0].shape[1:]
        if any(part.shape[1:] != tail for part in self.parts):
            raise ValueError(f"Rows of different shapes: {[part.shape for part in self.parts]}.")
        self.starts = np.cumsum([0] + [len(part) for part in self.parts])
        total = int(self.starts[-1])
        self.index = np.arange(total, dtype=np.int64) if index is None else np.asarray(index, dtype=np.int64)
        if self.index.ndim != 1 or (len(self.index) and not 0 <= self.index.min() <= self.index.max() < total):
            raise IndexError(f"Row index out of range for {total} rows.")

    @property
    def shape(self):
        return (len(self.index), *self.parts[0].shape[1:])

    @property
    def dtype(self):
        return self.parts[0].dtype

    @property
    def ndim(self):
        return len(self.shape)

    def __len__(self):
        return len(self.index)

    def subset(self, key):
        """The rows ``key`` selects (a boolean mask, indices or a slice), as another ``Rows``: nothing is read."""
        return Rows(self.parts, self.index[key])

    def __getitem__(self, key):
        """The rows ``key`` selects, read into a new array (NumPy's indexing rules on the first axis)."""
        wanted = self.index[key]
        if np.ndim(wanted) == 0:
            part = int(np.searchsorted(self.starts, wanted, side="right")) - 1
            return np.asarray(self.parts[part][int(wanted) - int(self.starts[part])])
        return self.read(wanted)

    def read(self, rows):
        """The global ``rows`` (int [M]) in the order given; each part is read in ascending row order."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), *self.parts[0].shape[1:]), dtype=self.dtype)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        for part, start, end in zip(self.parts, self.starts[:-1], self.starts[1:]):
            low, high = np.searchsorted(ordered, [start, end])
            if high > low:
                out[order[low:high]] = part[ordered[low:high] - start]
        return out

    def __array__(self, dtype=None, copy=None):
        values = self.read(self.index)
        return values if dtype is None else values.astype(dtype, copy=False)

