"""A real server killed at each dangerous point of an upload leaves no file without a row and no row
without its file, and the X-ray is scored again: by the gunicorn master's repair while it lives, by
``manage.py repair_uploads``, and by bin/start's repair before it serves.

Each test starts gunicorn with bin/start's command line (one worker) on a free loopback port, with
a database and a media folder of its own and ``DISPREDO_CRASH_AT`` naming the point; a real X-ray
is uploaded through the API (POST /api/xrays/ with a token); the worker kills itself with SIGKILL
there (diagnosis.intake.crashpoints), so the client sees the connection drop. The invariants are
then read from that database and that folder. On the PostgreSQL run (DATABASE_URL set) each server
has a database of its own on the same cluster, made from a migrated template and dropped after.

To leave a crash unrepaired (as after the whole machine went down), the master is stopped (SIGSTOP)
before the upload and killed once the worker is dead: no master lives to run its exit hook.
"""

import hashlib
import http.client
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest

from diagnosis.intake import crashpoints
from dispredo_site.testing.helpers import REPO

START = REPO / "bin" / "start"
SECRET = "crash-tests-secret-key-0123456789-0123456789-0123456789"
UPLOADED = re.compile(r"^xrays/\d{4}/\d{2}/[0-9a-f]{32}\.png$")
BEFORE_THE_ROW = (
    crashpoints.JOURNAL_COMMITTED, crashpoints.FILE_PARTLY_WRITTEN, crashpoints.FILE_WRITTEN, crashpoints.ROW_INSERTED,
)
SCORED_AGAIN = re.compile(r"^scored again after an interrupted upload \(left scoring by (?P<by>\S+)\): done$")
TIMEOUT_S = 60

PREPARE = """
import sys
from pathlib import Path
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from api.models import ApiToken
from diagnosis.lifecycle.registry import register_model_version
from dispredo_site.testing.tiny_model import build_tiny_artefact
call_command("migrate", interactive=False, verbosity=0)
call_command("createcachetable", verbosity=0)
nurse = get_user_model().objects.create_user("nurse", password="correct horse battery", is_staff=True)
build_tiny_artefact(Path(sys.argv[1]))
register_model_version(Path(sys.argv[1]), activate=True)
print(ApiToken.issue(nurse, "crash tests")[1])
"""

CLAIM_ALL = """
import sys, time
from pathlib import Path
import django
django.setup()
from diagnosis.intake.scoring import claim
from diagnosis.records.models import XRay
pks = sorted(XRay.objects.values_list("pk", flat=True), reverse=sys.argv[2] == "down")
Path(sys.argv[1]).with_name(f"ready-{sys.argv[2]}").touch()
while not Path(sys.argv[1]).exists():
    time.sleep(0.005)
print(" ".join(str(pk) for pk in pks if claim(XRay(pk=pk)) is not None))
"""

MANY_XRAYS = """
import django
django.setup()
from diagnosis.records.models import Patient, XRay
patient = Patient.objects.create(mrn="RACE-1", name="Race")
XRay.objects.bulk_create(
    XRay(patient=patient, image=f"xrays/2026/12/{n:032x}.png", sha256="0" * 64, width=1, height=1) for n in range(300)
)
"""


