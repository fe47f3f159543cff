"""The load benchmark's check of what was stored: every accepted upload has its row, its file with the
uploaded bytes and 14 predictions; nothing was stored twice or without an accepted upload."""

import collections
import hashlib
import sqlite3
from pathlib import Path

from bench.load.uploads import FINDINGS_COUNT


def _stored_rows(data_dir, database_url):
    """(X-ray rows {id: {image, sha256, status}}, {xray id: (predictions, distinct findings)})."""
    if database_url is not None:
        import psycopg

        db = psycopg.connect(database_url)
    else:
        db = sqlite3.connect(f"file:{Path(data_dir) / 'dispredo.sqlite3'}?mode=ro", uri=True)
    try:
        rows = {
            pk: {"image": image, "sha256": sha, "status": status}
            for pk, image, sha, status in db.execute("SELECT id, image, sha256, status FROM diagnosis_xray").fetchall()
        }
        predictions = {
            pk: (count, distinct)
            for pk, count, distinct in db.execute(
                "SELECT xray_id, COUNT(*), COUNT(DISTINCT finding) FROM diagnosis_prediction GROUP BY xray_id"
            ).fetchall()
        }
    finally:
        db.close()
    return rows, predictions


def check_database(data_dir, accepted, database_url=None, requests_failed=False):
    """Every accepted upload stored once, with its file and 14 predictions, and rows = files = accepted
    (unless ``requests_failed``: a request may fail after storing). Returns (ok, lines, figures)."""
    media = Path(data_dir) / "media"
    rows, predictions = _stored_rows(data_dir, database_url)

    problems = collections.Counter()
    examples = {}

    def problem(kind, detail):
        problems[kind] += 1
        examples.setdefault(kind, detail)

    ids = collections.Counter(r["xray_id"] for r in accepted)
    for pk, times in ids.items():
        if times > 1:
            problem("one id redirected to for several uploads", f"/xrays/{pk}/ {times} times")
    for upload in accepted:
        pk = upload["xray_id"]
        row = rows.get(pk)
        if row is None:
            problem("accepted upload without its row", f"X-ray {pk}")
            continue
        if row["sha256"] != upload["sha256"]:
            problem("row holds another file's SHA-256", f"X-ray {pk}")
        path = media / row["image"]
        if not path.is_file():
            problem("row without its file on disk", f"X-ray {pk}: {path}")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != upload["sha256"]:
            problem("file on disk differs from the upload", f"X-ray {pk}: {path}")
        count, distinct = predictions.get(pk, (0, 0))
        if count != FINDINGS_COUNT or distinct != FINDINGS_COUNT:
            problem(f"not exactly {FINDINGS_COUNT} predictions", f"X-ray {pk}: {count} rows, {distinct} findings")
        if row["status"] != "done":
            problem("status is not done", f"X-ray {pk}: {row['status']}")

    unacknowledged = sorted(set(rows) - set(ids))
    stored_files = {str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()} if media.is_dir() else set()
    orphans = sorted(stored_files - {r["image"] for r in rows.values()})
    equal = len(ids) == len(rows) == len(stored_files)
    if not equal and not requests_failed:
        problem("rows, files and accepted uploads differ with no request failed", f"{len(unacknowledged)} rows, "
                f"{len(orphans)} files without an accepted upload")

    ok = not problems
    lines = [
        f"Database check: {len(ids)} accepted uploads, {len(rows)} X-ray rows, "
        f"{sum(c for c, _ in predictions.values())} predictions, {len(stored_files)} files on disk: "
        + ("PASS (none lost, none duplicated)" if ok else "FAIL"),
        f"  rows = files = accepted uploads: {len(rows)} = {len(stored_files)} = {len(ids)}: {'yes' if equal else 'NO'}",
    ]
    for kind, count in problems.items():
        lines.append(f"  FAIL {kind}: {count} (e.g. {examples[kind]})")
    if unacknowledged:
        statuses = collections.Counter(rows[pk]["status"] for pk in unacknowledged)
        lines.append(
            f"  note: {len(unacknowledged)} rows stored without a redirect reaching a client "
            f"(requests that failed after storing), statuses {dict(statuses)}: ids {unacknowledged[:10]}"
        )
    if orphans:
        lines.append(f"  note: {len(orphans)} files on disk without a row, e.g. {orphans[:3]}")
    figures = {
        "pass": ok,
        "accepted": len(ids),
        "rows": len(rows),
        "files": len(stored_files),
        "rows_equal_files_equal_accepted": equal,
        "problems": dict(problems),
        "examples": examples,
        "unacknowledged_rows": unacknowledged,
        "orphan_files": orphans,
    }
    return ok, lines, figures
