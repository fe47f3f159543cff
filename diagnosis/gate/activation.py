"""Making a model version the active one from a user action, behind a gate.

``activate`` is the one way a user makes a version active (``manage.py activate``, ``train
--activate``, the admin's action and checkbox). When another version is active, the gate first
compares the two on the held-out clinic readings: the current signed-off readings of X-rays whose
patient neither version trained on (a patient counts as trained on when its export pseudonym is in
the version's patients.json "train" or "val"; a patient never exported was never trained on).
Each finding marked present counts 1, absent 0, not assessable is left out for that finding. Both
versions score the stored image files, each at its own input size
(``model_comparison.compare_scores`` gives the AUROCs and the paired interval).

The rule: a candidate whose mean AUROC over the findings with both classes is more than the margin
(``DISPREDO_GATE_MARGIN``, default 0.02) below the active version's is refused with
``ActivationRefused``; ``force=True`` activates it anyway. With nothing to compare on (no
held-out reading, no finding with both classes) activation goes ahead and says so. Every
activation, override and refusal goes into the audit trail.
"""

from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import transaction

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.lifecycle.predictors import predictor_for
from diagnosis.readings.models import Mark, Reading
from diagnosis.records import audit
from dispredo_core.artefact import ArtefactError
from dispredo_core.comparison import LEFT_OUT, compare_scores, table_lines, trained_patients
from dispredo_core.findings import FINDINGS
from dispredo_core.imaging import InvalidImage, open_xray, to_model_pixels

LABEL_OF_MARK = {Mark.PRESENT: 1, Mark.ABSENT: 0}  # not assessable (or unmarked): LEFT_OUT
BATCH = 64
FORCE_ADVICE = "Use --force to activate it anyway."

FIRST, ALREADY, PASSED, NOTHING, OVERRIDDEN, REFUSED = (
    "no active version", "already active", "passed", "nothing to compare on", "overridden", "refused"
)


@dataclass
class HeldOut:
    """The held-out clinic readings of a pair of versions, as labels and the X-rays to score."""

    xrays: list
    labels: np.ndarray  # int [N, 14]: 1 present, 0 absent, LEFT_OUT
    trained: int  # current signed-off readings left out: their patient was trained on
    unrecorded: list = field(default_factory=list)  # versions whose artefact records no patients


@dataclass
class GateResult:
    """What the gate found and did; ``message`` is the sentence for the user."""

    candidate: ModelVersion
    previous: ModelVersion | None
    outcome: str
    margin: float
    comparison: dict | None = None
    readings: int = 0  # held-out readings compared on
    trained: int = 0  # readings left out: a version trained on their patient
    unreadable: int = 0  # held-out readings left out: their file is missing or does not decode
    reason: str = ""  # why there was nothing to compare on
    unrecorded: list = field(default_factory=list)

    @property
    def refused(self):
        return self.outcome == REFUSED

    @property
    def figures(self):
        """'mean AUROC a against b (difference d, 95 % interval l to h; the margin is m)'."""
        mean = self.comparison["mean"]
        return (
            f"mean AUROC {_fmt(mean['candidate'])} against {_fmt(mean['against'])} (difference "
            f"{_fmt(mean['difference'], True)}, 95 % interval {_fmt(mean['low'], True)} to "
            f"{_fmt(mean['high'], True)}; the margin is {self.margin:g})"
        )

    @property
    def message(self):
        name = self.candidate.name
        previous = self.previous.name if self.previous else ""
        on = f"on {self.readings} held-out clinic reading{'s' if self.readings != 1 else ''}"
        if self.outcome == FIRST:
            return f"{name} is now the active model; no version was active, so there was nothing to compare it against."
        if self.outcome == ALREADY:
            return f"{name} is already the active model."
        if self.outcome == NOTHING:
            return (
                f"{name} is now the active model, replacing {previous}; the gate had nothing to compare on: "
                f"{self.reason}."
            )
        if self.outcome == PASSED:
            return f"{name} is now the active model, replacing {previous}: the gate passed {on}: {self.figures}."
        if self.outcome == OVERRIDDEN:
            return (
                f"{name} is now the active model, replacing {previous}, although it is worse {on}: "
                f"{self.figures}. The gate was overridden."
            )
        return f"{name} is worse than {previous} {on}: {self.figures}."

    def lines(self):
        """The per-finding table and what was left out, for commands and the admin page."""
        lines = table_lines(self.comparison, self.candidate.name, self.previous.name) if self.comparison else []
        if self.trained or self.unreadable:
            lines.append(
                f"Left out: {self.trained} reading(s) of patients a version trained on, {self.unreadable} "
                "X-ray(s) whose file is missing or does not decode."
            )
        for name in self.unrecorded:
            lines.append(f"{name} records no training patients (no patients.json): none could be left out for it.")
        return lines

    def audit_detail(self):
        """The audit row's text: the outcome and figures first (the detail is cut at 200 characters)."""
        previous = self.previous.name if self.previous else "none"
        if self.outcome in (PASSED, OVERRIDDEN, REFUSED):
            mean = self.comparison["mean"]
            figures = (
                f"mean AUROC {_fmt(mean['candidate'])} vs {_fmt(mean['against'])}, difference "
                f"{_fmt(mean['difference'], True)} (95 % {_fmt(mean['low'], True)} to {_fmt(mean['high'], True)}), "
                f"margin {self.margin:g}, {self.readings} held-out readings"
            )
            what = {PASSED: "activated; gate passed", OVERRIDDEN: "activated; gate overridden",
                    REFUSED: "activation refused by the gate"}[self.outcome]
            return f"{what}: {figures}; previously active: {previous}"
        if self.outcome == NOTHING:
            return f"activated; gate had nothing to compare on ({self.reason}); previously active: {previous}"
        return "activated; no version was active (no gate)"


