"""Compare training settings by patient-grouped cross-validation on train + val, never on test.

    python -m mltrain.lab.sweep --data var/mltrain/preprocessed-64 --folds 5 \
        --run name=a25 alpha=0.25 --run name=a50 alpha=0.5 --out var/sweep.json

Each ``--run`` is a set of ``TrainConfig`` fields (``key=value``); every run is the same K-fold
cross-validated ensemble ``manage.py train --folds K`` fits, and is scored on its out-of-fold
predictions: each image by the one member that never saw its patient, so every train + val image
is scored once. It needs no database, registers nothing and writes no artefact, so it also runs
where only Keras, a backend and Django's package are installed (``KERAS_BACKEND=jax`` on a GPU
machine). Results go to ``--out`` (JSON) after every run.
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def parse_run(items):
    """``["name=a", "alpha=0.5"]`` -> ``("a", {"alpha": 0.5})`` with TrainConfig's field types."""
    from mltrain.config import TrainConfig

    types = {field.name: field.type for field in dataclasses.fields(TrainConfig)}
    values, name = {}, None
    for item in items:
        key, _, text = item.partition("=")
        if key == "name":
            name = text
            continue
        if key not in types:
            raise SystemExit(f"Unknown setting {key!r}; TrainConfig has {', '.join(sorted(types))}.")
        kind = types[key]
        if kind in (bool, "bool"):
            values[key] = text.lower() in ("1", "true", "yes")
        elif kind in (int, "int"):
            values[key] = int(text)
        elif kind in (float, "float"):
            values[key] = float(text)
        else:
            values[key] = text
    return name or "-".join(items), values


def cross_validate(config, data_dir, stream=sys.stdout, verbosity=1):
    """Out-of-fold figures of ``config`` (with ``folds`` >= 2) on ``data_dir``: mean AUROC overall and
    per image source, per-finding AUROC, per-fold figures and seconds."""
    from mltrain.metrics import mean_auroc, per_finding_auroc
    from mltrain.training import train_multilabel

    started = time.perf_counter()
    _, fits, selection = train_multilabel(config, Path(data_dir), stream, verbosity)
    probabilities, labels, sources = selection["probabilities"], selection["labels"], selection["sources"]
    aurocs = per_finding_auroc(labels, probabilities)
    by_source = {}
    for name, chosen in (("64px", sources <= 64), ("larger", sources > 64)):
        if chosen.sum():
            by_source[name] = mean_auroc(per_finding_auroc(labels[chosen], probabilities[chosen]))
    member_means = [fit["best_val_mean_auroc"] for fit in fits.values()]
    return {
        "oof_mean_auroc": mean_auroc(aurocs),
        "uncalibrated_oof_mean_auroc": mean_auroc(per_finding_auroc(labels, selection["uncalibrated_probabilities"])),
        "oof_mean_auroc_by_source": by_source,
        "oof_auroc": aurocs,
        "fold_mean_aurocs": member_means,
        "best_epochs": [fit["best_epoch"] for fit in fits.values()],
        "images_seen": int(sum(fit["images_seen"] for fit in fits.values())),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="A preprocessed directory (manage.py preprocess).")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--run", nargs="+", action="append", required=True, metavar="KEY=VALUE")
    parser.add_argument("--out", required=True, help="JSON file of the results, rewritten after every run.")
    parser.add_argument("--quiet", action="store_true", help="No per-epoch progress bars.")
    args = parser.parse_args(argv)

    from mltrain.config import TrainConfig
    from mltrain.dataset import read_manifest
    from mltrain.metrics import json_safe

    size = int(read_manifest(args.data)["size"])
    results = {}
    out = Path(args.out)
    for items in args.run:
        name, values = parse_run(items)
        config = TrainConfig(**{"strategy": "multilabel", "size": size, "folds": args.folds, **values})
        print(f"== {name}: {values}", flush=True)
        figures = cross_validate(config, args.data, verbosity=0 if args.quiet else 1)
        results[name] = {"config": dataclasses.asdict(config), **figures}
        print(
            f"== {name}: out-of-fold mean AUROC {figures['oof_mean_auroc']:.4f} "
            f"(by source {figures['oof_mean_auroc_by_source']}; folds {np.round(figures['fold_mean_aurocs'], 3).tolist()}; "
            f"best epochs {figures['best_epochs']}; {figures['seconds']:.0f} s)",
            flush=True,
        )
        out.write_text(json.dumps(json_safe(results), indent=1))
    return results


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispredo_site.settings")
    main()
