"""Full-scale figures: preprocess and balance on a synthetic full-size NIH layout.

    .venv/bin/python -m bench.full_scale --layout DIR                   # 112,120 images
    .venv/bin/python -m bench.full_scale --layout DIR --limit 11212     # a 10 % subset first
    .venv/bin/python -m bench.full_scale --layout DIR --balance-findings Atelectasis Hernia
    .venv/bin/python -m bench.full_scale --preprocessed OUT --balance-findings Hernia   # balance only

1. Builds the layout in DIR with ``bench.nih_full_layout`` (hard links to the NIH sample's
   1024 px originals, so about as costly to decode as the real download; seconds; nothing
   changes when it is already there). The sample's images are read once first: every figure is
   with a warm page cache (the real 45 GB download may be read from disk at a lower speed).
2. Bare decoding: every image file opened and decoded (Pillow ``open`` + ``load``) in a pool of
   ``--workers`` processes, as preprocess starts its own.
3. ``manage.py preprocess --size S --workers W`` on the layout, in a fresh process.
4. Balance on its output: ``mltrain.balance.balance``, what ``manage.py balance`` runs, in a fresh
   process (every finding, or ``--balance-findings``), with the default caps.

For each step: wall time, images per second, per second per worker and per CPU second (the CPU
time of the step's processes, so other load on the machine affects it less), and peak memory:
the sum of the resident memory (VmRSS) of the command and its worker processes, sampled every
``--interval`` seconds from /proc (the anonymous part, RssAnon, apart: the rest is file pages of
mapped arrays, which the kernel can drop), and the largest single process's peak (getrusage
RUSAGE_CHILDREN ru_maxrss, exact). Balance shows each finding as it finishes. Output goes to a
temporary folder beside DIR, removed at the end unless ``--keep``.
"""

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench._common import PYTHON, REPO, BenchError, django_env, machine, machine_line, nih_sample, table
from bench.nih_full_layout import build_layout

MB = 1024 * 1024


def _decode(path):
    """Worker of the bare decoding: Pillow open + load, nothing else."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.width


def _status(pid):
    """{field: kB} of /proc/<pid>/status (VmRSS, RssAnon, VmHWM...); empty once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            return {
                key: int(value.split()[0])
                for key, _, value in (line.partition(":") for line in handle)
                if value.strip().endswith("kB")
            }
    except (OSError, ValueError):
        return {}


