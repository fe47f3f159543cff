"""The rules of claims and of the repair, without killing a server: whose journal row or claim is
dead (a real process that ended, a pid given to another process, another host's row gone stale),
and what the repair and ``manage.py repair_uploads`` do with them.

Live and dead writers are real processes: ``sleep`` started by the test, killed and reaped by it.
The crash tests (test_crash_safety.py) kill a real server at each dangerous point."""

import getpass
import os
import socket
import subprocess
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from diagnosis.intake import processes
from diagnosis.intake.models import IncomingFile
from diagnosis.intake.repair import repair_uploads
from diagnosis.intake.scoring import claim, score_xray
from diagnosis.intake.storing import store_xray
from diagnosis.lifecycle.models import ModelVersion
from diagnosis.records.models import AuditEvent, Patient, Prediction, XRay, XRayStatus
from diagnosis.storage.xrays import xray_storage
from dispredo_core.imaging import open_xray
from dispredo_site.testing.helpers import stored_files

pytestmark = pytest.mark.django_db

REPAIRER = f"manage.py repair_uploads ({getpass.getuser()})"
ANOTHER_HOST = "radiology-2/0badf00d:4242:123456"


@contextmanager
def running_process():
    """A live process of this host (``sleep``) and its identity; killed and reaped on leaving."""
    process = subprocess.Popen(["sleep", "120"])
    try:
        yield process, processes.identity_of(process.pid)
    finally:
        process.kill()
        process.wait()


def dead_identity():
    with running_process() as (_, identity):
        pass
    return identity


@pytest.fixture
def chest(sample_images):
    data = sample_images["px_256"].read_bytes()
    return data, open_xray(data)


@pytest.fixture
def stored(patient, staff, chest):
    """An X-ray stored (pending, not scored), as a process killed before scoring leaves it."""
    data, image = chest
    return store_xray(patient=patient, data=data, original_name="chest.png", image=image, uploaded_by=staff)


def left_scoring_by(xray, identity, since=None):
    XRay.objects.filter(pk=xray.pk).update(
        status=XRayStatus.SCORING, scoring_by=identity, scoring_since=since or timezone.now()
    )
    return XRay.objects.get(pk=xray.pk)


def audit_of(xray):
    return list(
        AuditEvent.objects.filter(object_type="xray", object_id=xray.pk, username=REPAIRER).values_list("action", "detail")
    )


def test_the_identity_names_this_host_this_pid_and_its_start_time():
    host, pid, start = processes.current().split(":")
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    assert host.startswith(socket.gethostname() + "/") and len(host.rsplit("/", 1)[1]) == 8
    assert (int(pid), start) == (os.getpid(), fields[19])
    assert not processes.is_dead(processes.current(), timezone.now())


def test_a_process_that_ended_is_dead_and_a_reused_pid_is_not_mistaken_for_it():
    with running_process() as (_, identity):
        host, pid, start = identity.split(":")
        assert not processes.is_dead(identity, timezone.now())
        # The same pid with another start time: the process it named has ended, whoever has the pid now.
        assert processes.is_dead(f"{host}:{pid}:{int(start) - 1}", timezone.now())
    assert processes.is_dead(identity, timezone.now())


def test_another_hosts_row_is_dead_only_once_stale():
    now = timezone.now()
    assert not processes.is_dead(ANOTHER_HOST, now - processes.STALE_AFTER + timedelta(seconds=5), now)
    assert processes.is_dead(ANOTHER_HOST, now - processes.STALE_AFTER - timedelta(seconds=5), now)
    assert processes.is_dead("not an identity", now - timedelta(hours=1), now)


def test_store_xray_with_claim_leaves_it_scoring_by_this_process_and_scoring_ends_the_claim(
    tiny_model, patient, staff, chest, private_media
):
    data, image = chest
    xray = store_xray(patient=patient, data=data, original_name="chest.png", image=image, uploaded_by=staff, claim=True)

    row = XRay.objects.get(pk=xray.pk)
    assert (row.status, row.scoring_by) == (XRayStatus.SCORING, processes.current())
    assert IncomingFile.objects.count() == 0 and len(stored_files(private_media)) == 1
    assert score_xray(xray, image) == XRayStatus.DONE
    row.refresh_from_db()
    assert (row.status, row.scoring_by, row.scoring_since) == (XRayStatus.DONE, "", None)
    assert Prediction.objects.filter(xray=xray).count() == 14


