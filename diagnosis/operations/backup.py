"""Writing a snapshot of an installation (``manage.py backup``); the format is in snapshot.py.

The rows are read in one read transaction (PostgreSQL REPEATABLE READ; on SQLite a deferred
transaction, whose WAL snapshot does not hold back the web workers' writes), so they are
consistent with each other. X-ray files are written once under generated names and never
changed, so they are copied afterwards, through the storage API. Everything is written into a
temporary folder beside the target, which is renamed only when complete.
"""

import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core import serializers
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from diagnosis.lifecycle.models import ModelVersion
from diagnosis.operations.snapshot import (
    ARTEFACTS,
    DATABASE,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MEDIA,
    SnapshotError,
    backed_up_models,
    copy_stream,
    digest_file,
    label,
    migration_state,
    safe_relative,
    serialise_options,
)
from diagnosis.records import audit
from diagnosis.records.models import AuditAction, XRay
from dispredo_core.artefact import resolve


def write_snapshot(out, *, progress=None, using=DEFAULT_DB_ALIAS):
    """Write a snapshot of the installation into the new (or empty) folder ``out``; returns its manifest."""
    say = progress or (lambda message: None)
    out = Path(out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SnapshotError(f"{out} already exists and is not an empty folder: choose a new folder for the snapshot.")
    if not out.parent.is_dir():
        raise SnapshotError(f"The folder {out.parent} does not exist: create it, or choose another --out.")
    started = time.monotonic()
    temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        manifest = _fill(temporary, say, using)
        manifest["seconds"] = round(time.monotonic() - started, 2)
        manifest_path = temporary / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        manifest_path.chmod(0o600)
        # Onto an empty folder too (POSIX rename replaces an empty directory).
        os.rename(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _audit(out, manifest, using)
    return manifest


@contextmanager
def read_transaction(using):
    """One transaction that only reads and sees one state of the database throughout."""
    connection = connections[using]
    if connection.in_atomic_block:
        # Already inside the caller's transaction: its view of the database is the one read.
        with transaction.atomic(using):
            yield
        return
    if connection.vendor == "sqlite":
        # Dispredo's SQLite transactions begin IMMEDIATE (a write lock); a reader needs none.
        connection.ensure_connection()
        mode, connection.transaction_mode = connection.transaction_mode, "DEFERRED"
        try:
            with transaction.atomic(using):
                yield
        finally:
            connection.transaction_mode = mode
        return
    with transaction.atomic(using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _fill(folder, say, using):
    files = []
    with read_transaction(using):
        created_at = timezone.now()
        migrations = migration_state(connections[using])
        counts = _dump_rows(folder / DATABASE, say, using)
        xrays = list(XRay._base_manager.using(using).order_by("pk").values_list("pk", "image"))
        versions = list(ModelVersion._base_manager.using(using).order_by("pk").values_list("name", "artefact_path"))
    files.append(_entry(folder, DATABASE))
    files += _copy_xrays(folder, xrays, say)
    artefacts, artefact_files = _copy_artefacts(folder, versions, say)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": created_at.isoformat(),
        "database_vendor": connections[using].vendor,
        "migrations": migrations,
        "counts": counts,
        "artefacts": artefacts,
        "files": files + artefact_files,
    }


def _dump_rows(path, say, using):
    counts = {}
    with open(path, "x", encoding="utf-8") as stream:
        path.chmod(0o600)
        for model in backed_up_models():
            queryset = model._base_manager.using(using).order_by("pk")
            counts[label(model)] = queryset.count()
            serializers.serialize("jsonl", queryset.iterator(chunk_size=2000), stream=stream, **serialise_options(model))
    say(f"Database: {sum(counts.values())} row(s) of {len(counts)} model(s).")
    return counts


def _entry(folder, relative):
    size, sha = digest_file(folder / relative)
    return {"path": str(relative), "size": size, "sha256": sha}


def _copy_xrays(folder, xrays, say):
    storage = XRay._meta.get_field("image").storage
    entries, step = [], max(1, len(xrays) // 10)
    for number, (pk, name) in enumerate(xrays, start=1):
        relative = f"{MEDIA}/{safe_relative(name)}"
        try:
            with storage.open(name, "rb") as source:
                size, sha = copy_stream(source, folder / relative)
        except OSError as exc:
            raise SnapshotError(
                f"X-ray {pk}'s file {name} cannot be read from the file store ({exc.strerror or exc}). If the X-ray "
                "was deleted during the backup, run it again; if the file is lost, put it back from an earlier "
                "snapshot or delete the X-ray."
            ) from None
        entries.append({"path": relative, "size": size, "sha256": sha})
        if number % step == 0 or number == len(xrays):
            say(f"X-ray files: {number} of {len(xrays)}.")
    if not xrays:
        say("X-ray files: none.")
    return entries


def _location(directory):
    """Where an artefact lives: ("model_dir", path under DISPREDO_MODEL_DIR), ("repository", path
    under the project) or ("elsewhere", its folder name)."""
    for kind, root in (("model_dir", settings.DISPREDO_MODEL_DIR), ("repository", settings.BASE_DIR)):
        try:
            return kind, directory.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            continue
    return "elsewhere", directory.name


def _copy_artefacts(folder, versions, say):
    """Copy each model version's artefact folder once (versions may share one); returns the
    manifest's artefact entries and file entries."""
    by_directory = {}
    for name, location in versions:
        by_directory.setdefault(resolve(location).resolve(), []).append((name, location))
    artefacts, files, keys, total = [], [], set(), 0
    for directory, members in by_directory.items():
        kind, relative = _location(directory)
        key = _unique_key(directory.name, keys)
        entry = {
            "key": key,
            "versions": [name for name, _ in members],
            "artefact_path": members[0][1],
            "location": kind,
            "relative": relative,
            "missing": not directory.is_dir(),
        }
        artefacts.append(entry)
        if entry["missing"]:
            say(f"Warning: the artefact folder of {', '.join(entry['versions'])} ({directory}) is missing; "
                "the snapshot keeps its rows without it.")
            continue
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            relative_file = f"{ARTEFACTS}/{key}/{path.relative_to(directory).as_posix()}"
            with open(path, "rb") as source:
                size, sha = copy_stream(source, folder / relative_file)
            files.append({"path": relative_file, "size": size, "sha256": sha})
            total += size
    say(f"Model artefacts: {len(artefacts)} folder(s), {total / 1e6:.1f} MB.")
    return artefacts, files


def _unique_key(name, taken):
    base = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "artefact"
    key, number = base, 2
    while key in taken:
        key, number = f"{base}-{number}", number + 1
    taken.add(key)
    return key


def _audit(out, manifest, using):
    """A backup copies every patient record: the trail says who took it and where it went."""
    counts = manifest["counts"]
    audit.record_operation(
        "backup", AuditAction.EXPORT, "backup",
        f"snapshot {out}: {counts.get('diagnosis.patient', 0)} patient(s), {counts.get('diagnosis.xray', 0)} X-ray(s)",
        using=using,
    )
