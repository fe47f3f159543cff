"""The load benchmark's run, in order: database, setup, servers, sign-ins, the levels, the figures,
the database check and the server logs (``python -m bench.load --help``; the package's docstring
says what it measures)."""

import collections
import json
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from bench._common import BenchError, machine, machine_line, summary_ms, table
from bench.load.checks import check_database
from bench.load.clients import HOST, create_patient, sign_in_all
from bench.load.database import start_database
from bench.load.options import parse_args
from bench.load.report import print_levels, print_servers
from bench.load.servers import Server, prepare
from bench.load.uploads import level_figures, load_samples, run_level, upload_once


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
        print(f"bench.load: {exc}", file=sys.stderr)
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
        sys.exit(f"bench.load: {exc}")


if __name__ == "__main__":
    sys.exit(main())
