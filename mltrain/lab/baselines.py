"""Non-deep references on the same split: logistic regression, one per finding, on HOG features
of the image, on a 16 x 16 thumbnail of it, or on what the label file records of it (age, sex,
AP/PA view).

    python -m mltrain.lab.baselines --data var/mltrain/preprocessed-64 [--features hog|thumbnail|attributes]
        [--model models/default] [--folds 5]

A method's mean AUROC moves with the held-out patients, so this scores the classical baseline on
Dispredo's own split and the shipped model is compared on the same patients. The regularisation
strength is chosen on the validation split, the final fit uses train + val, and the test split is
scored once. With ``--model``, that artefact's served graph is scored on the same test images and
the difference in mean AUROC gets a paired 95 % patient-bootstrap interval. With ``--folds K`` the
baseline is also scored out of fold on the patient-grouped folds ``manage.py train --folds K`` cuts.

``--features thumbnail`` asks how far the coarse layout of brightness goes (lung fields, heart
size, effusions change it). ``--features attributes`` asks how far age, sex and view alone go: the
images' share of a model's figure is what it adds beyond them. The served model never sees these
attributes.
"""

import argparse
import os
from pathlib import Path

import numpy as np

from mltrain.config import TrainingError
from mltrain.hog import choose_strength, fit_predict, hog

THUMBNAIL = 16  # cells per side of the thumbnail
AGE_CENTRE, AGE_SCALE = 50.0, 20.0  # attributes: age in years to about -2..2
FEATURES = ("hog", "thumbnail", "attributes")