@dataclass
class Clinic:
    """One installation: its data folder (media, SQLite file), its database and its processes' environment."""

    folder: Path
    env: dict
    key: str
    database_url: str = ""

    @property
    def media(self):
        return self.folder / "media"

    def rows(self, sql):
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url) as connection:
                return connection.execute(sql).fetchall()
        connection = sqlite3.connect(self.folder / "dispredo.sqlite3", timeout=20)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()

    def manage(self, *arguments):
        return subprocess.run(
            [sys.executable, "manage.py", *arguments], cwd=REPO, env=self.env, capture_output=True, text=True,
            timeout=TIMEOUT_S,
        )

    def state(self):
        """(X-ray rows: (image, status, sha256, predictions), journal rows, files under media/xrays, audit rows)."""
        xrays = self.rows(
            "SELECT image, status, sha256, (SELECT COUNT(*) FROM diagnosis_prediction p WHERE p.xray_id = x.id) "
            "FROM diagnosis_xray x ORDER BY id"
        )
        journal = self.rows("SELECT name, writer FROM diagnosis_incomingfile")
        root = self.media / "xrays"
        files = sorted(str(p.relative_to(self.media)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
        audit = self.rows("SELECT username, action, object_type, detail FROM diagnosis_auditevent ORDER BY id")
        return xrays, journal, files, audit


class Databases:
    """A fresh database per clinic: a copy of a migrated SQLite file, or (DATABASE_URL set) a PostgreSQL
    database made from a migrated template on the same cluster; all dropped at the end."""

    def __init__(self, folder):
        self.folder = folder
        self.admin_url = os.environ.get("DATABASE_URL", "")
        self.made = []
        self.template = self._new_name() if self.admin_url else ""

    def _new_name(self):
        name = f"crash_{uuid.uuid4().hex[:12]}"
        self.made.append(name)
        return name

    def _execute(self, sql):
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(sql)

    def url_of(self, name):
        return urlparse(self.admin_url)._replace(path=f"/{name}").geturl()

    def prepare_template(self, env):
        if self.template:
            self._execute(f'CREATE DATABASE "{self.template}"')
            env["DATABASE_URL"] = self.url_of(self.template)
        return env

    def copy_for(self, folder):
        """The DATABASE_URL of a new copy of the template for a clinic in ``folder`` ('' for SQLite)."""
        if not self.template:
            folder.mkdir(parents=True)
            shutil.copy(self.folder / "dispredo.sqlite3", folder / "dispredo.sqlite3")
            return ""
        name = self._new_name()
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        folder.mkdir(parents=True)
        return self.url_of(name)

    def drop_all(self):
        for name in reversed(self.made):
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def base_env(folder):
    env = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "DJANGO_SETTINGS_MODULE": "dispredo_site.settings",
        "DISPREDO_DATA_DIR": str(folder), "DISPREDO_SECRET_KEY": SECRET, "DISPREDO_INFERENCE_THREADS": "1",
    }
    return {**env, **{name: os.environ[name] for name in ("USER", "LOGNAME") if name in os.environ}}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A migrated database with a staff user, an API token and the tiny model active, made once."""
    folder = tmp_path_factory.mktemp("crash-template")
    databases = Databases(folder)
    try:
        env = databases.prepare_template(base_env(folder))
        done = subprocess.run(
            [sys.executable, "-c", PREPARE, str(folder / "tiny-model")], cwd=REPO, env=env, capture_output=True,
            text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        yield databases, done.stdout.strip().splitlines()[-1]
    finally:
        if databases.admin_url:
            databases.drop_all()


@pytest.fixture
def clinic(template, tmp_path):
    databases, key = template
    folder = tmp_path / "data"
    url = databases.copy_for(folder)
    env = base_env(folder) | ({"DATABASE_URL": url} if url else {})
    return Clinic(folder, env, key, url)


def gunicorn_argv(port):
    """bin/start's gunicorn command line (each ${VAR:-default} at its default), on ``port`` with one worker."""
    text = START.read_text()
    command = text[text.index("exec gunicorn"):].replace("\\\n", " ").splitlines()[0]
    argv = shlex.split(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", command))[2:]
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    argv[argv.index("--workers") + 1] = "1"
    return argv


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    port: int
    master: subprocess.Popen
    log: Path

    def worker_pids(self):
        return [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", self.log.read_text())]


@contextmanager
def serving(clinic, crash_at):
    """gunicorn serving ``clinic`` with ``DISPREDO_CRASH_AT=crash_at``, once /healthz answers 200."""
    port, log = free_port(), clinic.folder / "server.log"
    with log.open("w") as output:
        master = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *gunicorn_argv(port)], cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
            env={**clinic.env, crashpoints.VARIABLE: crash_at},
        )
    server = Server(port, master, log)
    try:
        until(lambda: healthy(port) or master.poll() is not None, "the server answers /healthz")
        assert master.poll() is None, log.read_text()[-3000:]
        yield server
    finally:
        if master.poll() is None:
            os.kill(master.pid, signal.SIGCONT)
            master.terminate()
        try:
            master.wait(20)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()


def healthy(port):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False


def until(condition, what, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting until {what}")
        time.sleep(0.1)


def upload(server, key, path):
    """POST ``path`` to /api/xrays/ for a new patient; the HTTP status, or None when the connection dropped."""
    boundary = uuid.uuid4().hex
    fields = [(b"new_mrn", None, b"CRASH-001"), (b"new_name", None, b"Crash Test"), (b"image", path.name.encode(), path.read_bytes())]
    body = b"".join(
        b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"" + name + b"\""
        + (b"; filename=\"" + filename + b"\"\r\nContent-Type: image/png" if filename else b"")
        + b"\r\n\r\n" + value + b"\r\n"
        for name, filename, value in fields
    ) + b"--" + boundary.encode() + b"--\r\n"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT_S)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    try:
        connection.request("POST", "/api/xrays/", body, headers)
        return connection.getresponse().status
    except (http.client.RemoteDisconnected, ConnectionError):
        return None


def crash(server, clinic, image):
    """Upload ``image``; the worker must die at its crash point without answering. Returns its pid."""
    [worker] = server.worker_pids()
    assert upload(server, clinic.key, image) is None, server.log.read_text()[-3000:]
    until(lambda: _zombie(worker), f"worker {worker} is dead")
    return worker


def _zombie(pid):
    """Whether ``pid`` is gone or dead and not yet reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in {"Z", "X"}
    except OSError:
        return True


def crash_unrepaired(clinic, point, image):
    """Kill the worker at ``point`` with its master stopped, then the master: nothing repairs."""
    with serving(clinic, point) as server:
        os.kill(server.master.pid, signal.SIGSTOP)
        worker = crash(server, clinic, image)
        server.master.kill()
        server.master.wait()
    return worker


def repaired(clinic):
    """Nothing journaled, nothing pending or scoring, and a repair in the audit trail."""
    xrays, journal, _, audit = clinic.state()
    unscored = [status for _, status, _, _ in xrays if status in ("pending", "scoring")]
    return not journal and not unscored and any(user.startswith("manage.py repair_uploads") for user, *_ in audit)


def assert_repaired(clinic, point, image, worker, repairer="manage.py repair_uploads"):
    """No file without its row, no row without its file, nothing pending or scoring, and the repair audited."""
    xrays, journal, files, audit = clinic.state()
    assert journal == []
    assert files == [name for name, _, _, _ in xrays]  # each file has its row, each row its file
    repairs = [(action, object_type, detail) for user, action, object_type, detail in audit if user.startswith(repairer + " (")]
    # The upload's own events are written in the row's transaction: there exactly when the row is.
    uploaded = [(object_type, action) for user, action, object_type, _ in audit if user == "nurse"]
    if point in BEFORE_THE_ROW:
        assert xrays == [] and clinic.rows("SELECT mrn FROM diagnosis_patient") == []
        assert uploaded == []
        [(action, object_type, detail)] = repairs
        name = detail.removeprefix("removed ").split(",")[0]
        assert (action, object_type, bool(UPLOADED.match(name))) == ("delete", "upload", True)
        assert f":{worker}:" in detail.rsplit(" ", 1)[1]  # left by the interrupted upload of host:pid:start
    else:
        [(name, status, sha256, predictions)] = xrays
        assert UPLOADED.match(name) and (status, predictions) == ("done", 14)
        assert sha256 == hashlib.sha256(image.read_bytes()).hexdigest()
        assert (clinic.media / name).read_bytes() == image.read_bytes()
        assert uploaded == [("patient", "create"), ("xray", "create")]
        [(action, object_type, detail)] = repairs
        scored = SCORED_AGAIN.match(detail)
        assert (action, object_type, bool(scored)) == ("change", "xray", True), detail
        assert f":{worker}:" in scored["by"]  # stored as claimed by the worker, named as the process that left it


@pytest.fixture
def image(sample_images):
    """A real 1024 px NIH X-ray (428 kB: several chunks, so a crash after the first leaves a partial file)."""
    return sample_images["gray_1024"]


@pytest.mark.parametrize("point", crashpoints.POINTS)
def test_a_worker_killed_at_each_point_is_repaired_while_the_master_lives(clinic, image, point):
    with serving(clinic, point) as server:
        worker = crash(server, clinic, image)
        until(lambda: f"Worker (pid:{worker}) was sent SIGKILL" in server.log.read_text(), "the master reaps the worker")
        until(lambda: repaired(clinic), "the master's repair is done")
        until(lambda: len(server.worker_pids()) == 2 and healthy(server.port), "a new worker serves")
    assert_repaired(clinic, point, image, worker)


def test_manage_py_repair_uploads_removes_a_partial_file_left_by_a_dead_server(clinic, image):
    worker = crash_unrepaired(clinic, crashpoints.FILE_PARTLY_WRITTEN, image)
    _, [(name, writer)], files, _ = clinic.state()
    assert files == [name] and 0 < (clinic.media / name).stat().st_size < image.stat().st_size
    assert f":{worker}:" in writer

    done = clinic.manage("repair_uploads", "--verbosity", "2")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"Removed the file of an upload interrupted in {writer}",
        ("Removed 1 interrupted upload file(s); scored 0 X-ray(s) again: 0 done, 0 failed, 0 pending, "
         "0 taken by a running process."),
    ]
    assert_repaired(clinic, crashpoints.FILE_PARTLY_WRITTEN, image, worker)


def test_bin_start_repairs_before_it_serves_an_xray_left_scoring(clinic, image):
    text = START.read_text()
    [line] = [line for line in text.splitlines() if line.startswith("python manage.py repair_uploads")]
    assert text.index("python manage.py setup") < text.index(line) < text.index("exec gunicorn")
    worker = crash_unrepaired(clinic, crashpoints.SCORING_CLAIMED, image)
    [(_, status, _, predictions)], _, _, _ = clinic.state()
    assert (status, predictions) == ("scoring", 0)

    env = {**clinic.env, "PATH": f"{Path(sys.executable).parent}:{clinic.env['PATH']}"}
    done = subprocess.run(["bash", "-euc", line], cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)

    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "Removed 0 interrupted upload file(s); scored 1 X-ray(s) again: 1 done, 0 failed, 0 pending, "
        "0 taken by a running process.\n"
    )
    assert_repaired(clinic, crashpoints.SCORING_CLAIMED, image, worker)


def test_two_processes_claiming_the_same_xrays_never_both_get_one(clinic, tmp_path):
    made = subprocess.run([sys.executable, "-c", MANY_XRAYS], cwd=REPO, env=clinic.env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-3000:]
    go = tmp_path / "go"
    racers = [
        subprocess.Popen([sys.executable, "-c", CLAIM_ALL, str(go), order], cwd=REPO, env=clinic.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for order in ("up", "down")
    ]
    until(lambda: all((tmp_path / f"ready-{order}").exists() for order in ("up", "down")), "both racers wait")
    go.touch()
    results = [racer.communicate(timeout=TIMEOUT_S) for racer in racers]

    assert [racer.returncode for racer in racers] == [0, 0], [err[-2000:] for _, err in results]
    up, down = ({int(pk) for pk in out.split()} for out, _ in results)
    assert up and down and not up & down  # each got some, none got one the other got
    assert up | down == {pk for (pk,) in clinic.rows("SELECT id FROM diagnosis_xray")}
    claimers = clinic.rows("SELECT scoring_by, COUNT(*) FROM diagnosis_xray GROUP BY scoring_by")
    assert sorted(count for _, count in claimers) == sorted([len(up), len(down)])