def _tree(pid):
    """``pid`` and all its descendants."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as handle:
                queue.extend(int(child) for child in handle.read().split())
        except OSError:
            pass
    return found


class TreeMemory:
    """Samples the summed VmRSS and RssAnon of a process tree in a thread; ``mark()`` returns the
    peaks since the previous mark (in MB) and starts a new window."""

    def __init__(self, pid, interval):
        self.pid, self.interval = pid, interval
        self.total = self.anon = self.window_total = self.window_anon = 0
        self.processes = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.interval):
            statuses = [_status(pid) for pid in _tree(self.pid)]
            rss = sum(status.get("VmRSS", 0) for status in statuses)
            anon = sum(status.get("RssAnon", 0) for status in statuses)
            with self._lock:
                self.processes = max(self.processes, sum(1 for status in statuses if status))
                self.total, self.anon = max(self.total, rss), max(self.anon, anon)
                self.window_total, self.window_anon = max(self.window_total, rss), max(self.window_anon, anon)

    def mark(self):
        with self._lock:
            peaks = (self.window_total / 1024, self.window_anon / 1024)
            self.window_total = self.window_anon = 0
        return peaks

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.total / 1024, self.anon / 1024


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare_decode(paths, workers, interval):
    """Decode ``paths`` in a spawned pool of ``workers``; the figures of one step."""
    context = multiprocessing.get_context("spawn")
    cpu, started = _cpu_seconds(), time.perf_counter()
    chunksize = max(1, min(64, len(paths) // (workers * 4)))
    with context.Pool(workers) as pool:
        memory = TreeMemory(os.getpid(), interval)
        for _ in pool.imap_unordered(_decode, paths, chunksize=chunksize):
            pass
        pool.close()
        pool.join()
    total, anon = memory.stop()
    return _figures("bare decode (Pillow open + load)", len(paths), workers, started, cpu, total, anon)


def _figures(step, images, workers, started, cpu, total, anon, largest=None):
    wall = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu
    return {
        "step": step,
        "images": images,
        "workers": workers,
        "wall_s": round(wall, 1),
        "images_per_s": round(images / wall, 1),
        "images_per_s_per_worker": round(images / wall / workers, 1),
        "images_per_cpu_s": round(images / cpu, 1) if cpu else None,
        "peak_rss_mb": round(total),
        "peak_anon_mb": round(anon),
        "largest_process_mb": largest,
    }


def run_command(command, env, interval, on_line=None):
    """Run ``command`` (a list); ``(start, cpu at start, peak MB, peak anonymous MB, largest MB)``.

    ``on_line(line, memory)`` sees each line of its standard output as it comes.
    """
    cpu, started = _cpu_seconds(), time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    memory = TreeMemory(process.pid, interval)
    errors = []
    reader = threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True)
    reader.start()
    for line in process.stdout:
        if on_line:
            on_line(line.rstrip("\n"), memory)
    process.wait()
    reader.join()
    total, anon = memory.stop()
    if process.returncode:
        raise BenchError(f"{' '.join(command[:3])} ... failed:\n{''.join(errors[-20:])}")
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss is the largest of all waited descendants so far: only meaningful if it grew.
    return started, cpu, total, anon, round(largest / 1024) if largest > before else None


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.full_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--layout", type=Path, default=None, help="the synthetic NIH layout (built if missing)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (e.g. 11212 for 10 %%)")
    parser.add_argument("--images", choices=("originals", "all"), default="originals", help="sample images linked")
    parser.add_argument("--size", type=int, default=128, help="preprocess size in pixels (default 128)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--balance-findings", nargs="*", default=None, help="findings to balance (default all)")
    parser.add_argument("--no-balance", action="store_true", help="skip the balance step")
    parser.add_argument("--no-decode", action="store_true", help="skip the bare decoding step")
    parser.add_argument("--interval", type=float, default=0.05, help="memory sampling interval in seconds")
    parser.add_argument(
        "--preprocessed", type=Path, default=None, help="balance this preprocessed output (of an earlier --keep) only"
    )
    parser.add_argument("--keep", action="store_true", help="keep the preprocessed output (printed at the end)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    if not args.layout and not args.preprocessed:
        parser.error("give --layout DIR (or --preprocessed OUT to balance only)")
    workers = args.workers or len(os.sched_getaffinity(0))
    try:
        run(args, workers)
    except BenchError as exc:
        sys.exit(f"full_scale: {exc}")


def run(args, workers):
    info = machine()
    print(machine_line(info))
    if args.preprocessed:
        env = django_env(Path(tempfile.mkdtemp(prefix=".full-scale-data-", dir=args.preprocessed.resolve().parent)))
        try:
            manifest = json.loads((args.preprocessed / "manifest.json").read_text())
            rows = balance_rows(args.preprocessed.resolve(), env, args, manifest)
        finally:
            shutil.rmtree(env["DISPREDO_DATA_DIR"], ignore_errors=True)
        print()
        print(table_of(rows))
        if args.json:
            args.json.write_text(json.dumps({"machine": info, "preprocessed": str(args.preprocessed), "steps": rows}, indent=2))
        return
    sample = nih_sample()
    layout = build_layout(args.layout, sample, images=args.images, limit=args.limit, progress=None)
    print(
        f"Layout {args.layout}: {layout['images']:,} of {layout['rows']:,} rows, hard links to "
        f"{layout['sample_images_used']} sample images ({args.images}), {layout['seconds']} s to check or build"
    )
    paths = sorted(str(path) for path in args.layout.glob("images_*/images/*.png"))
    for path in {os.path.realpath(path) for path in paths} | {str(p) for p in sample.glob("images_*/images/*")}:
        Path(path).read_bytes()  # warm the page cache
    rows = []
    if not args.no_decode:
        rows.append(bare_decode(paths, workers, args.interval))
        print(table_of(rows[-1:]), flush=True)

    work = Path(tempfile.mkdtemp(prefix=".full-scale-", dir=args.layout.resolve().parent))
    env = django_env(work / "data")
    out = work / "preprocessed"
    try:
        started, cpu, total, anon, largest = run_command(
            [PYTHON, str(REPO / "manage.py"), "preprocess", "--data-dir", str(args.layout), "--size", str(args.size), "--workers", str(workers),
             "--out", str(out), "--verbosity", "0"],
            env,
            args.interval,
        )
        rows.append(_figures(f"manage.py preprocess --size {args.size}", len(paths), workers, started, cpu, total, anon, largest))
        print(table_of(rows[-1:]), flush=True)
        manifest = json.loads((out / "manifest.json").read_text())
        print("  splits: " + ", ".join(f"{split} {entry['count']:,}" for split, entry in manifest["splits"].items()))
        if not args.no_balance:
            rows.extend(balance_rows(out, env, args, manifest))
        print()
        print(table_of(rows))
    finally:
        if args.keep:
            print(f"Kept {out}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "layout": layout, "steps": rows}, indent=2))


# ``mltrain.balance.balance`` as ``manage.py balance`` calls it, printing each finding's entry as it ends.
BALANCE_DRIVER = """
import json, sys, django
django.setup()
from mltrain.balance import balance
done = lambda name, entry: print("finished", name, json.dumps(entry), flush=True)
balance(sys.argv[1], findings=json.loads(sys.argv[2]) or None, progress=False, on_finding=done)
"""


def balance_rows(out, env, args, manifest):
    """Balance in a fresh process, with each finding's time and peak memory as it ends."""
    rows, findings = [], args.balance_findings or manifest["findings"]

    def on_line(line, memory):
        if not line.startswith("finished "):
            return
        _, name, entry = line.split(" ", 2)
        entry = json.loads(entry)
        total, anon = memory.mark()
        drawn, after = entry["drawn"], entry["after"] or {"positive": 0, "negative": 0}
        rows.append(
            {"step": f"  balance {name}", "images": drawn["positive"] + drawn["negative"], "wall_s": entry["seconds"],
             "images_per_s": round((drawn["positive"] + drawn["negative"]) / max(entry["seconds"], 0.1), 1),
             "peak_rss_mb": round(total), "peak_anon_mb": round(anon)}
        )
        print(
            f"  {name}: {drawn['positive']:,} + / {drawn['negative']:,} - drawn, {after['positive']:,} + / "
            f"{after['negative']:,} - after, {entry['seconds']} s, peak {total:,.0f} MB ({anon:,.0f} MB anonymous)",
            flush=True,
        )

    print(f"balance: {len(findings)} finding(s) of {manifest['splits']['train']['count']:,} training images")
    command = [PYTHON, "-c", BALANCE_DRIVER, str(out), json.dumps(args.balance_findings or [])]
    started, cpu, total, anon, largest = run_command(command, env, args.interval, on_line)
    drawn = sum(row["images"] for row in rows)
    rows.append(_figures(f"balance ({len(findings)} findings, drawn images)", drawn, 1, started, cpu, total, anon, largest))
    return rows


def table_of(rows):
    headers = ("step", "images", "workers", "wall s", "images/s", "/s/worker", "/CPU s", "peak MB", "anon MB",
               "largest MB")
    keys = ("step", "images", "workers", "wall_s", "images_per_s", "images_per_s_per_worker", "images_per_cpu_s",
            "peak_rss_mb", "peak_anon_mb", "largest_process_mb")
    return table([[row.get(key) for key in keys] for row in rows], headers)


if __name__ == "__main__":
    main()
