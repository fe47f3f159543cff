"""The snapshot format shared by ``manage.py backup`` (backup.py) and ``manage.py restore`` (restore.py).

A snapshot is a folder::

    manifest.json    format and version, created_at, the migration state, counts per model,
                     the model artefacts and the size and SHA-256 of every other file
    database.jsonl   the rows, one JSON object per line (Django's "jsonl" serialisation, so any
                     database engine restores it: SQLite into PostgreSQL and back)
    media/<name>     every X-ray file under the name it is stored with
    artefacts/<key>/ every model version's artefact folder (the shipped default included)

Users keep their ids; groups, permissions and content types are written by natural key, since
migrations recreate permissions and content types with ids of their own.
"""

import hashlib
import json
from pathlib import Path, PurePosixPath

from django.apps import apps
from django.core.serializers import sort_dependencies
from django.core.serializers.json import DjangoJSONEncoder
from django.db.migrations.loader import MigrationLoader

FORMAT = "dispredo-snapshot"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "database.jsonl"
MEDIA = "media"
ARTEFACTS = "artefacts"

# Apps whose rows a snapshot holds: every model of these, except those in NOT_BACKED_UP.
BACKED_UP_APPS = ("auth", "admin", "axes", "diagnosis", "api")
# Every other installed model, and why it is left out (a test checks that each model is one or the other).
NOT_BACKED_UP = {
    "auth.permission": "recreated by migrate; referred to by natural key",
    "contenttypes.contenttype": "recreated by migrate; referred to by natural key",
    "sessions.session": "everyone signs in again after a restore",
    "diagnosis.incomingfile": "files being written as the snapshot was taken; their X-rays were not stored yet",
    "api.ratecount": "the API's rate counts of the current window: they start again from nothing",
}
# Models written with natural foreign keys (they refer to permissions and content types), and
# those written without their id (a group matches the one of its name that migrations made).
NATURAL_FOREIGN = {"auth.group", "auth.user", "admin.logentry"}
NATURAL_PRIMARY = {"auth.group"}
# Models that may hold rows in an installation restore accepts as empty (migration 0006 makes "Readers").
MERGED_BY_NAME = {"auth.group"}

CHUNK = 1024 * 1024


class SnapshotError(Exception):
    """A snapshot that cannot be written or restored; the message says what to do."""


class FullPrecisionEncoder(DjangoJSONEncoder):
    """Django's encoder cuts times to milliseconds; a restore must give back the same values."""

    def default(self, o):
        if hasattr(o, "isoformat") and hasattr(o, "microsecond"):
            return o.isoformat()
        return super().default(o)




def label(model):
    return model._meta.label_lower


def backed_up_models():
    """The models a snapshot holds, ordered so that what a natural key refers to comes first."""
    pairs = []
    for app_label in BACKED_UP_APPS:
        try:
            config = apps.get_app_config(app_label)
        except LookupError:  # an optional app this installation does not have
            continue
        chosen = [m for m in config.get_models() if label(m) not in NOT_BACKED_UP]
        pairs.append((config, chosen))
    return sort_dependencies(pairs)


def serialise_options(model):
    return {
        "use_natural_foreign_keys": label(model) in NATURAL_FOREIGN,
        "use_natural_primary_keys": label(model) in NATURAL_PRIMARY,
        "cls": FullPrecisionEncoder,
    }


def migration_state(connection):
    """The latest applied migration of each app: {app_label: name}."""
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    by_app = {}
    for app_label, name in loader.applied_migrations:
        by_app.setdefault(app_label, []).append((app_label, name))
    state = {}
    for app_label, nodes in sorted(by_app.items()):
        known = [node for node in nodes if node in loader.graph.nodes]
        if known:
            state[app_label] = max(known, key=lambda node: len(loader.graph.forwards_plan(node)))[1]
    return state


def newer_migrations(snapshot_state, connection):
    """What the snapshot was migrated to that this installation does not have: a list of sentences."""
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    problems = []
    for app_label, name in sorted(snapshot_state.items()):
        if (app_label, name) not in loader.disk_migrations:
            problems.append(f"{app_label} {name} is unknown to this Dispredo (a newer version made the snapshot)")
        elif (app_label, name) not in loader.applied_migrations:
            problems.append(f"{app_label} {name} is not applied to this database yet")
    return problems


def safe_relative(name):
    """``name`` as a relative path inside a snapshot, refusing anything that leaves it."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise SnapshotError(f"The manifest names a file outside the snapshot ({name!r}): the snapshot is damaged.")
    return path


def digest_file(path):
    """(size, SHA-256 hex) of the file at ``path``."""
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            sha.update(block)
            size += len(block)
    return size, sha.hexdigest()


def copy_stream(source, target_path):
    """Copy the open binary ``source`` to a new file at ``target_path`` (0600); returns (size, SHA-256)."""
    sha, size = hashlib.sha256(), 0
    target_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(target_path, "xb") as target:
        target_path.chmod(0o600)
        while block := source.read(CHUNK):
            sha.update(block)
            size += len(block)
            target.write(block)
    return size, sha.hexdigest()


def read_manifest(folder):
    """The manifest of the snapshot in ``folder``, checked for form; raises SnapshotError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SnapshotError(f"There is no snapshot folder at {folder}.")
    path = folder / MANIFEST
    if not path.is_file():
        raise SnapshotError(
            f"{path} is missing: {folder} is not a complete snapshot (a backup still being written or copied "
            "only in part). Restore from a complete one."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{path} is damaged (not valid JSON: {exc}). Restore from another snapshot.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not the manifest of a Dispredo snapshot.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise SnapshotError(
            f"The snapshot has format version {manifest.get('format_version')!r}; this Dispredo reads version "
            f"{FORMAT_VERSION}. Restore it with the Dispredo version that wrote it, or a newer one."
        )
    for key in ("created_at", "migrations", "counts", "files", "artefacts"):
        if key not in manifest:
            raise SnapshotError(f"{path} has no {key!r}: the snapshot is damaged.")
    return manifest


def verify_files(folder, manifest, progress=None):
    """Check the size and SHA-256 of every file the manifest lists, in order; raises SnapshotError
    naming the first one that is missing or differs."""
    folder = Path(folder)
    files = manifest["files"]
    if DATABASE not in {entry.get("path") for entry in files}:
        raise SnapshotError(f"The manifest does not list {DATABASE}: the snapshot is damaged.")
    for number, entry in enumerate(files, start=1):
        relative = safe_relative(entry.get("path", ""))
        path = folder / relative
        if not path.is_file():
            raise SnapshotError(
                f"{relative} is missing from the snapshot ({path}): it is incomplete. Restore from a complete one."
            )
        size, sha = digest_file(path)
        if size != entry.get("size"):
            raise SnapshotError(
                f"{relative} is {size} bytes where the manifest says {entry.get('size')}: the snapshot is "
                "truncated or damaged. Restore from another one."
            )
        if sha != entry.get("sha256"):
            raise SnapshotError(
                f"{relative} does not match its SHA-256 in the manifest: the snapshot is damaged. Restore from another one."
            )
        if progress and (number % 200 == 0 or number == len(files)):
            progress(f"Checked {number} of {len(files)} file(s).")
