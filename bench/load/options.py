"""The load benchmark's command line: ``parse_args`` checks every option before anything starts."""

import argparse
import os

from bench._common import SAMPLE_SIZES


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
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
    parser.add_argument(
        "--against",
        metavar="REF",
        help="also run the project at this git ref (a commit, branch or tag), with its own data folder and "
        "servers, level by level in turn with this checkout, and print the ratio of the two",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="times each level is run on each side, alternating which goes first (default: 2 with --against, else 1)",
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
    if args.rounds is None:
        args.rounds = 2 if args.against else 1
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.against and args.port:
        parser.error("--port is for one side only: leave it out with --against")
    if args.inference_threads is not None and args.inference_threads < 1:
        parser.error("--inference-threads must be at least 1")
    return args
