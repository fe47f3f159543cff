"""Helpers shared by the benchmarks: paths, the NIH sample, percentiles, memory, the machine, tables.

Nothing here imports Django or a machine-learning library, so a benchmark decides what it loads.
"""

import os
import platform
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# Source sizes of the real NIH images used (see the sample's README): 64 and 256 px in
# images_001 (downscaled copies), 1024 px originals in images_002.
SAMPLE_SIZES = (64, 256, 1024)


class BenchError(Exception):
    """A benchmark cannot run (missing sample, model or server); the message says what to do."""


def nih_sample():
    """The NIH sample folder: ``DISPREDO_NIH_SAMPLE`` or ``../shared/data/nih-sample``."""
    raw = os.environ.get("DISPREDO_NIH_SAMPLE")
    folder = Path(raw).expanduser() if raw else REPO.parent / "shared" / "data" / "nih-sample"
    if not (folder / "images_001" / "images").is_dir() or not (folder / "images_002" / "images").is_dir():
        raise BenchError(
            f"NIH sample not found at {folder} (needs images_001/images and images_002/images); "
            "set DISPREDO_NIH_SAMPLE to its folder."
        )
    return folder


def png_size(path):
    """(width, height) from a PNG's header, without decoding it."""
    with open(path, "rb") as handle:
        header = handle.read(24)
    if header[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def sample_files(per_size, sizes=SAMPLE_SIZES):
    """Up to ``per_size`` real X-ray paths of each square source size, in a fixed order.

    Returns {size: [Path, ...]}; raises ``BenchError`` when a size has no image.
    """
    folder = nih_sample()
    found = {size: [] for size in sizes}
    for sub in ("images_001", "images_002"):
        for path in sorted((folder / sub / "images").glob("*.png")):
            size = png_size(path)
            if size and size[0] == size[1] and size[0] in found and len(found[size[0]]) < per_size:
                found[size[0]].append(path)
    empty = [str(size) for size, paths in found.items() if not paths]
    if empty:
        raise BenchError(f"No {', '.join(empty)} px images in {folder}.")
    return found


def percentile(values, q):
    """The ``q``-th percentile (0..100) of ``values``, linear between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds):
    """Median, p95, p99, mean, min and max of durations in seconds, as milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def memory_mb(pid="self"):
    """{"rss_mb", "peak_rss_mb"} of a process from /proc/<pid>/status (VmRSS, VmHWM); None if unreadable."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in lines if ":" in line)

    def mb(name):
        value = fields.get(name, "").split()
        return round(int(value[0]) / 1024.0, 1) if value else None

    return {"rss_mb": mb("VmRSS"), "peak_rss_mb": mb("VmHWM")}


def child_pids(pid):
    """Direct children of ``pid`` (from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces or parentheses: the fields follow the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid):
            children.append(int(entry.name))
    return sorted(children)


def machine():
    """What the figures were measured on: CPUs, model, load average, Python."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpus": usable,
        "cpu_model": cpu_model,
        "load_average_1_5_15": load,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def machine_line(info):
    load = info.get("load_average_1_5_15")
    busy = ""
    if load and info.get("cpus") and load[0] > 0.5 * info["cpus"]:
        busy = "  <- other work is loading the CPUs: figures are pessimistic"
    return f"Machine: {info['cpus']} CPUs ({info['cpu_model'] or 'unknown model'}), load average {load}{busy}"


def table(rows, headers):
    """A plain-text table: ``rows`` of cells (converted with str), left-aligned first column."""
    cells = [[str(c) for c in headers]] + [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def banner(text):
    """A message that must not be missed (e.g. figures from a stand-in model)."""
    bar = "!" * 78
    return f"{bar}\n" + "\n".join(f"!! {line}" for line in text.splitlines()) + f"\n{bar}"


def django_env(data_dir, root=REPO, **extra):
    """Environment for a Django process of the project at ``root`` (this repository by default)
    writing only under ``data_dir``.

    Settings that could point at another installation's data (database, media, models) are
    removed, so they all follow ``data_dir``.
    """
    env = dict(os.environ)
    for name in ("DATABASE_URL", "DISPREDO_MEDIA_ROOT", "DISPREDO_MODEL_DIR", "DISPREDO_MLTRAIN_DIR"):
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="dispredo_site.settings",
        DISPREDO_DATA_DIR=str(data_dir),
        PYTHONPATH=str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env
