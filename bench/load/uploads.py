"""The load benchmark's traffic: the sample X-rays, one upload and its result page, a level of
concurrent clients uploading until the time or the count runs out, and that level's figures."""

import collections
import hashlib
import http.client
import re
import threading
import time
import urllib.error
import urllib.parse

from bench._common import sample_files, summary_ms
from bench.load.clients import multipart

XRAY_LOCATION = re.compile(r"^/xrays/(\d+)/$")
FINDINGS_COUNT = 14


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
