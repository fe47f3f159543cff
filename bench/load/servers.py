"""The load benchmark's servers: a fresh data directory set up with ``manage.py setup`` and an active
model (``prepare``), and gunicorn serving it on 127.0.0.1 (``Server``: start, worker memory, the
access log's times, tracebacks of the server log, a clean stop)."""

import collections
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

from bench._common import PYTHON, REPO, BenchError, banner, child_pids, django_env, memory_mb
from bench.load.clients import HOST, USERNAME, Client
from dispredo_site.testing.ports import free_port

ACCESS_LINE = re.compile(r'"(\w+) (\S+) HTTP/[\d.]+" (\d+) \S+ (\d+)$')
NUMBER_IN_PATH = re.compile(r"/\d+/")
# By its path, so that a checkout of another version (--against) is served with the same hook.
GUNICORN_CONFIG = f"file:{REPO / 'bench' / 'load' / 'gunicorn_hooks.py'}"
# Run in the code under load, which may be an older version (--against): its modules' older names too.
REGISTER_ARTEFACT = """
import sys
from pathlib import Path
import django
django.setup()
try:
    from diagnosis.lifecycle.registry import register_model_version
except ImportError:
    from diagnosis.registry import register_model_version
directory = Path(sys.argv[1])
if sys.argv[2] == "tiny":
    try:
        from dispredo_site.testing.tiny_model import build_tiny_artefact
    except ImportError:
        from diagnosis.tests.tiny_model import build_tiny_artefact
    build_tiny_artefact(directory, name="tiny-test-model")
version = register_model_version(directory, activate=True)
print(version.name)
"""


class Server:
    """gunicorn serving the project at ``root`` from ``data_dir``; stopped cleanly by ``stop()``.
    ``number`` (from 1) names its logs when there are several (server-2.log, access-2.log)."""

    def __init__(self, args, env, data_dir, number=1, port=0, root=REPO):
        self.number = number
        self.root = root
        self.port = port or free_port()
        suffix = "" if args.servers == 1 else f"-{number}"
        self.log_path = Path(data_dir) / f"server{suffix}.log"
        self.command = [
            PYTHON,
            "-m",
            "gunicorn",
            "dispredo_site.wsgi",
            "--config",
            GUNICORN_CONFIG,
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
            self.command, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
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


def prepare(args, data_dir, password, database_url=None, root=REPO):
    """A fresh database (SQLite in ``data_dir``, or ``database_url``) of the project at ``root``,
    with the staff account and an active model; returns (env, model description)."""
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
    env = django_env(data_dir, root=root, **extra)
    # DISPREDO_STORAGE too: the files go to the data folder's media, where the check reads them.
    for name in ("DISPREDO_ADMIN_USERNAME", "DISPREDO_ADMIN_PASSWORD", "DISPREDO_BIND", "DISPREDO_STORAGE"):
        env.pop(name, None)
    setup_env = dict(env, DISPREDO_ADMIN_USERNAME=USERNAME, DISPREDO_ADMIN_PASSWORD=password)
    done = subprocess.run(
        [PYTHON, "manage.py", "setup"], cwd=root, env=setup_env, capture_output=True, text=True, timeout=600
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
            cwd=root,
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