class ActivationRefused(Exception):
    """The gate refused the candidate; ``result`` holds the comparison."""

    def __init__(self, result, advice=FORCE_ADVICE):
        self.result = result
        super().__init__(f"{result.message} {advice}".strip())


def _fmt(value, sign=False):
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if sign else f"{value:.3f}"


def gate_margin():
    return float(settings.DISPREDO_GATE_MARGIN)


def held_out_readings(*versions):
    """The current signed-off readings of X-rays whose patient none of ``versions`` trained on."""
    trained, unrecorded = set(), []
    for version in versions:
        patients = trained_patients(version)
        if patients is None:
            unrecorded.append(version.name)
        trained |= patients or set()
    readings = Reading.objects.signed().current().select_related("xray__patient__export_pseudonym")
    readings = list(readings.order_by("xray_id"))
    kept = [reading for reading in readings if _pseudonym(reading.xray.patient) not in trained]
    labels = np.array(
        [[LABEL_OF_MARK.get(reading.marks.get(name), LEFT_OUT) for name in FINDINGS] for reading in kept],
        dtype=np.int64,
    ).reshape(len(kept), len(FINDINGS))
    return HeldOut([reading.xray for reading in kept], labels, len(readings) - len(kept), unrecorded)


def _pseudonym(patient):
    """The patient's number in exported training data, or None when it was never exported."""
    exported = getattr(patient, "export_pseudonym", None)
    return exported.number if exported is not None else None


def _decode(xray, sizes):
    """``{size: pixels}`` of the stored file of ``xray``, or None when it is missing or unreadable."""
    try:
        with xray.image.open("rb") as handle:
            image = open_xray(handle.read())
        return {size: to_model_pixels(image, size) for size in sizes}
    except (OSError, InvalidImage, ValueError):
        return None


def _both_classes(labels):
    return bool(((labels == 1).any(axis=0) & (labels == 0).any(axis=0)).any())


def run_gate(candidate, previous, margin=None):
    """Compare ``candidate`` with the active ``previous`` on the held-out clinic readings and apply
    the rule; activates nothing. Raises ``ArtefactError`` when the candidate cannot be loaded."""
    margin = gate_margin() if margin is None else margin
    held = held_out_readings(candidate, previous)
    result = GateResult(candidate, previous, NOTHING, margin, trained=held.trained, unrecorded=held.unrecorded)
    if not held.xrays:
        result.reason = "no current signed-off reading of a patient neither version trained on"
        return result
    if not _both_classes(held.labels):
        result.reason = (
            f"no finding is marked both present and absent among the {len(held.xrays)} held-out clinic readings"
        )
        return result
    candidate_model = predictor_for(candidate)
    try:
        previous_model = predictor_for(previous)
    except ArtefactError as exc:
        result.reason = f"the active version cannot be loaded ({exc})"
        return result
    sizes = {candidate_model.input_size, previous_model.input_size}
    decoded = [_decode(xray, sizes) for xray in held.xrays]
    readable = [index for index, pixels in enumerate(decoded) if pixels is not None]
    result.unreadable = len(decoded) - len(readable)
    labels = held.labels[readable]
    if not _both_classes(labels):
        result.reason = (
            f"no finding is marked both present and absent among the {len(readable)} readable held-out X-rays"
        )
        return result

    def scores_of(model):
        return model.probabilities(np.stack([decoded[index][model.input_size] for index in readable]), BATCH)

    patients = [held.xrays[index].patient_id for index in readable]
    result.comparison = compare_scores(labels, scores_of(candidate_model), scores_of(previous_model), patients)
    result.readings = len(readable)
    result.outcome = REFUSED if result.comparison["mean"]["difference"] < -margin - 1e-12 else PASSED
    return result


def activate(candidate, *, user=None, force=False):
    """Make ``candidate`` the active version if the gate allows it (or ``force``); returns the
    ``GateResult``. Raises ``ActivationRefused`` (carrying the result) when the gate refuses."""
    previous = ModelVersion.active()
    if previous is not None and previous.pk == candidate.pk:
        return GateResult(candidate, previous, ALREADY, gate_margin())
    if previous is None:
        result = GateResult(candidate, None, FIRST, gate_margin())
    else:
        result = run_gate(candidate, previous)
    if result.refused:
        if not force:
            audit.record_model_change(user, candidate, result.audit_detail())
            raise ActivationRefused(result)
        result.outcome = OVERRIDDEN
    with transaction.atomic():
        candidate.activate()
        audit.record_model_change(user, candidate, result.audit_detail())
    return result
