"""The caveats of an X-ray's result (``diagnosis.records.results``): what staff must know before
reading its scores, or why it has none, each with a stable code and the sentence the pages show."""

from dataclasses import dataclass

from diagnosis.records.models import LOW_RESOLUTION, XRayStatus
from dispredo_core.findings import FINDINGS

# Caveat codes, in the order a result lists them: why there are no scores first, then what
# concerns the image, then what concerns the model.
BEING_SCORED = "being_scored"
SCORING_FAILED = "scoring_failed"
INCOMPLETE = "incomplete"
NO_ACTIVE_MODEL = "no_active_model"
PENDING = "pending"
GUARD_OVERRIDE = "guard_override"
LOW_RESOLUTION_CAVEAT = "low_resolution"
UNRELIABLE_FINDINGS = "unreliable_findings"
CAVEAT_CODES = (
    BEING_SCORED, SCORING_FAILED, INCOMPLETE, NO_ACTIVE_MODEL, PENDING, GUARD_OVERRIDE, LOW_RESOLUTION_CAVEAT,
    UNRELIABLE_FINDINGS,
)
# What a caveat is about: why there are no scores, the image, or the model version.
STATUS_CAVEATS = (BEING_SCORED, SCORING_FAILED, INCOMPLETE, NO_ACTIVE_MODEL, PENDING)
IMAGE_CAVEATS = (GUARD_OVERRIDE, LOW_RESOLUTION_CAVEAT)

EARLIER_NOT_SHOWN = " Its earlier scores are not shown: they are not the result of its last scoring."


@dataclass(frozen=True)
class Caveat:
    """Something staff must know about a result: a stable ``code`` (``CAVEAT_CODES``), the
    sentence staff read (``message``), a short ``label`` for chips, and ``severity`` ("error",
    "warning" or "note") for how loudly a page shows it."""

    code: str
    message: str
    label: str
    severity: str = "warning"

    @property
    def html_id(self):
        return self.code.replace("_", "-")

    @property
    def is_status(self):
        """Whether it says why the result has no scores."""
        return self.code in STATUS_CAVEATS


def caveats_of(xray, findings, version, has_rows, active):
    """The caveats of ``xray``'s result, in ``CAVEAT_CODES`` order: ``findings`` are its findings
    (empty unless scored), ``version`` the model version that scored it, ``has_rows`` whether
    predictions of an earlier run are stored, ``active`` the active model version (or None)."""
    earlier = EARLIER_NOT_SHOWN if has_rows else ""
    if xray.status == XRayStatus.SCORING:
        yield Caveat(BEING_SCORED, "Being scored: the model is scoring this X-ray now." + earlier, "Being scored", "note")
    elif xray.status == XRayStatus.FAILED:
        reason = xray.error.strip().rstrip(".")
        message = f"The model could not score this X-ray: {reason}." if reason else "The model could not score this X-ray."
        yield Caveat(
            SCORING_FAILED, message + earlier + " Score it again with manage.py rescore --failed.", "Scoring failed", "error"
        )
    elif xray.status == XRayStatus.DONE and not findings:
        yield Caveat(
            INCOMPLETE,
            "The stored scores of this X-ray are incomplete (not one per finding from one model version), so none "
            "is shown. Score it again with manage.py rescore.",
            "Scores incomplete",
            "error",
        )
    elif xray.status == XRayStatus.PENDING and active is None:
        yield Caveat(
            NO_ACTIVE_MODEL,
            "Pending: no model was installed when this X-ray was uploaded, and none is active now. It is scored "
            "once a model version is active (manage.py rescore).",
            "Pending: no model",
        )
    elif xray.status == XRayStatus.PENDING:
        yield Caveat(
            PENDING,
            f"Pending: no model was installed when this X-ray was uploaded. Model version {active.name} is active "
            "now: manage.py rescore scores it.",
            "Pending",
        )
    if xray.guard_overridden:
        yield Caveat(
            GUARD_OVERRIDE,
            "The input guard found this image unlike a frontal chest X-ray; a staff member confirmed that it is one "
            "and had it scored anyway (the override is in the audit trail).",
            "Guard overridden",
        )
    if xray.is_low_resolution:
        yield Caveat(
            LOW_RESOLUTION_CAVEAT,
            f"Low resolution: this image is {xray.width}×{xray.height} pixels, under {LOW_RESOLUTION} on its short "
            "side. The model sees less fine detail than it was trained on; score the original image where you have it.",
            "Low resolution",
        )
    if findings:
        unreliable = [f.display_name for f in findings if not f.reliable]
        if not version.reliability:
            yield Caveat(
                UNRELIABLE_FINDINGS,
                "This model version carries no reliability figures, so none of its findings can be trusted to flag.",
                "No reliable finding",
                "note",
            )
        elif len(unreliable) == len(FINDINGS):
            yield Caveat(
                UNRELIABLE_FINDINGS,
                f"None of the {len(FINDINGS)} findings is reliable with this model, so none is ever flagged.",
                "No reliable finding",
                "note",
            )
        elif unreliable:
            yield Caveat(
                UNRELIABLE_FINDINGS,
                "Not reliable with this model, so never flagged: " + ", ".join(unreliable) + ".",
                f"{len(unreliable)} not reliable",
                "note",
            )