def test_a_claim_by_a_live_process_is_left_alone_until_it_dies(tiny_model, stored):
    with running_process() as (_, identity):
        xray = left_scoring_by(stored, identity)
        assert score_xray(xray) == XRayStatus.SCORING
        assert claim(XRay.objects.get(pk=xray.pk)) is None
        assert repair_uploads().xrays_found == 0
        row = XRay.objects.get(pk=xray.pk)
        assert (row.status, row.scoring_by, row.predictions.count()) == (XRayStatus.SCORING, identity, 0)

    repair = repair_uploads()

    row = XRay.objects.get(pk=xray.pk)
    assert (repair.xrays_found, repair.scored[XRayStatus.DONE]) == (1, 1)
    assert (row.status, row.scoring_by, row.predictions.count()) == (XRayStatus.DONE, "", 14)
    assert audit_of(xray) == [("change", f"scored again after an interrupted upload (left scoring by {identity}): done")]


def test_a_stale_claim_from_another_host_is_taken_over_and_a_recent_one_is_not(tiny_model, stored):
    xray = left_scoring_by(stored, ANOTHER_HOST, timezone.now() - timedelta(minutes=2))
    assert repair_uploads().xrays_found == 0
    assert XRay.objects.get(pk=xray.pk).scoring_by == ANOTHER_HOST

    left_scoring_by(stored, ANOTHER_HOST, timezone.now() - processes.STALE_AFTER - timedelta(minutes=1))
    assert repair_uploads().scored[XRayStatus.DONE] == 1
    assert XRay.objects.get(pk=xray.pk).status == XRayStatus.DONE


def test_a_claim_this_process_holds_is_its_own_to_score(tiny_model, stored):
    xray = XRay.objects.get(pk=stored.pk)
    assert claim(xray) == XRayStatus.PENDING  # the status to go back to if nothing is written
    assert claim(XRay.objects.get(pk=xray.pk)) == XRayStatus.PENDING  # held by this process: still its own
    assert XRay.objects.get(pk=xray.pk).scoring_by == processes.current()
    assert score_xray(XRay.objects.get(pk=xray.pk)) == XRayStatus.DONE


def test_a_pending_xray_is_scored_by_the_repair_once_a_model_is_active(tiny_model, stored):
    ModelVersion.objects.update(is_active=False)
    assert repair_uploads().xrays_found == 0  # no model: pending is what it should be

    tiny_model.activate()
    repair = repair_uploads()

    assert (repair.xrays_found, repair.scored[XRayStatus.DONE]) == (1, 1)
    assert XRay.objects.get(pk=stored.pk).predictions.count() == 14
    assert audit_of(stored) == [
        ("change", "scored again after an interrupted upload (left pending while a model was active): done")
    ]


def test_with_no_active_model_a_claimed_xray_goes_back_to_pending(stored):
    xray = left_scoring_by(stored, dead_identity())

    assert score_xray(xray) == XRayStatus.PENDING

    row = XRay.objects.get(pk=xray.pk)
    assert (row.status, row.scoring_by, row.scoring_since) == (XRayStatus.PENDING, "", None)


def test_a_model_that_fails_marks_a_claimed_xray_failed_and_ends_the_claim(stored, tmp_path):
    from diagnosis.lifecycle.registry import register_model_version
    from dispredo_site.testing.tiny_model import build_tiny_artefact

    build_tiny_artefact(tmp_path / "broken", name="broken-model")
    (tmp_path / "broken" / "model.onnx").write_bytes(b"garbage")
    register_model_version(tmp_path / "broken", activate=True)
    xray = left_scoring_by(stored, dead_identity())

    assert score_xray(xray) == XRayStatus.FAILED

    row = XRay.objects.get(pk=xray.pk)
    assert (row.status, row.scoring_by) == (XRayStatus.FAILED, "")
    assert "Cannot load the serving model" in row.error


def journaled_file(name, writer, content=b"\x89PNG partial"):
    """A file in the X-ray storage and its journal row, as a writer killed before its row leaves them."""
    xray_storage.save(name, ContentFile(content))
    return IncomingFile.objects.create(name=name, writer=writer)


def test_a_journal_row_of_a_live_writer_is_left_alone_and_removed_once_it_is_dead(private_media):
    with running_process() as (_, identity):
        journaled_file("xrays/2026/12/0123456789abcdef0123456789abcdef.png", identity)
        assert repair_uploads().files_found == 0
        assert len(stored_files(private_media)) == 1 and IncomingFile.objects.count() == 1

    repair = repair_uploads()

    assert (repair.files_found, repair.files_removed) == (1, 1)
    assert stored_files(private_media) == [] and IncomingFile.objects.count() == 0
    event = AuditEvent.objects.get(object_type="upload")
    assert (event.user, event.username, event.action, event.patient, event.object_id) == (None, REPAIRER, "delete", None, 0)
    assert event.detail == (
        f"removed xrays/2026/12/0123456789abcdef0123456789abcdef.png, left by the interrupted upload of {identity}"
    )


def test_a_journal_row_whose_file_was_never_written_is_removed(private_media):
    IncomingFile.objects.create(name="xrays/2026/12/fedcba9876543210fedcba9876543210.png", writer=dead_identity())

    assert repair_uploads().files_removed == 1
    assert IncomingFile.objects.count() == 0


