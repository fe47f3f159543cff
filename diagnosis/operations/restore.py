"""Rebuilding an empty installation from a snapshot (``manage.py restore``); the format is in snapshot.py.

Everything is checked before anything changes: the manifest, the size and SHA-256 of every file,
the migration state, that the installation is empty and that no X-ray file would overwrite one.
The rows are then loaded in one transaction; the files written are removed again if any later
step fails, so a refused or failed restore leaves the installation as it was.

"Empty" means a migrated database with no rows of any model a snapshot holds, except groups
(migrations make "Readers"): a group in the snapshot takes the place of the one of its name.
"""

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core import serializers
from django.core.files import File
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.lifecycle.registry import relative_location
from diagnosis.operations.snapshot import (
    ARTEFACTS,
    DATABASE,
    MEDIA,
    MERGED_BY_NAME,
    NATURAL_PRIMARY,
    SnapshotError,
    backed_up_models,
    digest_file,
    label,
    newer_migrations,
    read_manifest,
    safe_relative,
    verify_files,
)
from diagnosis.records import audit
from diagnosis.records.models import AuditAction, XRay
from dispredo_core.artefact import resolve

NAMED = {"auth.user": "username", "diagnosis.modelversion": "name"}
# Rows inserted per statement where a model allows it (see _insert_in_batches).
BATCH = 500


def restore_snapshot(folder, *, progress=None, using=DEFAULT_DB_ALIAS):
    """Restore the snapshot in ``folder`` into this (empty) installation; returns the rows loaded per model."""
    say = progress or (lambda message: None)
    folder = Path(folder).absolute()
    manifest = check_snapshot(folder, progress=say)
    check_migrations(manifest, using)
    check_empty(using)
    storage = XRay._meta.get_field("image").storage
    media = _media_names(manifest)
    for name in media:
        if storage.exists(name):
            raise SnapshotError(
                f"The file store already holds {name}, which the snapshot would write: restore into an empty "
                "file store (a new DISPREDO_MEDIA_ROOT or bucket)."
            )
    plans = plan_artefacts(manifest)
    written, created = [], []
    try:
        with transaction.atomic(using):
            loaded = _load_rows(folder / DATABASE, manifest, using)
            say(f"Database: {sum(loaded.values())} row(s) loaded.")
            for entry, destination, copy in plans:
                _place_artefact(folder, manifest, entry, destination, copy, created, say, using)
            _write_media(folder, media, storage, written, say)
            restored = set(written)
            for pk, name in XRay._base_manager.using(using).order_by("pk").values_list("pk", "image"):
                if name not in restored:
                    raise SnapshotError(f"X-ray {pk}'s file {name} is not in the snapshot: it is damaged; nothing was restored.")
            _audit(folder, manifest, using)
    except BaseException:
        for name in written:
            storage.delete(name)
        for directory in created:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return loaded


def check_snapshot(folder, *, progress=None):
    """The manifest of the snapshot in ``folder`` once every file in it is checked; changes nothing."""
    manifest = read_manifest(folder)
    verify_files(folder, manifest, progress)
    return manifest


def check_migrations(manifest, using):
    problems = newer_migrations(manifest["migrations"], connections[using])
    if problems:
        raise SnapshotError(
            "The snapshot comes from a newer migration state than this installation: " + "; ".join(problems)
            + ". Install the Dispredo version that made it (or a newer one) and run manage.py migrate, then restore."
        )


def installation_contents(using=DEFAULT_DB_ALIAS):
    """What is in this installation that a restore would overwrite: a list of phrases, empty when empty."""
    found = []
    for model in backed_up_models():
        if label(model) in MERGED_BY_NAME:
            continue
        rows = model._base_manager.using(using)
        count = rows.count()
        if not count:
            continue
        meta = model._meta
        phrase = f"{count} {meta.verbose_name if count == 1 else meta.verbose_name_plural}"
        if label(model) in NAMED:
            names = list(rows.order_by("pk").values_list(NAMED[label(model)], flat=True)[:3])
            phrase += f" ({', '.join(names)}{', ...' if count > 3 else ''})"
        found.append(phrase)
    return found


def check_empty(using):
    found = installation_contents(using)
    if found:
        raise SnapshotError(
            f"This installation is not empty: it has {', '.join(found)}. Restore rebuilds an empty installation only: "
            "point DATABASE_URL (or DISPREDO_DATA_DIR) at a new database, run manage.py migrate (not setup, which "
            "creates an account and registers the default model), then restore."
        )


def _media_names(manifest):
    prefix = f"{MEDIA}/"
    return [entry["path"][len(prefix):] for entry in manifest["files"] if entry["path"].startswith(prefix)]


def _artefact_files(manifest, key):
    prefix = f"{ARTEFACTS}/{key}/"
    return {entry["path"][len(prefix):]: entry["sha256"] for entry in manifest["files"] if entry["path"].startswith(prefix)}


def _same_files(directory, files):
    """Whether ``directory`` holds exactly ``files`` ({relative path: SHA-256})."""
    if not directory.is_dir():
        return False
    present = {p.relative_to(directory).as_posix(): p for p in directory.rglob("*") if p.is_file()}
    return present.keys() == files.keys() and all(digest_file(present[name])[1] == sha for name, sha in files.items())


