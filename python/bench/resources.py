"""How fast ``result.resources()`` yields dicts, against ``orjson.loads`` and
``json.loads`` per line of the same file (already on disk, page cache warm).

    .venv/bin/python python/bench/resources.py --patients 20000

``resources()`` includes the HTTP download from the reference server, gzip
off, line splitting and the count check; the others only read a local file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "target" / "release" / "fhir-async-testserver"


def best_of(n: int, f: Callable[[], int]) -> Dict[str, Any]:
    times = []
    count = 0
    for _ in range(n):
        t0 = time.perf_counter()
        count = f()
        times.append(time.perf_counter() - t0)
    return {"seconds": min(times), "all": [round(t, 3) for t in times], "count": count}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--type", default="Observation")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    import orjson

    import fhir_async
    from fhir_async import _native

    server = subprocess.Popen(
        [str(SERVER), "--addr", "127.0.0.1:0", "--exit-on-stdin-eof", "--patients", str(args.patients),
         "--job-ms", "100", "--retry-after", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    url = server.stdout.readline().split()[-1]
    try:
        client = fhir_async.Client(url + "/bulk/fhir", retry={"min_wait_ms": 50})
        result = client.export(types=[args.type]).wait(raise_on_failure=True)
        work = Path(tempfile.mkdtemp(prefix="fhir-async-res-"))
        (path,) = result.download(work, gzip=False)
        size = path.stat().st_size

        def per_line(parse: Callable[[bytes], Any]) -> Callable[[], int]:
            def run() -> int:
                n = 0
                with open(path, "rb") as f:
                    for line in f:
                        parse(line)
                        n += 1
                return n

            return run

        with_orjson = per_line(orjson.loads)
        with_json = per_line(json.loads)
        with_native_parser = per_line(_native.parse_json)

        def with_resources() -> int:
            return sum(1 for _ in result.resources(args.type))

        def with_read_ndjson() -> int:
            return sum(1 for _ in fhir_async.read_ndjson(path))

        rows = {
            "result.resources() (HTTP + parse)": best_of(args.reps, with_resources),
            "fhir_async.read_ndjson (local file)": best_of(args.reps, with_read_ndjson),
            "orjson.loads per line (local file)": best_of(args.reps, with_orjson),
            "_native.parse_json per line (local file)": best_of(args.reps, with_native_parser),
            "json.loads per line (local file)": best_of(args.reps, with_json),
        }
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    counts = {r["count"] for r in rows.values()}
    assert len(counts) == 1, rows
    n = counts.pop()
    print(f"data: {args.type}, {n} resources, {size / 1e6:.1f} MB, best of {args.reps}")
    print("| reader | seconds | resources/s | MB/s |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['seconds']:.3f} | {n / r['seconds']:,.0f} | {size / 1e6 / r['seconds']:.0f} |")
    ratio = rows["orjson.loads per line (local file)"]["seconds"] / rows["result.resources() (HTTP + parse)"]["seconds"]
    print(f"result.resources() vs orjson per line: {ratio:.2f}x")
    local = rows["orjson.loads per line (local file)"]["seconds"] / rows["fhir_async.read_ndjson (local file)"]["seconds"]
    print(f"fhir_async.read_ndjson vs orjson per line, same local file: {local:.2f}x")
    print(json.dumps(rows))


if __name__ == "__main__":
    sys.exit(main())
