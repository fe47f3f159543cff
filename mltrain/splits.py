"""Patient-level train / validation / test splits: no patient is ever in two splits.

Either the official NIH lists (validation carved by patient out of train_val) or, without
them, a split of the patients with ``--seed``; ``combined_split`` joins both for several data
folders. All return ``{split: sorted row indices}``.
"""

import numpy as np
from sklearn.model_selection import GroupShuffleSplit

VAL_FRACTION = 0.15  # of the train_val patients (official split) or of all patients (grouped)
TEST_FRACTION = 0.15  # of all patients (grouped split)


class SplitError(ValueError):
    """The images cannot be split by patient as asked."""


def carve(patients, fraction, seed):
    """Split rows into ``(kept, carved)`` index arrays, ``fraction`` of the patients carved out."""
    patients = np.asarray(patients)
    rows = np.arange(len(patients))
    if len(np.unique(patients)) < 2:
        raise SplitError(f"Cannot carve {fraction:.0%} of the patients out of {len(np.unique(patients))} patient(s).")
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    kept, carved = next(splitter.split(rows, groups=patients))
    return np.sort(kept), np.sort(carved)


def grouped_split(patients, seed=42, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION):
    """About 70/15/15 of the patients into train / val / test (by patient count)."""
    patients = np.asarray(patients)
    count = len(np.unique(patients))
    if count < 3:
        raise SplitError(
            f"Only {count} patient(s) have images; a train/validation/test split needs at least 3."
        )
    rest, test = carve(patients, test_fraction, seed)
    train, val = carve(patients[rest], val_fraction / (1 - test_fraction), seed)
    splits = {"train": rest[train], "val": rest[val], "test": test}
    check_disjoint(patients, splits)
    return splits


def official_membership(names, patients, train_val_names, test_names):
    """``(train_val rows, test rows)`` of ``names`` by the official lists.

    Every image must be in exactly one list, and no patient may be in both.
    """
    patients = np.asarray(patients)
    in_train_val = np.fromiter((name in train_val_names for name in names), dtype=bool, count=len(names))
    in_test = np.fromiter((name in test_names for name in names), dtype=bool, count=len(names))
    both = np.flatnonzero(in_train_val & in_test)
    if len(both):
        raise SplitError(
            f"{len(both)} image(s) are in both train_val_list.txt and test_list.txt, e.g. {names[both[0]]}."
        )
    neither = np.flatnonzero(~in_train_val & ~in_test)
    if len(neither):
        raise SplitError(
            f"{len(neither)} image(s) are in neither train_val_list.txt nor test_list.txt, "
            f"e.g. {names[neither[0]]}. Use the lists that came with this label file, or remove both."
        )
    shared = np.intersect1d(patients[in_train_val], patients[in_test])
    if len(shared):
        raise SplitError(
            f"{len(shared)} patient(s) have images in both train_val_list.txt and test_list.txt, "
            f"e.g. patient {shared[0]}; the official split is by patient."
        )
    return np.flatnonzero(in_train_val), np.flatnonzero(in_test)


def official_split(names, patients, train_val_names, test_names, seed=42, val_fraction=VAL_FRACTION):
    """The official split of ``names``; validation is ``val_fraction`` of the train_val patients."""
    train_val, test = official_membership(names, patients, train_val_names, test_names)
    if not len(train_val) or not len(test):
        empty = "train_val_list.txt" if not len(train_val) else "test_list.txt"
        raise SplitError(f"No image found here is in {empty}.")
    return combined_split(patients, train_val, test, [], seed=seed, val_fraction=val_fraction)


def combined_split(
    patients, train_val, test, free, seed=42, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION
):
    """Rows placed by official lists and ``free`` rows (of folders without lists), split together.

    ``test`` rows are the test split; validation is ``val_fraction`` of the ``train_val`` patients;
    the ``free`` rows get a grouped split of their own patients (``grouped_split``). With only
    official rows this is ``official_split``, with only free rows ``grouped_split``.
    """
    patients = np.asarray(patients)
    train_val, test, free = (np.asarray(rows, dtype=np.int64) for rows in (train_val, test, free))
    parts = {"train": [], "val": [], "test": [test]}
    if len(free):
        try:
            grouped = grouped_split(patients[free], seed, val_fraction, test_fraction)
        except SplitError as exc:
            if not len(train_val) and not len(test):
                raise
            raise SplitError(f"Among the images of the folders without official lists: {exc}") from exc
        for split, rows in grouped.items():
            parts[split].append(free[rows])
    if len(train_val):
        train, val = carve(patients[train_val], val_fraction, seed)
        parts["train"].append(train_val[train])
        parts["val"].append(train_val[val])
    splits = {split: np.sort(np.concatenate(rows)) if rows else np.zeros(0, np.int64) for split, rows in parts.items()}
    check_disjoint(patients, splits)
    return splits


def check_disjoint(patients, splits):
    """Raise ``SplitError`` if a patient's images are in two splits or a split is empty."""
    seen = {}
    for split, rows in splits.items():
        if not len(rows):
            raise SplitError(f"The {split} split is empty; there are too few patients to split.")
        for patient in np.unique(np.asarray(patients)[rows]):
            if seen.setdefault(patient, split) != split:
                raise SplitError(f"Patient {patient} is in both the {seen[patient]} and the {split} split.")
