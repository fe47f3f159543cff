"""What backup and restore refuse, with their messages; a refused restore changes nothing."""

import json
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from diagnosis.operations.restore import installation_contents
from diagnosis.operations.snapshot import DATABASE, MANIFEST
from diagnosis.readings import rules as readings
from diagnosis.records.models import XRay
from dispredo_core.artefact import resolve
from dispredo_site.testing.backups import ALL_ABSENT, files_under, wipe
from dispredo_site.testing.factories import make_xray


@pytest.fixture
def installation(reader, patient, tiny_model):
    """Two X-rays with predictions, one signed-off reading."""
    first = make_xray(patient, version=tiny_model, flagged=("Effusion",), content=b"first image")
    make_xray(patient, version=tiny_model, content=b"second image")
    readings.sign_off(first, reader, ALL_ABSENT, "Normal.")
    return first


@pytest.fixture
def snapshot(installation, tiny_model, settings, tmp_path):
    """A snapshot of ``installation``, which is then wiped: an empty installation to restore into."""
    folder = tmp_path / "snapshot"
    call_command("backup", out=str(folder), stdout=StringIO())
    wipe(settings, resolve(tiny_model.artefact_path))
    return folder


def restore(folder):
    call_command("restore", str(folder), stdout=StringIO())


def manifest_of(folder):
    return json.loads((folder / MANIFEST).read_text())


def rewrite_manifest(folder, change):
    manifest = manifest_of(folder)
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def assert_nothing_restored(settings):
    assert installation_contents() == []
    assert files_under(settings.MEDIA_ROOT) == [] and files_under(settings.DISPREDO_MODEL_DIR) == []


def refusal(folder):
    with pytest.raises(CommandError) as refused:
        restore(folder)
    return str(refused.value)