def plan_artefacts(manifest):
    """Where each artefact goes: [(entry, destination, copy?)]. A repository artefact this
    installation holds identically stays referenced; every other goes under DISPREDO_MODEL_DIR, at
    its place there, or under its folder's name, beside any different folder already there."""
    model_dir = Path(settings.DISPREDO_MODEL_DIR)
    plans = []
    for entry in manifest["artefacts"]:
        if entry.get("missing"):
            plans.append((entry, None, False))
            continue
        files = _artefact_files(manifest, entry["key"])
        relative = safe_relative(entry["relative"])
        if entry["location"] == "repository" and _same_files(resolve(relative), files):
            plans.append((entry, resolve(relative), False))
            continue
        preferred = model_dir / (relative if entry["location"] == "model_dir" else relative.name)
        destination, number = preferred, 1
        while destination.exists() and not _same_files(destination, files):
            suffix = "-restored" if number == 1 else f"-restored-{number}"
            destination, number = preferred.with_name(preferred.name + suffix), number + 1
        plans.append((entry, destination, not destination.exists()))
    return plans


def _place_artefact(folder, manifest, entry, destination, copy, created, say, using):
    names = ", ".join(entry["versions"])
    if destination is None:
        say(f"Model artefact of {names}: not in the snapshot (it was missing when the backup was taken).")
        return
    if copy:
        destination.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
        created.append(temporary)
        for name in _artefact_files(manifest, entry["key"]):
            target = temporary / safe_relative(name)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(folder / ARTEFACTS / entry["key"] / PurePosixPath(name), target)
        os.rename(temporary, destination)
        created[-1] = destination
    location = relative_location(destination)
    ModelVersion._base_manager.using(using).filter(name__in=entry["versions"]).update(artefact_path=location)
    state = "restored into" if copy else "kept at"
    was = f" (was {entry['artefact_path']})" if location != entry["artefact_path"] else ""
    say(f"Model artefact of {names}: {state} {location}{was}.")


def _write_media(folder, media, storage, written, say):
    step = max(1, len(media) // 10)
    for number, name in enumerate(media, start=1):
        with open(folder / MEDIA / safe_relative(name), "rb") as handle:
            saved = storage.save(name, File(handle, name=name))
        written.append(saved)
        if saved != name:
            raise SnapshotError(f"The file store stored {name} as {saved}: restore into an empty file store.")
        if number % step == 0 or number == len(media):
            say(f"X-ray files: {number} of {len(media)}.")


def _load_rows(path, manifest, using):
    """Load database.jsonl as loaddata does (constraints checked at the end), then move the id
    sequences past the loaded ids; returns the rows loaded per model."""
    connection = connections[using]
    allowed = {label(model) for model in backed_up_models()}
    loaded, models, deferred, batch = Counter(), set(), [], []

    def insert_batch():
        if batch:
            type(batch[0])._base_manager.using(using).bulk_create(batch, batch_size=BATCH)
            batch.clear()

    try:
        with connection.constraint_checks_disabled(), open(path, encoding="utf-8") as stream:
            for row in serializers.deserialize("jsonl", stream, using=using, handle_forward_references=True):
                model = type(row.object)
                if label(model) not in allowed:
                    raise SnapshotError(f"{DATABASE} holds rows of {label(model)}, which no snapshot holds: it is damaged.")
                loaded[label(model)] += 1
                models.add(model)
                if _insert_in_batches(model) and not row.m2m_data and not row.deferred_fields:
                    if batch and type(batch[0]) is not model:
                        insert_batch()
                    batch.append(row.object)
                    if len(batch) >= BATCH:
                        insert_batch()
                    continue
                insert_batch()
                row.save(using=using)
                if row.deferred_fields:
                    deferred.append(row)
            insert_batch()
            for row in deferred:
                row.save_deferred_fields(using=using)
        connection.check_constraints(table_names=[model._meta.db_table for model in models])
    except SnapshotError:
        raise
    except Exception as exc:
        raise SnapshotError(f"{DATABASE} could not be loaded ({exc}); nothing was restored.") from exc
    expected = {key: count for key, count in manifest["counts"].items() if count}
    if dict(loaded) != expected:
        wrong = sorted(key for key in expected.keys() | loaded.keys() if expected.get(key, 0) != loaded.get(key, 0))
        raise SnapshotError(
            f"{DATABASE} holds {loaded.get(wrong[0], 0)} row(s) of {wrong[0]} where the manifest counts "
            f"{expected.get(wrong[0], 0)}: the snapshot is damaged; nothing was restored."
        )
    statements = connection.ops.sequence_reset_sql(no_style(), sorted(models, key=label))
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return loaded


def _insert_in_batches(model):
    """Whether rows of ``model`` may go in with bulk_create: only without many-to-many fields,
    natural primary keys or auto_now fields (bulk_create would stamp those with the present time)."""
    meta = model._meta
    automatic = any(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False) for field in meta.concrete_fields)
    return not (meta.many_to_many or automatic or label(model) in NATURAL_PRIMARY)


def _audit(folder, manifest, using):
    audit.record_operation(
        "restore", AuditAction.CREATE, "restore", f"restored the snapshot of {manifest['created_at']} from {folder}",
        using=using,
    )