def test_a_store_that_fails_in_on_stored_leaves_no_file_no_journal_row_and_no_patient(staff, chest, private_media):
    data, image = chest
    patient = Patient(mrn="NEW-1", name="New Patient")
    seen = []

    def failing(xray, new_patient):
        seen.append((xray.pk is not None, new_patient))
        raise RuntimeError("the audit could not be written")

    with pytest.raises(RuntimeError, match="the audit could not be written"):
        store_xray(patient=patient, data=data, original_name="a.png", image=image, uploaded_by=staff, on_stored=failing)

    assert seen == [(True, True)]
    assert (XRay.objects.count(), Patient.objects.count(), IncomingFile.objects.count()) == (0, 0, 0)
    assert stored_files(private_media) == []
    assert patient.pk is None  # new again, as it was given


def test_on_stored_writes_within_the_rows_transaction(staff, patient, chest):
    data, image = chest

    def audited(xray, new_patient):
        AuditEvent.objects.create(username="nurse", action="create", patient=patient, patient_mrn=patient.mrn,
                                  object_type="xray", object_id=xray.pk, detail=f"new patient: {new_patient}")

    xray = store_xray(patient=patient, data=data, original_name="a.png", image=image, uploaded_by=staff,
                      source="api", on_stored=audited)

    assert AuditEvent.objects.get(object_id=xray.pk).detail == "new patient: False"
    assert XRay.objects.get(pk=xray.pk).source == "api"


def test_the_command_reports_its_counts_dry_run_and_progress(tiny_model, stored, private_media):
    left_scoring_by(stored, dead_identity())
    journaled_file("xrays/2026/12/00000000000000000000000000000000.png", dead_identity())

    dry = StringIO()
    call_command("repair_uploads", dry_run=True, stdout=dry)
    assert dry.getvalue() == "1 interrupted upload file(s) would be removed and 1 X-ray(s) scored again.\n"
    assert IncomingFile.objects.count() == 1 and XRay.objects.get(pk=stored.pk).status == XRayStatus.SCORING

    out = StringIO()
    call_command("repair_uploads", verbosity=2, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Removed the file of an upload interrupted in ")
    assert lines[1:] == [
        f"X-ray {stored.pk}: done",
        ("Removed 1 interrupted upload file(s); scored 1 X-ray(s) again: 1 done, 0 failed, 0 pending, "
         "0 taken by a running process."),
    ]
    again = StringIO()
    call_command("repair_uploads", stdout=again)
    assert again.getvalue() == "Nothing to repair: no upload was interrupted.\n"


def test_the_command_says_what_to_do_when_the_storage_cannot_delete_a_file(private_media):
    # A real failure of the local storage: the journal names a folder that is not empty.
    folder = private_media / "xrays" / "2026" / "12" / "11111111111111111111111111111111.png"
    folder.mkdir(parents=True)
    (folder / "inside").write_bytes(b"x")
    IncomingFile.objects.create(name="xrays/2026/12/11111111111111111111111111111111.png", writer=dead_identity())

    with pytest.raises(CommandError) as raised:
        call_command("repair_uploads", stdout=StringIO())

    assert str(raised.value) == (
        "1 interrupted upload file(s) could not be removed from the X-ray storage (OSError); they stay listed for "
        "the next repair. Check that the storage (DISPREDO_STORAGE, DISPREDO_MEDIA_ROOT or the S3 settings) is "
        "reachable and writable, then run manage.py repair_uploads again."
    )
    assert IncomingFile.objects.count() == 1


def test_the_command_says_to_run_setup_on_a_database_without_the_journal():
    with connection.cursor() as cursor:  # undone with the test's transaction
        cursor.execute("DROP TABLE diagnosis_incomingfile")

    with pytest.raises(CommandError, match=r"^The database has no journal of incoming files yet: run manage.py setup"):
        call_command("repair_uploads", stdout=StringIO())


def test_the_dicom_listener_repairs_before_it_listens(settings, private_media):
    journaled_file("xrays/2026/12/22222222222222222222222222222222.dcm", dead_identity())
    with socket.socket() as taken:  # the listener then fails to listen: it repaired first
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings.DISPREDO_DICOM_BIND, settings.DISPREDO_DICOM_PORT = "127.0.0.1", taken.getsockname()[1]
        out = StringIO()
        with pytest.raises(OSError):
            call_command("dicom_listener", stdout=out)

    assert out.getvalue().startswith("Repaired interrupted uploads: removed 1 file(s), scored 0 X-ray(s) again")
    assert IncomingFile.objects.count() == 0 and stored_files(private_media) == []
    event = AuditEvent.objects.get(object_type="upload")
    assert event.username == f"manage.py dicom_listener ({getpass.getuser()})"