@pytest.mark.django_db
def test_it_refuses_a_truncated_database_dump_and_restores_nothing(snapshot, settings):
    dump = snapshot / DATABASE
    size = dump.stat().st_size
    dump.write_bytes(dump.read_bytes()[: size // 2])
    assert refusal(snapshot) == (
        f"{DATABASE} is {size // 2} bytes where the manifest says {size}: the snapshot is truncated or damaged. "
        "Restore from another one."
    )
    assert_nothing_restored(settings)


@pytest.mark.django_db
def test_check_passes_a_complete_snapshot_and_refuses_a_damaged_one_changing_nothing(snapshot, settings):
    out = StringIO()
    call_command("restore", str(snapshot), check=True, stdout=out)
    created_at = manifest_of(snapshot)["created_at"]
    assert out.getvalue().splitlines()[-1] == (
        f"{snapshot} is complete: its 5 file(s) match the manifest (snapshot of {created_at}: 1 patient(s), "
        "2 X-ray(s)). Nothing was restored."
    )
    (snapshot / "artefacts" / "tiny" / "metadata.json").write_text("{}")
    with pytest.raises(CommandError, match=r"^artefacts/tiny/metadata.json is 2 bytes where the manifest says \d+"):
        call_command("restore", str(snapshot), check=True, stdout=StringIO())
    assert_nothing_restored(settings)


@pytest.mark.django_db
def test_it_refuses_a_snapshot_without_its_manifest(snapshot, settings):
    (snapshot / MANIFEST).unlink()
    assert refusal(snapshot) == (
        f"{snapshot / MANIFEST} is missing: {snapshot} is not a complete snapshot (a backup still being written or "
        "copied only in part). Restore from a complete one."
    )
    assert_nothing_restored(settings)


@pytest.mark.django_db
def test_it_refuses_a_cut_manifest(snapshot, settings):
    text = (snapshot / MANIFEST).read_text()
    (snapshot / MANIFEST).write_text(text[: len(text) // 3])
    assert refusal(snapshot).startswith(f"{snapshot / MANIFEST} is damaged (not valid JSON: ")
    assert_nothing_restored(settings)


@pytest.mark.django_db
def test_it_refuses_a_snapshot_missing_an_xray_file_naming_it(snapshot, settings):
    first_media = next(entry["path"] for entry in manifest_of(snapshot)["files"] if entry["path"].startswith("media/"))
    (snapshot / first_media).unlink()
    assert refusal(snapshot) == (
        f"{first_media} is missing from the snapshot ({snapshot / first_media}): it is incomplete. "
        "Restore from a complete one."
    )
    assert_nothing_restored(settings)


@pytest.mark.django_db
def test_it_refuses_an_artefact_file_changed_in_place(snapshot, settings):
    onnx = snapshot / "artefacts" / "tiny" / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[-1] ^= 0xFF
    onnx.write_bytes(bytes(data))
    assert refusal(snapshot) == (
        "artefacts/tiny/model.onnx does not match its SHA-256 in the manifest: the snapshot is damaged. "
        "Restore from another one."
    )
    assert_nothing_restored(settings)


@pytest.mark.django_db
def test_it_refuses_a_snapshot_from_a_newer_migration_state(snapshot, settings):
    rewrite_manifest(snapshot, lambda m: m["migrations"].update(diagnosis="0099_from_the_future"))
    assert refusal(snapshot) == (
        "The snapshot comes from a newer migration state than this installation: diagnosis 0099_from_the_future is "
        "unknown to this Dispredo (a newer version made the snapshot). Install the Dispredo version that made it "
        "(or a newer one) and run manage.py migrate, then restore."
    )
    assert_nothing_restored(settings)


@pytest.mark.django_db
def test_it_refuses_to_restore_into_an_installation_that_is_not_empty(installation, tiny_model, tmp_path, settings):
    call_command("backup", out=str(tmp_path / "snapshot"), stdout=StringIO())
    before = installation_contents()
    media_before = files_under(settings.MEDIA_ROOT)
    assert refusal(tmp_path / "snapshot") == (
        "This installation is not empty: it has 2 users (reader, nurse), 1 model version (tiny-test-model), "
        "1 patient, 2 X-rays, 28 predictions, 2 audit events, 1 reading. Restore rebuilds an empty "
        "installation only: point DATABASE_URL (or DISPREDO_DATA_DIR) at a new database, run manage.py migrate "
        "(not setup, which creates an account and registers the default model), then restore."
    )
    assert installation_contents() == before and files_under(settings.MEDIA_ROOT) == media_before


@pytest.mark.django_db
def test_it_refuses_to_overwrite_a_file_already_in_the_file_store(snapshot, settings):
    name = next(e["path"] for e in manifest_of(snapshot)["files"] if e["path"].startswith("media/"))[len("media/"):]
    storage = XRay._meta.get_field("image").storage
    storage.save(name, ContentFile(b"someone else's"))
    assert refusal(snapshot) == (
        f"The file store already holds {name}, which the snapshot would write: restore into an empty file store "
        "(a new DISPREDO_MEDIA_ROOT or bucket)."
    )
    assert installation_contents() == [] and [p.read_bytes() for p in files_under(settings.MEDIA_ROOT)] == [b"someone else's"]


@pytest.mark.django_db
def test_a_restore_that_fails_after_writing_files_takes_them_away_again(snapshot, settings):
    # A snapshot whose manifest no longer lists an X-ray file (and lacks it) passes the checksums;
    # the rows name the file, so the restore fails after writing the others and the artefacts.
    files = manifest_of(snapshot)["files"]
    media = [e["path"] for e in files if e["path"].startswith("media/")]
    (snapshot / media[-1]).unlink()
    rewrite_manifest(snapshot, lambda m: m.update(files=[e for e in files if e["path"] != media[-1]]))
    message = refusal(snapshot)
    assert message.startswith("X-ray ") and message.endswith(
        f"'s file {media[-1][len('media/'):]} is not in the snapshot: it is damaged; nothing was restored."
    )
    assert_nothing_restored(settings)


@pytest.mark.django_db
def test_it_refuses_rows_that_differ_from_the_manifest_counts(snapshot, settings):
    rewrite_manifest(snapshot, lambda m: m["counts"].update({"diagnosis.prediction": 27}))
    assert refusal(snapshot) == (
        f"{DATABASE} holds 28 row(s) of diagnosis.prediction where the manifest counts 27: the snapshot is "
        "damaged; nothing was restored."
    )
    assert_nothing_restored(settings)


@pytest.mark.django_db
def test_backup_refuses_a_folder_that_is_not_empty_or_has_no_parent_and_writes_into_an_empty_one(installation, tmp_path):
    out = tmp_path / "out"
    taken = out / "taken"
    taken.mkdir(parents=True)
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(CommandError) as refused:
        call_command("backup", out=str(taken), stdout=StringIO())
    assert str(refused.value) == f"{taken} already exists and is not an empty folder: choose a new folder for the snapshot."
    with pytest.raises(CommandError) as refused:
        call_command("backup", out=str(out / "no-such-folder" / "snapshot"), stdout=StringIO())
    assert str(refused.value) == f"The folder {out / 'no-such-folder'} does not exist: create it, or choose another --out."
    empty = out / "empty"
    empty.mkdir()
    call_command("backup", out=str(empty), stdout=StringIO())
    assert manifest_of(empty)["counts"]["diagnosis.xray"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["empty", "taken"]  # and no temporary folder


@pytest.mark.django_db
def test_backup_refuses_when_an_xray_file_is_lost_and_leaves_no_folder(installation, tmp_path):
    installation.image.storage.delete(installation.image.name)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CommandError) as refused:
        call_command("backup", out=str(out / "snapshot"), stdout=StringIO())
    assert str(refused.value) == (
        f"X-ray {installation.pk}'s file {installation.image.name} cannot be read from the file store (No such file "
        "or directory). If the X-ray was deleted during the backup, run it again; if the file is lost, put it back "
        "from an earlier snapshot or delete the X-ray."
    )
    assert list(out.iterdir()) == []