def thumbnail(pixels, cells=THUMBNAIL):
    """Each image of uint8 ``pixels`` [N, S, S] standardised by its own mean and spread (exposure out),
    then averaged over ``cells`` x ``cells`` blocks: float32 [N, cells * cells]."""
    images = np.asarray(pixels, dtype=np.float32)
    images = (images - images.mean(axis=(1, 2), keepdims=True)) / (images.std(axis=(1, 2), keepdims=True) + 1e-3)
    count, size = images.shape[0], images.shape[1] // cells * cells
    blocks = images[:, :size, :size].reshape(count, cells, size // cells, cells, size // cells)
    return blocks.mean(axis=(2, 4)).reshape(count, -1)


def image_attributes(data_dir, names):
    """Age (standardised), male and AP of the images ``names`` [N, 3], read from the label file of the
    NIH folder the preprocessed data in ``data_dir`` came from."""
    from mltrain import dataset, nih

    source = dataset.read_manifest(data_dir).get("source")
    try:
        attributes = nih.read_image_attributes(nih.find_label_file(source), [str(n) for n in names])
    except (nih.NihDataError, TypeError) as exc:
        raise TrainingError(f"--features attributes needs the NIH label file the data came from ({source}): {exc}") from exc
    attributes = np.array(attributes, dtype=np.float32, copy=True).reshape(-1, 3)
    attributes[:, 0] = (attributes[:, 0] - AGE_CENTRE) / AGE_SCALE
    return attributes


def features_of(kind, data_dir, pixels, names):
    """The baseline's features of the images ``pixels`` [N, S, S] named ``names``: their HOG, their
    thumbnail, or the label file's age, age squared, sex and view (``image_attributes``)."""
    if kind == "hog":
        return hog(pixels)
    if kind == "thumbnail":
        return thumbnail(pixels)
    if kind == "attributes":
        recorded = image_attributes(data_dir, names)
        return np.column_stack([recorded, recorded[:, :1] ** 2])
    raise ValueError(f"Unknown features {kind!r}; choose from {', '.join(FEATURES)}.")


def linear_baseline(data_dir, stream=None, kind="hog"):
    """``{"strength", "val_mean_auroc" per strength, "test_mean_auroc", "test_auroc"}`` of the baseline
    on the features ``kind`` (``FEATURES``)."""
    from mltrain import dataset
    from mltrain.metrics import mean_auroc, per_finding_auroc

    splits = {name: dataset.load_split(data_dir, name) for name in ("train", "val", "test")}
    features = {name: features_of(kind, data_dir, split.pixels, split.names) for name, split in splits.items()}
    strength, by_strength = choose_strength(data_dir, stream, splits, features)
    labels = {name: np.asarray(split.labels) for name, split in splits.items()}
    pooled = np.concatenate([features["train"], features["val"]])
    pooled_labels = np.concatenate([labels["train"], labels["val"]])
    test_scores = fit_predict(pooled, pooled_labels, features["test"], strength)
    aurocs = per_finding_auroc(labels["test"], test_scores)
    return {
        "strength": strength,
        "val_mean_auroc": by_strength,
        "test_mean_auroc": mean_auroc(aurocs),
        "test_auroc": aurocs,
        "test_scores": test_scores,
        "features": int(pooled.shape[1]),
    }


def cross_validated(data_dir, strength, folds=5, seed=0, kind="hog"):
    """Out-of-fold figures of the baseline at ``strength`` on the patient-grouped folds of train + val
    that ``manage.py train --folds`` cuts with ``seed``: the comparison with an ensemble's own
    out-of-fold figures, on every train + val image. Returns
    ``{"fold_mean_auroc": [...], "pooled_mean_auroc", "scores"}``."""
    from mltrain.folds import pooled_folds
    from mltrain.metrics import mean_auroc, per_finding_auroc

    pooled = pooled_folds(data_dir, folds, seed)
    features = features_of(kind, data_dir, pooled["pixels"], pooled["names"])
    labels, fold_of = pooled["labels"], pooled["fold_of"]
    scores = np.zeros(labels.shape)
    held_out = [fold_of == fold for fold in range(folds)]
    for mask in held_out:
        scores[mask] = fit_predict(features[~mask], labels[~mask], features[mask], strength)
    return {
        "fold_mean_auroc": [mean_auroc(per_finding_auroc(labels[mask], scores[mask])) for mask in held_out],
        "pooled_mean_auroc": mean_auroc(per_finding_auroc(labels, scores)),
        "scores": scores,
    }


def compare(model_dir, data_dir, baseline_scores):
    """Mean AUROC of the artefact at ``model_dir`` minus the baseline's on the test split, with a paired
    95 % patient-bootstrap interval and the share of resamples where the model is ahead
    (``dispredo_core.comparison.compare_scores``)."""
    from dispredo_core.artefact import read_metadata
    from dispredo_core.comparison import compare_scores
    from mltrain import dataset
    from mltrain.export import onnx_session, run_onnx

    test = dataset.load_split(data_dir, "test")
    metadata = read_metadata(model_dir)
    probabilities, _ = run_onnx(onnx_session(Path(model_dir) / metadata["serving"]["file"]), np.asarray(test.pixels))
    mean = compare_scores(np.asarray(test.labels), probabilities, baseline_scores, test.patients)["mean"]
    return {
        "model": metadata["name"],
        "model_mean_auroc": mean["candidate"],
        "difference": mean["difference"],
        "difference_ci95": [mean["low"], mean["high"]],
        "share_model_ahead": mean["share_ahead"],
    }


def main(argv=None):
    import sys

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="A preprocessed directory (manage.py preprocess).")
    parser.add_argument(
        "--features", choices=FEATURES, default="hog",
        help="HOG of the image (default), a 16 x 16 thumbnail of it, or the label file's age, sex and view of it.",
    )
    parser.add_argument("--model", help="A model artefact directory to compare on the same test images.")
    parser.add_argument(
        "--folds", type=int, default=0,
        help="Also score the baseline out of fold on the K patient-grouped folds of train + val that "
        "manage.py train --folds K --seed 0 uses (default: no).",
    )
    args = parser.parse_args(argv)
    try:
        result = linear_baseline(args.data, stream=sys.stdout, kind=args.features)
    except TrainingError as exc:
        parser.exit(2, f"{exc}\n")
    described = {"hog": "HOG", "thumbnail": "Thumbnail", "attributes": "Age, age², sex and view"}[args.features]
    print(f"{described} ({result['features']} features) + logistic regression, C={result['strength']} (chosen on val), "
          f"fitted on train + val: test mean AUROC {result['test_mean_auroc']:.3f}")
    for name, value in result["test_auroc"].items():
        print(f"  {name:<20} {value:.3f}" if value is not None and value == value else f"  {name:<20} n/a")
    if args.folds:
        result["cross_validated"] = found = cross_validated(
            args.data, result["strength"], folds=args.folds, kind=args.features
        )
        folds = ", ".join(f"{value:.3f}" for value in found["fold_mean_auroc"])
        print(f"Out of fold ({args.folds} folds of train + val, seed 0): fold means {folds} "
              f"(mean {np.mean(found['fold_mean_auroc']):.3f}); pooled {found['pooled_mean_auroc']:.3f}")
    if args.model:
        result["comparison"] = found = compare(args.model, args.data, result["test_scores"])
        low, high = found["difference_ci95"]
        print(f"{found['model']}: test mean AUROC {found['model_mean_auroc']:.3f}, {found['difference']:+.3f} against "
              f"the baseline (paired 95 % patient-bootstrap interval {low:+.3f} to {high:+.3f}; "
              f"ahead in {found['share_model_ahead']:.0%} of resamples)")
    return result


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispredo_site.settings")
    main()
