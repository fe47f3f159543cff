"""Migration 0006 carries the old agree / disagree reviews into draft readings, so nothing recorded is lost."""

from datetime import datetime, timezone

import pytest

from dispredo_site.testing.migrations import latest as leaf_nodes, migrate

BEFORE = [("diagnosis", "0005_readings")]
AFTER = [("diagnosis", "0006_reviews_to_readings_and_readers_group")]


@pytest.mark.django_db(transaction=True)
def test_reviews_become_a_draft_reading_with_their_verdicts_and_notes():
    latest = leaf_nodes()
    try:
        old = migrate(BEFORE)
        user = old.get_model("auth", "User").objects.create(username="dr-who", is_staff=True)
        patient = old.get_model("diagnosis", "Patient").objects.create(mrn="M1", name="Ann")
        xray = old.get_model("diagnosis", "XRay").objects.create(
            patient=patient, image="xrays/x.png", sha256="0" * 64, width=1, height=1
        )
        other = old.get_model("diagnosis", "XRay").objects.create(
            patient=patient, image="xrays/y.png", sha256="1" * 64, width=1, height=1
        )
        Review = old.get_model("diagnosis", "Review")
        Review.objects.create(
            xray=xray, reviewer=user, verdict="disagree", note="Effusion not seen ",
            created_at=datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc),
        )
        Review.objects.create(
            xray=xray, reviewer=None, verdict="agree", note="",
            created_at=datetime(2026, 11, 3, 10, 0, tzinfo=timezone.utc),
        )

        new = migrate(AFTER)
        Reading = new.get_model("diagnosis", "Reading")
        reading = Reading.objects.get()
        assert (reading.xray_id, reading.version, reading.status, reading.marks) == (xray.pk, 1, "draft", {})
        assert reading.impression == (
            "Review of the model's output (2026-11-02 09:30, dr-who): Disagree: Effusion not seen\n"
            "Review of the model's output (2026-11-03 10:00, unknown reviewer): Agree"
        )
        assert reading.signed_at is None and reading.created_by_id is None  # the last reviewer is unknown
        assert not Reading.objects.filter(xray_id=other.pk).exists()
        group = new.get_model("auth", "Group").objects.get(name="Readers")
        assert [p.codename for p in group.permissions.all()] == ["sign_off_reading"]
    finally:
        # Back to the full schema, so the tests after this one have it.
        migrate(latest)
