"""An installation's database as table rows, for the upgrade test (``dispredo_site/tests/test_upgrade.py``).

``upgrade_f87ee09.json`` holds the rows of a database made by the code of commit f87ee09 (written
by ``upgrade_fixture.py``, which says how). Rows are dumped and compared through the models' fields
of the code at hand, and written back with plain SQL, so a row keeps its ids and values on SQLite
and on PostgreSQL. Values are JSON: datetimes and dates in ISO 8601, bytes in base64 (as Django's
own serialisers write them), JSON fields as themselves.

This module imports only the standard library and Django: the generator loads it by its path into
the old code, whose ``dispredo_site`` package does not have it.
"""

import base64
import datetime
import decimal
import json
import struct
import uuid
import zlib
from pathlib import Path

from django.utils.duration import duration_iso_string

DUMP_FILE = Path(__file__).with_name("upgrade_f87ee09.json")
# The apps whose every table is dumped: the records, the API's tokens, users and groups, sign-in
# attempts, the admin's log, and the content types that permissions and the admin's log point to.
APPS = ("contenttypes", "auth", "admin", "axes", "api", "diagnosis")


def load_dump():
    return json.loads(DUMP_FILE.read_text())


def synthetic_png(seed, size=64):
    """A ``size`` x ``size`` 8-bit grayscale PNG, the same bytes for the same ``seed`` anywhere.

    Written by hand with uncompressed deflate blocks: zlib's compressed output may differ between
    zlib builds, and the upgrade test recreates the file to match the SHA-256 stored with its X-ray."""
    state = seed * 2654435761 % 2**32 or 1
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # filter type None
        for x in range(size):
            state ^= (state << 13) & 0xFFFFFFFF  # xorshift32: noise on a bright-centred gradient
            state ^= state >> 17
            state ^= (state << 5) & 0xFFFFFFFF
            distance = abs(x - size / 2) + abs(y - size / 2)
            rows.append(max(0, min(255, int(220 - 2.5 * distance) + state % 23 - 11)))
    raw = bytes(rows)
    stored = b"\x01" + struct.pack("<HH", len(raw), len(raw) ^ 0xFFFF) + raw  # one final stored block
    deflate = b"\x78\x01" + stored + struct.pack(">I", zlib.adler32(raw))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", deflate) + chunk(b"IEND", b"")


def jsonable(value):
    """A column's Python value (as a model field gives it) as JSON; ``Field.to_python`` reads it back."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return duration_iso_string(value)
    if isinstance(value, (bytes, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return value


def models_by_table(apps, labels=APPS):
    """``{table: model}`` of the apps ``labels`` in the app registry ``apps`` (many-to-many tables included)."""
    found = {}
    for label in labels:
        for model in apps.get_app_config(label).get_models(include_auto_created=True):
            if model._meta.managed and not model._meta.proxy:
                found[model._meta.db_table] = model
    return found


def fields_by_column(model):
    return {field.column: field for field in model._meta.concrete_fields}


def in_insert_order(models):
    """``models`` ordered so that every model comes after those its foreign keys point to."""
    ordered, placed = [], set()

    def place(model, path=()):
        if model in placed:
            return
        if model in path:
            raise ValueError(f"Foreign keys form a cycle through {model._meta.db_table}; dump it by hand.")
        for field in model._meta.concrete_fields:
            target = field.related_model if field.is_relation else None
            if target is not None and target in models and target is not model:
                place(target, (*path, model))
        placed.add(model)
        ordered.append(model)

    for model in sorted(models, key=lambda m: m._meta.db_table):
        place(model)
    return ordered


def rows_of(model, using="default"):
    """Every row of ``model``'s table by primary key, as ``{column: JSON value}``."""
    fields = list(model._meta.concrete_fields)
    values = model._base_manager.using(using).order_by("pk").values_list(*[field.attname for field in fields])
    return [{field.column: jsonable(value) for field, value in zip(fields, row)} for row in values]


def dump_tables(apps, labels=APPS, using="default"):
    """``[{"table": name, "rows": [...]}, ...]`` of every table of the apps ``labels``, parents first."""
    models = models_by_table(apps, labels)
    return [
        {"table": model._meta.db_table, "rows": rows_of(model, using)}
        for model in in_insert_order(set(models.values()))
    ]


def write_tables(connection, apps, tables):
    """Replace the rows of ``tables`` (a dump, parents first) in the database of ``connection``:
    empty each table, insert the dumped rows with plain SQL, ids kept, then set each id sequence
    after the highest id (PostgreSQL). ``apps`` (the models at the dump's migration state) says each
    column's type, so a value is written as that engine stores it. In one transaction."""
    from django.core.management.color import no_style
    from django.db import transaction

    models = models_by_table(apps)
    quote = connection.ops.quote_name
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        for entry in reversed(tables):  # children first
            cursor.execute(f"DELETE FROM {quote(entry['table'])}")
        for entry in tables:
            if not entry["rows"]:
                continue
            fields = fields_by_column(models[entry["table"]])
            columns = list(entry["rows"][0])
            sql = (
                f"INSERT INTO {quote(entry['table'])} ({', '.join(quote(column) for column in columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))})"
            )
            cursor.executemany(
                sql,
                [
                    [fields[column].get_db_prep_save(fields[column].to_python(row[column]), connection) for column in columns]
                    for row in entry["rows"]
                ],
            )
        for statement in connection.ops.sequence_reset_sql(no_style(), [models[entry["table"]] for entry in tables]):
            cursor.execute(statement)
