"""Evaluate a registered model version on a preprocessed split (``manage.py evaluate``).

The evaluated model is the exported ONNX graph, run with ONNX Runtime: exactly what the web app
serves. Images are the split's real images (never the balanced, resampled sets), and the split
must hold no patient the model was trained on (checked against the artefact's patients.json).

Per finding: AUROC, precision, recall, F1, accuracy and confusion matrix at the model version's
threshold; the mean AUROC over findings with both classes in the split; the same AUROCs per image
source width (the NIH sample mixes a blurry 64 px source with 256 and 1024 px ones). Written
into the artefact directory as ``evaluation_{split}.json``, ``evaluation_{split}.md`` and
``roc_{split}.png`` and stored in ``ModelVersion.evaluation[split]``.
"""

import json
import math
from pathlib import Path

import numpy as np
from django.utils import timezone

from dispredo_core.artefact import read_metadata
from dispredo_core.findings import DISPLAY_NAMES, FINDINGS
from dispredo_core.serving import PATIENTS_FILE

from . import dataset
from .export import onnx_session, run_onnx
from .metrics import (
    BOOTSTRAP_ROUNDS,
    binary_report,
    interval,
    json_safe,
    mean_auroc,
    patient_bootstrap,
    per_finding_auroc,
)
from .registry import artefact_directory

ENGINE = "onnxruntime"


class EvaluationError(Exception):
    """The evaluation cannot be run honestly or at all; the message says why."""


def report_files(split):
    """The names of the report files of ``split`` in an artefact directory."""
    return {"json": f"evaluation_{split}.json", "markdown": f"evaluation_{split}.md", "roc": f"roc_{split}.png"}


def _check_unseen(directory, metadata, split_data, split):
    """Refuse a split that shares a patient with the training split of the model."""
    path = Path(directory) / metadata.get("patients_file", PATIENTS_FILE)
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text())
    patients = set(map(int, np.unique(split_data.patients)))
    overlap = patients & set(recorded.get("train", []))
    if overlap:
        raise EvaluationError(
            f"The {split} split shares {len(overlap)} patient(s) with the data this model was trained on; "
            "evaluate on a split of patients it never saw (preprocess with the seed it was trained with)."
        )
    return bool(patients & set(recorded.get("val", [])))


