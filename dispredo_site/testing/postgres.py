"""A throw-away PostgreSQL cluster for the test suite, from Debian's ``postgresql`` package.

``start(folder)`` runs initdb and pg_ctl in ``folder`` (as the ``postgres`` system user when run as
root, since initdb refuses root), listening only on 127.0.0.1 on a free port with password
authentication, creates the database and returns its DATABASE_URL; ``stop(folder)`` stops the
server and removes the folder. bin/test uses the command line, which a person can use by hand:

    python -m dispredo_site.testing.postgres start /tmp/pg    # prints DATABASE_URL=postgres://...
    python -m dispredo_site.testing.postgres stop /tmp/pg
    python -m dispredo_site.testing.postgres check            # why it cannot run here, or nothing

The cluster trades durability for speed (fsync off): it holds nothing worth keeping. A benchmark
that measures writes starts it with ``start(folder, durable=True)`` instead, which keeps
PostgreSQL's own defaults (fsync, synchronous commit, full page writes), as a clinic's server runs.
"""

import argparse
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from dispredo_site.testing.ports import HOST, on_free_port

USER = "dispredo"
DATABASE = "dispredo"
MARKER = "dispredo-test-cluster"  # stop removes only folders that start made
SYSTEM_USER = "postgres"  # the account Debian's package creates; used when running as root
SETTINGS = """
# Written by dispredo_site.testing.postgres: a throw-away test cluster.
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
max_connections = 200
"""
FAST = """fsync = off
synchronous_commit = off
full_page_writes = off
"""  # not written for start(durable=True)


class Unavailable(Exception):
    """PostgreSQL cannot run here; the message says why."""


def bin_dir():
    """The folder holding initdb and pg_ctl: from PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if versions:
        return Path(versions[-1]).parent
    raise Unavailable("initdb was not found (install Debian's postgresql package, or put initdb on PATH)")


def _run_as():
    """The system user to run the server as (root cannot), or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise Unavailable(f"running as root, and there is no {SYSTEM_USER!r} system user to run initdb as") from None
    return SYSTEM_USER


def check():
    """Raise Unavailable with the reason when a cluster cannot be started here."""
    bin_dir()
    _run_as()


def server_version():
    """The server programs' version, as ``postgres --version`` gives it: "PostgreSQL 15.14 (Debian ...)"."""
    result = subprocess.run([str(bin_dir() / "postgres"), "--version"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"postgres --version failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout.strip().replace("postgres (PostgreSQL)", "PostgreSQL")


def _pg(folder, *args, timeout=120, password=None):
    """Run a PostgreSQL program from ``bin_dir()`` in ``folder`` (as the system user when root)."""
    command = [str(bin_dir() / args[0]), *args[1:]]
    run_as = _run_as()
    account = {}
    if run_as:  # the user's own group only, none of root's
        entry = pwd.getpwnam(run_as)
        account = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    result = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, timeout=timeout, **account,
        env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", **({"PGPASSWORD": password} if password else {})},
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def _check_reachable(folder, uid):
    """Refuse a folder the system user cannot reach (a parent closed to others, such as /root)."""
    for parent in folder.parents:
        info = parent.stat()
        if info.st_uid != uid and not info.st_mode & 0o001:
            raise RuntimeError(
                f"the {SYSTEM_USER!r} user cannot reach {folder}: {parent} is closed to other users; "
                "use a folder under /tmp"
            )


def start(folder, port=None, durable=False):
    """Initialise and start a cluster in ``folder`` (created, must not exist yet or be empty);
    returns its DATABASE_URL. On failure the folder is removed again. ``durable`` keeps fsync,
    synchronous commit and full page writes on (slower; what a benchmark of writes needs)."""
    folder = Path(folder).resolve()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise RuntimeError(f"{folder} is not empty; give start an empty or new folder")
    (folder / MARKER).write_text("A throw-away PostgreSQL test cluster; stop removes this folder.\n")
    try:
        run_as = _run_as()
        if run_as:
            entry = pwd.getpwnam(run_as)
            _check_reachable(folder, entry.pw_uid)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        password = secrets.token_urlsafe(24)
        pwfile = folder / "password"
        with os.fdopen(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(password + "\n")
        if run_as:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        data = folder / "data"
        _pg(folder, "initdb", "-D", str(data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={pwfile}",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        pwfile.unlink()
        port = _start_server(folder, data, port, durable=durable)
        _pg(folder, "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE, password=password)
        return f"postgres://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"
    except BaseException:
        stop(folder)
        raise


def _start_server(folder, data, port=None, tries=3, durable=False):
    """Start the server on ``port``, else on a free port (another, if one is taken meanwhile)."""

    def attempt(chosen):
        with open(data / "postgresql.conf", "a") as conf:  # a later line wins over an earlier one
            conf.write(SETTINGS.format(port=chosen) + ("" if durable else FAST))
        (folder / "port").write_text(str(chosen))
        try:
            _pg(folder, "pg_ctl", "start", "-w", "-t", "60", "-D", str(data), "-l", str(folder / "server.log"))
        except RuntimeError as error:
            log = (folder / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{error}\nserver.log:\n{log}") from None
        return chosen

    if port:
        return attempt(port)
    return on_free_port(attempt, tries=tries, retry_on=(RuntimeError,), host=HOST)[0]


def stop(folder):
    """Stop the cluster in ``folder`` (if it runs) and remove the folder. Safe to call twice."""
    folder = Path(folder).resolve()
    if not folder.exists():
        return
    if not (folder / MARKER).exists():
        raise RuntimeError(f"{folder} holds no test cluster started by this helper; not removing it")
    data = folder / "data"
    if (data / "postmaster.pid").exists():
        try:
            _pg(folder, "pg_ctl", "stop", "-w", "-t", "30", "-m", "fast", "-D", str(data))
        except (RuntimeError, subprocess.TimeoutExpired):
            try:
                _pg(folder, "pg_ctl", "stop", "-w", "-t", "30", "-m", "immediate", "-D", str(data))
            except (RuntimeError, subprocess.TimeoutExpired):
                pass  # not running (a stale pid file): nothing left to stop
    shutil.rmtree(folder, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dispredo_site.testing.postgres", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    begin = commands.add_parser("start", help="start a cluster in FOLDER and print DATABASE_URL=...")
    begin.add_argument("folder")
    begin.add_argument("--port", type=int, help="the TCP port (default: a free one)")
    end = commands.add_parser("stop", help="stop the cluster in FOLDER and remove the folder")
    end.add_argument("folder")
    commands.add_parser("check", help="exit 1 with the reason when PostgreSQL cannot run here")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            print(f"DATABASE_URL={start(args.folder, args.port)}")
        elif args.command == "stop":
            stop(args.folder)
        else:
            check()
    except Unavailable as error:
        print(error, file=sys.stderr)
        return 1
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as error:
        print(f"PostgreSQL test cluster: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
