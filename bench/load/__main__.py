"""The load benchmark's run, in order: database, the code under load (this checkout, and with
``--against REF`` that ref too), servers, sign-ins, the levels (each side in turn, ``--rounds``
times), the figures, the comparison, the database check and the server logs
(``python -m bench.load --help``; the package's docstring says what it measures)."""

import collections
import json
import secrets
import shutil
import signal
import statistics
import sys
from pathlib import Path

from bench._common import REPO, BenchError, machine, machine_line, summary_ms, table
from bench.load.checks import check_database
from bench.load.database import start_database
from bench.load.options import parse_args
from bench.load.report import print_levels, print_servers
from bench.load.sides import THIS_CHECKOUT, Checkout, Side
from bench.load.uploads import level_figures, load_samples, run_level


def run(args):
    info = machine()
    print(machine_line(info), flush=True)
    samples = load_samples(args)
    password = secrets.token_urlsafe(16)
    sides, cluster, checkout = [], None, None
    figures = {"machine_at_start": info, "args": vars(args)}
    exit_status = 0
    try:
        cluster = start_database(args)
        figures["database"] = cluster.version if cluster else "SQLite (WAL), file in the data folder"
        sides.append(Side(THIS_CHECKOUT, REPO, cluster.url if cluster else None))
        if args.against:
            checkout = Checkout(args.against)
            label = f"{args.against} ({checkout.commit})"
            sides.append(Side(label, checkout.add(), cluster.database("dispredo_against") if cluster else None))
        for side in sides:
            side.start(args, password, samples)
        offsets = collections.Counter()
        for n in args.clients:
            for number in range(args.rounds):
                # Alternate which side goes first, so that neither always meets the warmer machine.
                for side in sides if number % 2 == 0 else reversed(sides):
                    offsets[side.label] = _level(side, n, number, args, samples, offsets[side.label])
        exit_status = max(_finish(side, args, figures, cluster) for side in sides)
        if len(sides) > 1:
            figures["comparison"] = _compare(sides)
    except BenchError as exc:
        print(f"bench.load: {exc}", file=sys.stderr)
        exit_status = 1
    except KeyboardInterrupt:
        print("\nInterrupted: stopping gunicorn ...", file=sys.stderr)
        exit_status = 130
    finally:
        for side in sides:
            side.stop()
        if cluster is not None:
            cluster.stop()
        if checkout is not None:
            checkout.remove()
        figures["machine_at_end"] = machine()
        print(f"Load average at the end: {figures['machine_at_end']['load_average_1_5_15']}")
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2, sort_keys=True, default=str))
            print(f"Figures written to {args.json}")
        for side in sides:
            if args.keep:
                kept = "media, server and access logs" + ("" if cluster else ", database")
                print(f"Kept {side.data_dir} ({side.label}: {kept}; a PostgreSQL cluster is always removed)")
            else:
                shutil.rmtree(side.data_dir, ignore_errors=True)
    return exit_status


def _level(side, n, number, args, samples, offset):
    """One level of ``n`` clients on ``side`` (round ``number``); returns the next sample offset."""
    rounds = f", round {number + 1} of {args.rounds}" if args.rounds > 1 else ""
    print(f"{side.label}: {n} clients for {args.seconds:g} s (at most {args.max_uploads} uploads{rounds}) ...", flush=True)
    log_starts = [server.access_offset() for server in side.servers]
    results, wall, cpu = run_level(
        side.clients[:n], side.patient_id, samples, args.seconds, args.max_uploads, offset, args.fetch_images
    )
    side.accepted += [r for r in results if "xray_id" in r]
    level = dict(level_figures(n, results, wall, cpu), round=number + 1)
    times = collections.defaultdict(list)
    for server, start in zip(side.servers, log_starts):
        server.request_times(start, server.access_offset(), times)
    level["server_ms"] = {kind: summary_ms(values) for kind, values in sorted(times.items())}
    side.levels.append(level)
    return offset + len(results)


def _finish(side, args, figures, cluster):
    """Stop ``side``'s servers, print its figures, check its database and logs; its exit status."""
    memory = {}
    for server in side.servers:
        prefix = f"server {server.number} " if len(side.servers) > 1 else ""
        memory.update({prefix + name: m for name, m in server.worker_memory().items()})
    exits = side.stop()
    print(f"\n== {side.label}")
    print(
        f"Model: {side.model}; database: {figures['database']}; {len(side.servers)} server(s) of gunicorn "
        f"{args.workers} workers x {args.threads} threads, one upload folder; uploads of {args.sizes} px"
    )
    print_levels(side.levels)
    if len(side.servers) > 1 or args.fetch_images:
        print_servers(side.levels)
    print()
    mem_rows = [[name, m["rss_mb"], m["peak_rss_mb"]] for name, m in memory.items() if m]
    if mem_rows:
        print(table(mem_rows, ["gunicorn process", "RSS MB", "peak MB"]))
    print(f"gunicorn stopped: exit status {', '.join(str(e) for e in exits)}")
    errors = side.failed + sum(f["errors"] for f in side.levels)
    ok, lines, check = check_database(side.data_dir, side.accepted, side.database_url, requests_failed=bool(errors))
    print("\n".join(lines))
    server_errors = {}
    for server in side.servers:
        tracebacks = server.tracebacks()
        server_errors.update({f"{server.number}: {k}": c for k, (c, _) in tracebacks.items()})
        if tracebacks:
            print(f"\nServer log ({server.log_path}): {sum(c for c, _ in tracebacks.values())} errors")
            for key, (n, text) in tracebacks.items():
                print(f"--- {n} x {key}\n{text[-4000:]}")
    if not server_errors:
        print("Server logs: no errors or tracebacks.")
    mine = {
        "model": side.model, "data_dir": side.data_dir, "levels": side.levels, "server_memory_mb": memory,
        "server_exit": exits, "database_check": check, "server_errors": server_errors,
    }
    if side.label == THIS_CHECKOUT:
        figures.update(mine)
    else:
        figures["against"] = dict(mine, ref=side.label)
    return 0 if ok and not errors else (1 if not ok else 2)


def _compare(sides):
    """Print, per client count, the mean uploads/s and p95 of each side over its rounds and the ratio
    of this checkout to the ref; returns the rows."""
    this, ref = sides
    rows, figures = [], []
    for n in dict.fromkeys(level["clients"] for level in this.levels):
        mine = [level for level in this.levels if level["clients"] == n]
        theirs = [level for level in ref.levels if level["clients"] == n]
        rate = [statistics.mean(level["uploads_per_s"] for level in group) for group in (mine, theirs)]
        p95 = [statistics.mean(level["latency"].get("p95_ms") or 0 for level in group) for group in (mine, theirs)]
        ratio_rate = rate[0] / rate[1] if rate[1] else None
        ratio_p95 = p95[0] / p95[1] if p95[1] else None
        rows.append([n, len(mine), f"{rate[1]:.1f}", f"{rate[0]:.1f}", _ratio(ratio_rate), f"{p95[1]:.0f}", f"{p95[0]:.0f}", _ratio(ratio_p95)])
        figures.append({"clients": n, "rounds": len(mine), "uploads_per_s": rate, "p95_ms": p95, "ratio_uploads_per_s": ratio_rate, "ratio_p95": ratio_p95})
    print(f"\n== {this.label} against {ref.label}, interleaved (means over the rounds)")
    print(table(rows, ["clients", "rounds", "ref uploads/s", "this uploads/s", "ratio", "ref p95 ms", "this p95 ms", "ratio"]))
    return figures


def _ratio(value):
    return "-" if value is None else f"x{value:.2f}"


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
