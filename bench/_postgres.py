"""A throw-away PostgreSQL cluster for a benchmark: initdb and pg_ctl in a temporary folder, listening
on a free 127.0.0.1 port only, trust authentication (nothing else can reach it), removed by ``stop()``.

Uses Debian's server binaries (``/usr/lib/postgresql/<version>/bin``) or those on PATH. initdb refuses
to run as root, so as root the cluster is run as the ``postgres`` system user (runuser).
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from _common import BenchError

HOST = "127.0.0.1"
SUPERUSER = "postgres"


def server_binaries():
    """The folder holding initdb, pg_ctl and postgres, newest version first."""
    on_path = shutil.which("initdb")
    candidates = ([str(Path(on_path).resolve().parent)] if on_path else []) + sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for folder in candidates:
        if all((Path(folder) / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    raise BenchError(
        "PostgreSQL's server programs (initdb, pg_ctl) were not found: install Debian's postgresql package "
        "(apt-get install postgresql) or put them on PATH."
    )


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Cluster:
    """``start()`` creates and starts it with one database; ``url`` is its DATABASE_URL."""

    def __init__(self, database="dispredo"):
        self.bin = server_binaries()
        self.database = database
        self.port = _free_port()
        self.folder = None
        self.as_user = []
        if os.geteuid() == 0:
            try:
                self.owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise BenchError("Running as root needs a 'postgres' system user to run PostgreSQL as.") from None
            self.as_user = ["runuser", "-u", SUPERUSER, "--"]

    @property
    def url(self):
        return f"postgres://{SUPERUSER}@{HOST}:{self.port}/{self.database}"

    @property
    def version(self):
        done = subprocess.run([str(self.bin / "postgres"), "--version"], capture_output=True, text=True)
        return done.stdout.strip().replace("postgres (PostgreSQL)", "PostgreSQL")

    def _run(self, *command, timeout=120):
        done = subprocess.run([*self.as_user, *command], capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise BenchError(f"{Path(command[0]).name} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self):
        self.folder = Path(tempfile.mkdtemp(prefix="dispredo-pg-"))
        if self.as_user:
            os.chown(self.folder, self.owner.pw_uid, self.owner.pw_gid)
        data = self.folder / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale")
        options = f"-c listen_addresses={HOST} -p {self.port} -k {self.folder} -c max_connections=200"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.folder / "server.log"), "-o", options, "-w", "start"
        )
        self._create_database()
        return self

    def _create_database(self):
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(host=HOST, port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True) as db:
                    db.execute(f'CREATE DATABASE "{self.database}"')
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def connect(self):
        import psycopg

        return psycopg.connect(host=HOST, port=self.port, user=SUPERUSER, dbname=self.database)

    def stop(self):
        """Stop the server (fast shutdown) and remove the folder; safe to call twice."""
        if self.folder is None:
            return
        data = self.folder / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None
