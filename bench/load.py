"""Load benchmark: the whole application under gunicorn, with concurrent signed-in clients uploading X-rays.

    .venv/bin/python bench/load.py                          # 8, then 32 clients, 20 s each
    .venv/bin/python bench/load.py --clients 2 4 --seconds 5
    .venv/bin/python bench/load.py --workers 4 --threads 2 --json out.json
    .venv/bin/python bench/load.py --database postgres --servers 2   # two servers, one PostgreSQL

What it does:

1. Makes a fresh data directory (SQLite database, uploads) in a temporary folder and runs
   ``manage.py setup`` there with ``DISPREDO_ADMIN_PASSWORD`` set, so a known staff account exists.
   With ``--database postgres`` the database is instead a throw-away PostgreSQL cluster
   (bench/_postgres.py: initdb and pg_ctl in a temporary folder, on a free 127.0.0.1 port).
   The shipped model in models/default registers itself; without one a tiny test model is
   registered instead (and the output says so), or the artefact given with ``--artefact``.
2. Starts ``--servers`` gunicorn instances (default 1) on 127.0.0.1, each on a free port (default
   2 workers x 4 threads, as bin/start), all on the same database and the same upload folder.
3. Signs in one session per client (GET the login page, POST it with its CSRF token) and
   registers a patient (POST /patients/new/). With several servers, client i signs in on server
   i and sends its k-th upload to server i + k, and loads the result page (and, with
   ``--fetch-images``, the image) from the next one: every request after the first depends on a
   session and files another server wrote.
4. For each client count: that many threads, each with its own session, upload real NIH X-rays
   (64, 256 and 1024 px in turn) to /upload/ and load the result page they are redirected to,
   for ``--seconds`` or ``--max-uploads``, whichever comes first. Prints uploads/s, latency
   percentiles (from sending the upload to the result page loaded) and errors.
5. Reads the memory of the gunicorn workers, stops gunicorn (SIGTERM, then waits), and checks
   the database: every accepted upload (each redirect to /xrays/<id>/) has its row with the
   uploaded file's SHA-256, its file on disk with that content, status done and exactly 14
   predictions, one per finding; no id was given to two uploads; rows = files = accepted uploads.
   Server-side tracebacks are printed.

Exit status: 0 when all is well, 1 when the database check fails (or the server could not be
run), 2 when the check passes but some requests failed (rows or files without an accepted upload
are then only noted: a request can fail after storing).

Only 127.0.0.1 is ever contacted. Nothing is written into the repository; ``--keep`` keeps the
temporary folder (database, uploads, server log) for inspection.

This file is also gunicorn's config file for the run (``--config bench/load.py``): gunicorn reads
its ``post_worker_init`` hook, which sends Django's request errors (500s) with their tracebacks
to the server log, where the settings (DEBUG off) would otherwise drop them.
"""

import argparse
import collections
import hashlib
import http.client
import http.cookiejar
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    PYTHON,
    REPO,
    SAMPLE_SIZES,
    BenchError,
    banner,
    child_pids,
    django_env,
    machine,
    machine_line,
    memory_mb,
    sample_files,
    summary_ms,
    table,
)

HOST = "127.0.0.1"  # the only address this benchmark ever talks to
USERNAME = "bench"
XRAY_LOCATION = re.compile(r"^/xrays/(\d+)/$")
CSRF_INPUT = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
ACCESS_LINE = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d+) \S+ (\d+)$')
NUMBER_IN_PATH = re.compile(r"/\d+/")
FINDINGS_COUNT = 14
REQUEST_TIMEOUT_S = 120

REGISTER_ARTEFACT = """
import sys
from pathlib import Path
import django
django.setup()
from diagnosis.lifecycle.registry import register_model_version
directory = Path(sys.argv[1])
if sys.argv[2] == "tiny":
    from dispredo_site.testing.tiny_model import build_tiny_artefact
    build_tiny_artefact(directory, name="tiny-test-model")
version = register_model_version(directory, activate=True)
print(version.name)
"""


# --- gunicorn hook (this file is the server's config file) ---------------------------------------


