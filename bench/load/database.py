"""The load benchmark's PostgreSQL for ``--database postgres``: the throw-away cluster bin/test uses
(``dispredo_site.testing.postgres``), started with PostgreSQL's durability settings (fsync and
synchronous commit on, as a clinic's server runs) in a temporary folder on a free 127.0.0.1 port,
and removed at the end."""

import subprocess
import tempfile

from bench._common import BenchError
from dispredo_site.testing import postgres
from dispredo_site.testing.ports import HOST, on_free_port


class Cluster:
    """``start()`` creates and starts it with one database; ``url`` is then its DATABASE_URL."""

    def __init__(self):
        try:
            postgres.check()
        except postgres.Unavailable as error:
            raise BenchError(f"PostgreSQL cannot run here: {error}") from None
        self.version = postgres.server_version()
        self.folder = None
        self.url = None

    def start(self):
        self.folder = tempfile.mkdtemp(prefix="dispredo-pg-")

        def start_on(port):
            print(f"Starting a throw-away {self.version} cluster on {HOST}:{port} ...", flush=True)
            return postgres.start(self.folder, port=port, durable=True)

        try:
            _, self.url = on_free_port(start_on, retry_on=(RuntimeError,))
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            self.folder = None  # start removed it
            raise BenchError(f"The PostgreSQL cluster did not start: {error}") from None
        return self

    def connect(self):
        import psycopg

        return psycopg.connect(self.url)

    def database(self, name):
        """The DATABASE_URL of a new, empty database ``name`` on this cluster (for --against)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name

    def stop(self):
        """Stop the server and remove its folder; safe to call twice."""
        if self.folder is not None:
            postgres.stop(self.folder)
            self.folder = None


def start_database(args):
    """The throw-away PostgreSQL cluster for ``--database postgres`` (started), else None."""
    if args.database != "postgres":
        return None
    cluster = Cluster()
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise
