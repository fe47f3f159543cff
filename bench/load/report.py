"""The load benchmark's tables: per level (throughput, latency, by source size, time in the workers,
the script's own CPU, errors) and, with several servers or --fetch-images, where the uploads went."""

from bench._common import table


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


def print_servers(levels):
    for f in levels:
        spread = ", ".join(f"server {i + 1}: {n}" for i, n in f["accepted_by_server"].items())
        checked = f"; images served back and identical: {f['images_checked']}" if f["images_checked"] else ""
        print(f"{f['clients']} clients: accepted uploads by server: {spread}{checked}")