def post_worker_init(worker):
    """Log Django's request errors, with tracebacks, to stderr (the server log)."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.ERROR)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("django.request").addHandler(handler)


# --- arguments -------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="bench/load.py",
        description="Run Dispredo under gunicorn on 127.0.0.1 with a fresh database and drive concurrent "
        "signed-in clients uploading real X-rays; print throughput, latency and errors, then check "
        "the database lost and duplicated nothing.",
    )
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=[8, 32],
        metavar="N",
        help="concurrent clients, one level after another (default: 8 32)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each level (default 20)")
    parser.add_argument(
        "--max-uploads", type=int, default=2000, help="at most this many uploads per level (default 2000)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "2")),
        help="gunicorn workers (default WEB_CONCURRENCY or 2, as bin/start)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("DISPREDO_THREADS", "4")),
        help="gunicorn threads per worker (default DISPREDO_THREADS or 4, as bin/start)",
    )
    parser.add_argument(
        "--inference-threads",
        type=int,
        default=None,
        help="DISPREDO_INFERENCE_THREADS for the workers (default: the app's, 2)",
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(SAMPLE_SIZES),
        choices=SAMPLE_SIZES,
        metavar="PX",
        help="source sizes of the uploaded NIH images, used in turn (default: 64 256 1024)",
    )
    parser.add_argument("--images", type=int, default=16, help="distinct images per size (default 16)")
    parser.add_argument(
        "--artefact",
        metavar="DIR",
        help="register and activate this model artefact (default: the shipped models/default, "
        "else the tiny test model)",
    )
    parser.add_argument("--port", type=int, default=0, help="the first server's port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="sqlite (default: a file in the data folder) or postgres (a throw-away cluster on a free port)",
    )
    parser.add_argument(
        "--servers", type=int, default=1, help="gunicorn instances sharing the database and upload folder (default 1)"
    )
    parser.add_argument(
        "--fetch-images",
        action="store_true",
        help="after each result page, also GET the image (from the server that showed the page) and compare "
        "it with the upload; not timed",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder and server log")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.clients):
        parser.error("--clients must be at least 1")
    for name in ("workers", "threads", "max_uploads", "images", "servers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.inference_threads is not None and args.inference_threads < 1:
        parser.error("--inference-threads must be at least 1")
    return args


# --- HTTP client (standard library only) ----------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand redirects back to the caller, which needs the Location of the upload's redirect."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Client:
    """One browser-like user: its own cookies (session, CSRF), talking only to 127.0.0.1.

    With several servers (``ports``) it sends each request to the one it is told (``server``: an index,
    default its ``home``); cookies ignore the port, so one session serves them all, as behind a load
    balancer."""

    def __init__(self, ports, home=0):
        ports = [ports] if isinstance(ports, int) else list(ports)
        self.bases = [f"http://{HOST}:{port}" for port in ports]
        self.home = home % len(self.bases)
        self.sent = 0  # uploads sent so far, to spread the next ones over the servers
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def request(self, method, path, body=None, content_type=None, server=None):
        """(status, headers, body bytes); HTTP errors and redirects are returned, not raised."""
        headers = {"Content-Type": content_type} if content_type else {}
        base = self.bases[self.home if server is None else server % len(self.bases)]
        req = urllib.request.Request(base + path, data=body, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=REQUEST_TIMEOUT_S) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.headers, exc.read()

    def csrf_token(self):
        for cookie in self.jar:
            if cookie.name == "csrftoken":
                return cookie.value
        raise BenchError("No CSRF cookie: the server did not set csrftoken.")

    def form_token(self, path):
        status, _, body = self.request("GET", path)
        match = CSRF_INPUT.search(body)
        if status != 200 or not match:
            raise BenchError(f"GET {path} gave {status} without a CSRF token in the form.")
        return match.group(1).decode()

    def sign_in(self, username, password):
        token = self.form_token("/accounts/login/")
        body = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/"}
        ).encode()
        status, headers, _ = self.request("POST", "/accounts/login/", body, "application/x-www-form-urlencoded")
        if status != 302 or "/accounts/login/" in (headers.get("Location") or ""):
            raise BenchError(f"Signing in as {username} failed (HTTP {status}).")

    def post_form(self, path, fields):
        fields = {"csrfmiddlewaretoken": self.csrf_token(), **fields}
        body = urllib.parse.urlencode(fields).encode()
        return self.request("POST", path, body, "application/x-www-form-urlencoded")


def multipart(fields, files):
    """A multipart/form-data body: (bytes, content type). ``files``: {name: (filename, bytes, type)}."""
    boundary = f"----dispredo-bench-{uuid.uuid4().hex}"
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data, content_type) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --- one upload -------------------------------------------------------------------------------------


def upload_once(client, patient_id, sample, fetch_image=False, server=None):
    """Upload ``sample`` and load its result page; a result dict (ok, seconds, xray_id or error).

    The upload goes to ``server`` (default: the client's next one in turn), the result page and
    image to the server after it; with one server that is the same one."""
    if server is None:
        server = client.home + client.sent
    client.sent += 1
    upload_server, page_server = server % len(client.bases), (server + 1) % len(client.bases)
    body, content_type = multipart(
        {"csrfmiddlewaretoken": client.csrf_token(), "patient": patient_id, "view_position": "", "clinical_note": ""},
        {"image": (sample["name"], sample["data"], "image/png")},
    )
    result = {"size": sample["size"], "sha256": sample["sha256"], "ok": False, "server": upload_server}
    started = time.perf_counter()
    try:
        status, headers, page = client.request("POST", "/upload/", body, content_type, server=upload_server)
        location = urllib.parse.urlsplit(headers.get("Location") or "").path
        match = XRAY_LOCATION.match(location) if status == 302 else None
        if not match:
            result["error"] = f"upload: HTTP {status}" + (f" to {location}" if location else "")
            if status == 200:
                result["error"] += " (form refused)"
            return result
        # The server has accepted and stored the X-ray: the database check expects it from here on.
        result["xray_id"] = int(match.group(1))
        status, _, page = client.request("GET", location, server=page_server)
        result["seconds"] = time.perf_counter() - started
        rows = page.count(b'data-finding="')
        if status != 200:
            result["error"] = f"result page: HTTP {status}"
        elif rows != FINDINGS_COUNT:
            result["error"] = f"result page shows {rows} findings, not {FINDINGS_COUNT}"
        else:
            result["ok"] = True
        if result["ok"] and fetch_image:
            status, _, image = client.request("GET", f"{location}image/", server=page_server)
            if status != 200:
                result.update(ok=False, error=f"image: HTTP {status}")
            elif hashlib.sha256(image).hexdigest() != sample["sha256"]:
                result.update(ok=False, error="image served differs from the upload")
            else:
                result["image_checked"] = True
    except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    result.setdefault("seconds", time.perf_counter() - started)
    return result


def run_level(clients, patient_id, samples, seconds, max_uploads, offset, fetch_images=False):
    """Each client in its own thread uploads until the time or the count runs out; (results, wall s)."""
    lock = threading.Lock()
    taken = [0]
    results = []
    deadline = time.monotonic() + seconds

    def take():
        with lock:
            if taken[0] >= max_uploads or time.monotonic() >= deadline:
                return None
            taken[0] += 1
            return samples[(offset + taken[0]) % len(samples)]

    def work(client):
        while (sample := take()) is not None:
            result = upload_once(client, patient_id, sample, fetch_images)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
    started, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - started, time.process_time() - cpu


def level_figures(clients, results, wall, client_cpu):
    ok = [r for r in results if r["ok"]]
    errors = collections.Counter(r["error"] for r in results if not r["ok"])
    figures = {
        "clients": clients,
        "uploads": len(results),
        "ok": len(ok),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common()),
        "wall_s": round(wall, 2),
        # CPU this script used to drive the level: it shares the machine with the server.
        "client_cpu_s": round(client_cpu, 2),
        "uploads_per_s": round(len(ok) / wall, 2) if wall else None,
        "latency": summary_ms([r["seconds"] for r in ok]),
        "latency_by_size": {},
        # Accepted uploads by the server that took them (index from 0).
        "accepted_by_server": dict(sorted(collections.Counter(r["server"] for r in results if "xray_id" in r).items())),
        "images_checked": sum(1 for r in results if r.get("image_checked")),
    }
    for size in sorted({r["size"] for r in ok}):
        figures["latency_by_size"][str(size)] = summary_ms([r["seconds"] for r in ok if r["size"] == size])
    return figures


# --- the server -------------------------------------------------------------------------------------


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn serving the app from ``data_dir``; stopped cleanly by ``stop()``. ``number`` (from 1)
    names its logs when there are several (server-2.log, access-2.log)."""

    def __init__(self, args, env, data_dir, number=1, port=0):
        self.number = number
        self.port = port or free_port()
        suffix = "" if args.servers == 1 else f"-{number}"
        self.log_path = Path(data_dir) / f"server{suffix}.log"
        self.command = [
            PYTHON,
            "-m",
            "gunicorn",
            "dispredo_site.wsgi",
            "--config",
            str(Path(__file__).resolve()),
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(args.workers),
            "--threads",
            str(args.threads),
            "--timeout",
            "60",
            "--graceful-timeout",
            "30",
            "--access-logfile",
            str(Path(data_dir) / f"access{suffix}.log"),
            # The request's time in the worker (ms), to tell server time from queueing.
            "--access-logformat",
            '%(t)s "%(r)s" %(s)s %(b)s %(M)s',
            "--error-logfile",
            "-",
            # gunicorn 25+ otherwise opens ~/.gunicorn/gunicorn.ctl, shared by every gunicorn of the user.
            "--no-control-socket",
        ]
        self.access_log = Path(data_dir) / f"access{suffix}.log"
        # gunicorn's process title, so that two servers' processes can be told apart in ps.
        self.command += ["--name", f"dispredo-bench-{number}"]
        self.env = env
        self.process = None

    def start(self, ready_timeout=120):
        log = open(self.log_path, "ab")
        # Its own session: Ctrl+C reaches this script only, which then stops the server in order.
        self.process = subprocess.Popen(
            self.command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        probe = Client(self.port)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, _, _ = probe.request("GET", "/accounts/login/")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise BenchError(f"gunicorn did not answer within {ready_timeout} s:\n{self.log_tail()}")

    def worker_memory(self):
        if self.process is None or self.process.poll() is not None:
            return {}
        memory = {"master": memory_mb(self.process.pid)}
        for n, pid in enumerate(child_pids(self.process.pid)):
            memory[f"worker {n + 1} (pid {pid})"] = memory_mb(pid)
        return memory

    def stop(self, timeout=40):
        """SIGTERM (gunicorn's graceful shutdown), then SIGKILL if it hangs; returns its exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return "killed after SIGTERM timed out"

    def access_offset(self):
        try:
            return self.access_log.stat().st_size
        except OSError:
            return 0

    def request_times(self, start, end, times):
        """Add the time spent in the workers (s) by request kind, from the access log between two
        offsets, to ``times`` ({kind: [seconds]})."""
        try:
            with open(self.access_log, "rb") as handle:
                handle.seek(start)
                text = handle.read(end - start).decode(errors="replace")
        except OSError:
            return times
        for line in text.splitlines():
            match = ACCESS_LINE.search(line)
            if match:
                method, path, status, ms = match.groups()
                kind = f"{method} {NUMBER_IN_PATH.sub('/<id>/', path)} {status}"
                times[kind].append(int(ms) / 1000.0)
        return times

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def tracebacks(self):
        """Tracebacks and error lines of the server log, grouped: {first line + last line: (count, text)}."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return {}
        found = collections.OrderedDict()
        blocks = re.split(r"\n(?=\S*\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d|\[\d{4}-\d\d-\d\d )", "\n" + text)
        for block in blocks:
            block = block.strip()
            if "Traceback" not in block and " ERROR " not in block and "[ERROR]" not in block:
                continue
            lines = block.splitlines()
            # Group by the error line (the traceback's last line) and the logger message, not the time.
            head = NUMBER_IN_PATH.sub("/<id>/", re.sub(r"^\S+ \S+ \[\d+\] |^\[[^]]*\] \[\d+\] ", "", lines[0]))
            key = f"{head} | {lines[-1]}"
            count, first = found.get(key, (0, block))
            found[key] = (count + 1, first)
        return found


# --- setup and the database check --------------------------------------------------------------------


def prepare(args, data_dir, password, database_url=None):
    """A fresh database (SQLite in ``data_dir``, or ``database_url``) with the staff account and an
    active model; returns (env, model description)."""
    extra = {
        "DISPREDO_SECRET_KEY": secrets.token_urlsafe(50),
        "DISPREDO_ALLOWED_HOSTS": f"{HOST},localhost",
        "DISPREDO_SECURE_COOKIES": "false",
        "DISPREDO_BEHIND_PROXY": "false",
        "DISPREDO_DEBUG": "false",
    }
    if args.inference_threads:
        extra["DISPREDO_INFERENCE_THREADS"] = args.inference_threads
    if database_url:
        extra["DATABASE_URL"] = database_url
    env = django_env(data_dir, **extra)
    # DISPREDO_STORAGE too: the files go to the data folder's media, where the check reads them.
    for name in ("DISPREDO_ADMIN_USERNAME", "DISPREDO_ADMIN_PASSWORD", "DISPREDO_BIND", "DISPREDO_STORAGE"):
        env.pop(name, None)
    setup_env = dict(env, DISPREDO_ADMIN_USERNAME=USERNAME, DISPREDO_ADMIN_PASSWORD=password)
    done = subprocess.run(
        [PYTHON, "manage.py", "setup"], cwd=REPO, env=setup_env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise BenchError(f"manage.py setup failed:\n{done.stdout}\n{done.stderr}")
    default_model = "Default model" in done.stdout
    model = None
    if args.artefact or not default_model:
        kind = "artefact" if args.artefact else "tiny"
        directory = Path(args.artefact).resolve() if args.artefact else Path(data_dir) / "tiny-test-model"
        done = subprocess.run(
            [PYTHON, "-c", REGISTER_ARTEFACT, str(directory), kind],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise BenchError(f"Registering the model failed:\n{done.stderr[-3000:]}")
        model = done.stdout.strip().splitlines()[-1]
        if kind == "tiny":
            print(
                banner(
                    "models/default does not exist: the server scores with the TINY TEST MODEL\n"
                    "(dispredo_site.testing.tiny_model). Requests spend a little less time in the model than\n"
                    "with a trained MobileNet (about 1-2 ms of CPU); everything else is the real app."
                ),
                flush=True,
            )
            model += " (tiny test model)"
    else:
        model = re.search(r"Default model (.*?):", done.stdout).group(1) + " (models/default)"
    return env, model


def _stored_rows(data_dir, cluster):
    """(X-ray rows {id: {image, sha256, status}}, {xray id: (predictions, distinct findings)})."""
    if cluster is not None:
        db = cluster.connect()
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


def check_database(data_dir, accepted, cluster=None, requests_failed=False):
    """Every accepted upload stored once, with its file and 14 predictions, and rows = files = accepted
    (unless ``requests_failed``: a request may fail after storing). Returns (ok, lines, figures)."""
    media = Path(data_dir) / "media"
    rows, predictions = _stored_rows(data_dir, cluster)

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


# --- main --------------------------------------------------------------------------------------------


def load_samples(args):
    files = sample_files(args.images, tuple(sorted(set(args.sizes))))
    by_size = {
        size: [
            {"size": size, "name": p.name, "data": (data := p.read_bytes()), "sha256": hashlib.sha256(data).hexdigest()}
            for p in paths
        ]
        for size, paths in files.items()
    }
    # Sizes in turn: 64, 256, 1024, 64, 256, 1024, ... (each size's images in order).
    longest = max(len(v) for v in by_size.values())
    return [by_size[s][i % len(by_size[s])] for i in range(longest) for s in args.sizes]


def sign_in_all(ports, count, password):
    """``count`` signed-in clients; client i's home (where it signs in) is server i."""
    clients = [Client(ports, home=i) for i in range(count)]
    errors = []

    def sign_in(client):
        try:
            client.sign_in(USERNAME, password)
        except (BenchError, OSError) as exc:
            errors.append(str(exc))

    # A few at a time: each sign-in hashes the password (PBKDF2), about half a second of CPU.
    for start in range(0, count, 4):
        threads = [threading.Thread(target=sign_in, args=(c,)) for c in clients[start : start + 4]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise BenchError(f"{len(errors)} of {count} clients could not sign in: {errors[0]}")
    return clients


def create_patient(client):
    client.form_token("/patients/new/")  # as a browser: the form first (sets the CSRF cookie)
    mrn = f"BENCH-{secrets.token_hex(4).upper()}"
    status, headers, _ = client.post_form(
        "/patients/new/", {"mrn": mrn, "name": "Load Benchmark", "sex": "U", "date_of_birth": "", "notes": ""}
    )
    match = re.match(r"^/patients/(\d+)/$", urllib.parse.urlsplit(headers.get("Location") or "").path)
    if status != 302 or not match:
        raise BenchError(f"Creating a patient failed (HTTP {status}).")
    return int(match.group(1))


def _ms(value):
    return "-" if value is None else f"{value:.0f}"


def print_levels(levels):
    rows = []
    for f in levels:
        lat = f["latency"]
        rows.append(
            [
                f["clients"],
                f["uploads"],
                f["ok"],
                f["errors"],
                f["wall_s"],
                f["uploads_per_s"],
                _ms(lat.get("median_ms")),
                _ms(lat.get("p95_ms")),
                _ms(lat.get("p99_ms")),
                _ms(lat.get("max_ms")),
            ]
        )
    print(table(rows, ["clients", "uploads", "ok", "errors", "s", "uploads/s", "p50 ms", "p95 ms", "p99 ms", "max ms"]))
    size_rows = []
    for f in levels:
        for size, lat in f["latency_by_size"].items():
            size_rows.append([f["clients"], f"{size} px", lat["n"], _ms(lat["median_ms"]), _ms(lat["p95_ms"])])
    if size_rows:
        print()
        print(table(size_rows, ["clients", "source", "ok", "p50 ms", "p95 ms"]))
    server_rows = [
        [f["clients"], kind, t["n"], _ms(t["median_ms"]), _ms(t["p95_ms"])]
        for f in levels
        for kind, t in f.get("server_ms", {}).items()
    ]
    if server_rows:
        print()
        print(table(server_rows, ["clients", "time in the worker (access log)", "n", "p50 ms", "p95 ms"]))
    print()
    for f in levels:
        share = f["client_cpu_s"] / f["wall_s"] * 100 if f["wall_s"] else 0
        print(
            f"{f['clients']} clients: this script used {f['client_cpu_s']} s of CPU in {f['wall_s']} s "
            f"({share:.0f}% of one core), taken from the server on the same machine"
        )
    for f in levels:
        for kind, count in f["error_kinds"].items():
            print(f"  {f['clients']} clients: {count} x {kind}")


def start_database(args):
    """The throw-away PostgreSQL cluster for ``--database postgres`` (started), else None."""
    if args.database != "postgres":
        return None
    from _postgres import Cluster

    cluster = Cluster()
    print(f"Starting a throw-away {cluster.version} cluster on {HOST}:{cluster.port} ...", flush=True)
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise


def print_servers(levels):
    for f in levels:
        spread = ", ".join(f"server {i + 1}: {n}" for i, n in f["accepted_by_server"].items())
        checked = f"; images served back and identical: {f['images_checked']}" if f["images_checked"] else ""
        print(f"{f['clients']} clients: accepted uploads by server: {spread}{checked}")


def run(args):
    info = machine()
    print(machine_line(info), flush=True)
    samples = load_samples(args)
    data_dir = tempfile.mkdtemp(prefix="dispredo-load-")
    password = secrets.token_urlsafe(16)
    servers, cluster = [], None
    figures = {"machine_at_start": info, "args": vars(args), "data_dir": data_dir}
    exit_status = 0
    try:
        cluster = start_database(args)
        figures["database"] = cluster.version if cluster else "SQLite (WAL), file in the data folder"
        print(f"Fresh data directory {data_dir}: manage.py setup ...", flush=True)
        env, model = prepare(args, data_dir, password, cluster.url if cluster else None)
        figures["model"] = model
        servers = [
            Server(args, env, data_dir, number, args.port if number == 1 else 0) for number in range(1, args.servers + 1)
        ]
        for server in servers:
            print(
                f"Starting gunicorn {server.number} on http://{HOST}:{server.port}/ ({args.workers} workers x "
                f"{args.threads} threads), model {model} ...",
                flush=True,
            )
            server.start()
        count = max(args.clients)
        print(f"Signing in {count} clients (one session each) ...", flush=True)
        clients = sign_in_all([server.port for server in servers], count, password)
        patient_id = create_patient(clients[0])
        # Untimed uploads first: each worker of each server loads the model on its first request. They
        # are accepted uploads like any other, so the database check covers them too.
        warmup = [
            upload_once(client, patient_id, samples[0], args.fetch_images, server=number)
            for number in range(len(servers))
            for client in clients[: args.workers * 2]
        ]
        levels, accepted, offset = [], [r for r in warmup if "xray_id" in r], 0
        failed = sum(1 for r in warmup if not r["ok"])
        for n in args.clients:
            print(f"{n} clients for {args.seconds:g} s (at most {args.max_uploads} uploads) ...", flush=True)
            log_starts = [server.access_offset() for server in servers]
            results, wall, cpu = run_level(
                clients[:n], patient_id, samples, args.seconds, args.max_uploads, offset, args.fetch_images
            )
            offset += len(results)
            accepted += [r for r in results if "xray_id" in r]
            levels.append(level_figures(n, results, wall, cpu))
            times = collections.defaultdict(list)
            for server, start in zip(servers, log_starts):
                server.request_times(start, server.access_offset(), times)
            levels[-1]["server_ms"] = {kind: summary_ms(values) for kind, values in sorted(times.items())}
        figures["levels"] = levels
        figures["server_memory_mb"] = {}
        for server in servers:
            prefix = f"server {server.number} " if len(servers) > 1 else ""
            figures["server_memory_mb"].update(
                {prefix + name: m for name, m in server.worker_memory().items()}
            )
        figures["server_exit"] = [server.stop() for server in servers]
        print()
        print(
            f"Model: {model}; database: {figures['database']}; {len(servers)} server(s) of gunicorn "
            f"{args.workers} workers x {args.threads} threads, one upload folder; uploads of {args.sizes} px"
        )
        print_levels(levels)
        if len(servers) > 1 or args.fetch_images:
            print_servers(levels)
        print()
        mem_rows = [[name, m["rss_mb"], m["peak_rss_mb"]] for name, m in figures["server_memory_mb"].items() if m]
        if mem_rows:
            print(table(mem_rows, ["gunicorn process", "RSS MB", "peak MB"]))
        print(f"gunicorn stopped: exit status {', '.join(str(e) for e in figures['server_exit'])}")
        errors = failed + sum(f["errors"] for f in levels)
        ok, lines, check = check_database(data_dir, accepted, cluster, requests_failed=bool(errors))
        figures["database_check"] = check
        print("\n".join(lines))
        figures["server_errors"] = {}
        for server in servers:
            tracebacks = server.tracebacks()
            figures["server_errors"].update({f"{server.number}: {k}": c for k, (c, _) in tracebacks.items()})
            if tracebacks:
                print(f"\nServer log ({server.log_path}): {sum(c for c, _ in tracebacks.values())} errors")
                for key, (n, text) in tracebacks.items():
                    print(f"--- {n} x {key}\n{text[-4000:]}")
        if not figures["server_errors"]:
            print("Server logs: no errors or tracebacks.")
        exit_status = 0 if ok and not errors else (1 if not ok else 2)
    except BenchError as exc:
        print(f"bench/load.py: {exc}", file=sys.stderr)
        exit_status = 1
    except KeyboardInterrupt:
        print("\nInterrupted: stopping gunicorn ...", file=sys.stderr)
        exit_status = 130
    finally:
        for server in servers:
            server.stop()
        if cluster is not None:
            cluster.stop()
        figures["machine_at_end"] = machine()
        print(f"Load average at the end: {figures['machine_at_end']['load_average_1_5_15']}")
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2, sort_keys=True, default=str))
            print(f"Figures written to {args.json}")
        if args.keep:
            kept = "media, server and access logs" + ("" if cluster else ", database")
            print(f"Kept {data_dir} ({kept}; a PostgreSQL cluster is always removed)")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return exit_status


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stopped like Ctrl+C: gunicorn is shut down first
    try:
        return run(args)
    except BenchError as exc:
        sys.exit(f"bench/load.py: {exc}")


if __name__ == "__main__":
    sys.exit(main())