def compute_report(probabilities, labels, thresholds, source_sizes=None, patients=None, reliable=FINDINGS):
    """The figures of an evaluation from arrays: per finding at ``thresholds``, mean AUROC (with a
    95 % patient-bootstrap interval when ``patients`` is given), per source. Flags per image count
    the ``reliable`` findings only: the others are never flagged on the pages."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    findings = {
        name: binary_report(labels[:, i], probabilities[:, i], thresholds[name]) for i, name in enumerate(FINDINGS)
    }
    aurocs = {name: row["auroc"] for name, row in findings.items()}
    cut = np.array([thresholds[name] if name in reliable else np.inf for name in FINDINGS])
    report = {
        "images": int(len(labels)),
        "mean_auroc": mean_auroc(aurocs),
        "findings_with_both_classes": sum(not math.isnan(v) for v in aurocs.values()),
        "findings": findings,
        # What staff see per upload: how many findings are flagged against how many are present, and
        # whether the probabilities mean what they say (calibration in the large, Brier score).
        "flags_per_image": float((probabilities >= cut).sum(axis=1).mean()),
        "reliable_findings": [name for name in FINDINGS if name in reliable],
        "findings_per_image": float(labels.sum(axis=1).mean()),
        "mean_probability": float(probabilities.mean()),
        "prevalence": float(labels.mean()),
        "brier_score": float(((probabilities - labels) ** 2).mean()),
    }
    if patients is not None:
        report["mean_auroc_ci95"] = interval(patient_bootstrap(labels, [probabilities], patients)[:, 0])
        report["bootstrap"] = f"{BOOTSTRAP_ROUNDS} resamples of the patients, with replacement"
    if source_sizes is not None:
        source_sizes = np.asarray(source_sizes)
        by_source = {}
        for width in sorted(set(map(int, source_sizes))):
            chosen = source_sizes == width
            source_aurocs = per_finding_auroc(labels[chosen], probabilities[chosen])
            by_source[str(width)] = {
                "images": int(chosen.sum()),
                "mean_auroc": mean_auroc(source_aurocs),
                "auroc": source_aurocs,
            }
        report["per_source"] = by_source
    return report


def evaluate(version, split="test", data_dir=None):
    """Evaluate ``version`` (a ModelVersion) on ``split``; save the reports; return the report dict."""
    if split not in dataset.SPLITS:
        raise EvaluationError(f"Unknown split {split!r}; expected one of {', '.join(dataset.SPLITS)}.")
    if split == "train":
        raise EvaluationError("The train split holds the patients the model learnt from; evaluate on val or test.")
    directory = artefact_directory(version)
    metadata = read_metadata(directory)
    data_dir = Path(data_dir) if data_dir else dataset.default_directory()
    manifest = dataset.read_manifest(data_dir)
    if int(manifest["size"]) != int(metadata["input_size"]):
        raise EvaluationError(
            f"Model {version.name} takes {metadata['input_size']} px images but the data in {data_dir} is "
            f"{manifest['size']} px. Run manage.py preprocess --size {metadata['input_size']} --out <folder> "
            "and pass --data-dir <folder>."
        )
    data = dataset.load_split(data_dir, split)
    seen_in_selection = _check_unseen(directory, metadata, data, split)
    session = onnx_session(directory / metadata["serving"]["file"])
    probabilities, _ = run_onnx(session, np.asarray(data.pixels))
    thresholds = {name: float(version.thresholds.get(name, metadata["thresholds"][name])) for name in FINDINGS}
    report = compute_report(
        probabilities, data.labels, thresholds, data.source_sizes, data.patients,
        reliable=version.reliable_findings() if version.reliability else FINDINGS,
    )
    report.update(
        {
            "model_version": version.name,
            "strategy": metadata.get("strategy"),
            "split": split,
            "engine": ENGINE,
            "patients": int(len(np.unique(data.patients))),
            "used_for_model_selection": bool(seen_in_selection),
            "data_directory": str(data_dir),
            "data_seed": manifest.get("seed"),
            "evaluated_at": timezone.now().isoformat(),
            "files": report_files(split),
        }
    )
    report = json_safe(report)
    files = report_files(split)
    (directory / files["json"]).write_text(json.dumps(report, indent=2, sort_keys=True))
    (directory / files["markdown"]).write_text(markdown_report(report))
    roc_plot(np.asarray(data.labels), probabilities, thresholds, directory / files["roc"], title=f"{version.name} - {split}")
    evaluation = dict(version.evaluation or {})
    evaluation[split] = report
    version.evaluation = evaluation
    version.save(update_fields=["evaluation"])
    return report


def _fmt(value, digits=3):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _reliable_note(report):
    reliable = report.get("reliable_findings")  # reports saved before reliability lack it
    if reliable is None or len(reliable) == len(FINDINGS):
        return ""
    names = ", ".join(DISPLAY_NAMES[name] for name in reliable) or "none"
    return f", counting only the findings reliable with this model ({names}), the only ones ever flagged"


def markdown_report(report):
    """The report as a Markdown document."""
    lines = [
        f"# Evaluation of {report['model_version']} on the {report['split']} split",
        "",
        f"{report['images']} real images of {report['patients']} patients "
        f"({'used for model selection' if report['used_for_model_selection'] else 'never used for training or model selection'}), "
        f"scored with {report['engine']} (the served model), flagged at the model version's thresholds.",
        "",
        f"**Mean AUROC: {_fmt(report['mean_auroc'])}** over the {report['findings_with_both_classes']} findings with both classes"
        + (
            f" (95 % interval {_fmt(report['mean_auroc_ci95'][0])} to {_fmt(report['mean_auroc_ci95'][1])}, "
            f"{report['bootstrap']})."
            if report.get("mean_auroc_ci95")
            else "."
        ),
        "",
        f"Flags per image: {_fmt(report['flags_per_image'], 2)}{_reliable_note(report)} (findings present per image: "
        f"{_fmt(report['findings_per_image'], 2)}). Mean probability {_fmt(report['mean_probability'])} against a "
        f"prevalence of {_fmt(report['prevalence'])}; Brier score {_fmt(report['brier_score'])} (mean over the findings).",
        "",
        "| Finding | Pos | AUROC | Threshold | Precision | Recall | F1 | Accuracy | TN | FP | FN | TP |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in FINDINGS:
        row = report["findings"][name]
        cm = row["confusion_matrix"]
        lines.append(
            f"| {DISPLAY_NAMES[name]} | {row['positives']} | {_fmt(row['auroc'])} | {_fmt(row['threshold'])} | "
            f"{_fmt(row['precision'], 2)} | {_fmt(row['recall'], 2)} | {_fmt(row['f1'], 2)} | {_fmt(row['accuracy'], 2)} | "
            f"{cm['tn']} | {cm['fp']} | {cm['fn']} | {cm['tp']} |"
        )
    if report.get("per_source"):
        lines += [
            "",
            "## By image source width",
            "",
            "The NIH sample mixes sources; a model that learnt a source's look instead of the disease scores unevenly.",
            "",
            "| Source width | Images | Mean AUROC |",
            "|---:|---:|---:|",
        ]
        for width, row in report["per_source"].items():
            lines.append(f"| {width} px | {row['images']} | {_fmt(row['mean_auroc'])} |")
    lines += ["", f"ROC curves: `{report['files']['roc']}`.", ""]
    return "\n".join(lines)


def roc_plot(labels, probabilities, thresholds, path, title=""):
    """A 4x4 grid of ROC curves, one per finding, with its operating point; saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    figure, axes = plt.subplots(4, 4, figsize=(12, 12), sharex=True, sharey=True)
    for index, axis in enumerate(axes.flat):
        if index >= len(FINDINGS):
            axis.axis("off")
            continue
        name = FINDINGS[index]
        y, p = labels[:, index], probabilities[:, index]
        axis.plot([0, 1], [0, 1], color="0.8", linewidth=1)
        if y.min() != y.max():
            fpr, tpr, _ = roc_curve(y, p)
            area = np.trapezoid(tpr, fpr)
            axis.plot(fpr, tpr, linewidth=1.5)
            flagged = p >= thresholds[name]
            axis.plot(flagged[y == 0].mean(), flagged[y == 1].mean(), "o", color="C3", markersize=5)
            axis.set_title(f"{DISPLAY_NAMES[name]} ({area:.2f}, n+={int(y.sum())})", fontsize=9)
        else:
            axis.set_title(f"{DISPLAY_NAMES[name]} (one class only)", fontsize=9)
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
    for axis in axes[-1]:
        axis.set_xlabel("false positive rate")
    for axis in axes[:, 0]:
        axis.set_ylabel("true positive rate")
    figure.suptitle(f"{title}  (dot: operating threshold)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return Path(path)
