"""The code under load: this checkout, and with ``--against REF`` also the project at a git ref,
each with its own data folder (and database), servers, signed-in clients and figures, so both are
measured in one run, level by level in turn, on the same images.

The ref is checked out with ``git worktree add --detach`` into a temporary folder and removed at the
end; it runs with this checkout's Python environment (the same packages), so what differs is the code.
"""

import subprocess
import tempfile
from pathlib import Path

from bench._common import REPO, BenchError
from bench.load.clients import HOST, create_patient, sign_in_all
from bench.load.servers import Server, prepare
from bench.load.uploads import upload_once

THIS_CHECKOUT = "this checkout"


class Side:
    """One version of the code and what it runs: ``start`` sets up its data folder and database,
    starts its servers and signs in its clients; ``stop`` stops the servers."""

    def __init__(self, label, root, database_url=None):
        self.label = label
        self.root = Path(root)
        self.database_url = database_url
        self.data_dir = tempfile.mkdtemp(prefix="dispredo-load-")
        self.servers, self.clients, self.patient_id, self.model = [], [], None, None
        self.accepted, self.levels, self.failed = [], [], 0

    def start(self, args, password, samples):
        print(f"{self.label}: fresh data directory {self.data_dir}: manage.py setup ...", flush=True)
        env, self.model = prepare(args, self.data_dir, password, self.database_url, root=self.root)
        self.servers = [
            Server(args, env, self.data_dir, number, args.port if number == 1 and self.root == REPO else 0, root=self.root)
            for number in range(1, args.servers + 1)
        ]
        for server in self.servers:
            print(
                f"{self.label}: starting gunicorn {server.number} on http://{HOST}:{server.port}/ ({args.workers} "
                f"workers x {args.threads} threads), model {self.model} ...",
                flush=True,
            )
            server.start()
        count = max(args.clients)
        print(f"{self.label}: signing in {count} clients (one session each) ...", flush=True)
        self.clients = sign_in_all([server.port for server in self.servers], count, password)
        self.patient_id = create_patient(self.clients[0])
        # Untimed uploads first: each worker of each server loads the model on its first request. They
        # are accepted uploads like any other, so the database check covers them too.
        warmup = [
            upload_once(client, self.patient_id, samples[0], args.fetch_images, server=number)
            for number in range(len(self.servers))
            for client in self.clients[: args.workers * 2]
        ]
        self.accepted += [r for r in warmup if "xray_id" in r]
        self.failed += sum(1 for r in warmup if not r["ok"])

    def stop(self):
        return [server.stop() for server in self.servers]


class Checkout:
    """``git worktree add --detach`` of ``ref`` in a temporary folder (``path``), removed by ``remove``."""

    def __init__(self, ref):
        self.ref = ref
        self.path = None
        self.commit = _git("rev-parse", "--short", f"{ref}^{{commit}}", error=f"{ref!r} is not a commit of this repository")

    def add(self):
        self.path = Path(tempfile.mkdtemp(prefix="dispredo-against-")) / "checkout"
        _git("worktree", "add", "--detach", str(self.path), self.commit, error=f"cannot check out {self.ref}")
        return self.path

    def remove(self):
        if self.path is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(self.path)], cwd=REPO, capture_output=True)
            self.path = None


def _git(*arguments, error):
    done = subprocess.run(["git", *arguments], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"{error}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()
