"""fhir_async.dask on one export: a single process vs a LocalCluster of two
worker processes (issue 15), for NDJSON and Parquet output.

    .venv/bin/python python/bench/dask_scale.py --patients 110000   # 17 files, about 1.07 GB

One reference server (release build), one finished export; each variant
downloads every output file of the same job (the tasks resume it from
``job.to_json()``) into a fresh folder, which is removed afterwards:

- ``single``: the tasks run one after the other in this process (dask's
  ``synchronous`` scheduler);
- ``threads``: this process, two threads (dask's ``threads`` scheduler);
- ``cluster``: ``LocalCluster(n_workers=2, threads_per_worker=1,
  processes=True)`` (its start-up is timed apart).

Prints a Markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "target" / "release" / "fhir-async-testserver"


def start(patients: int, file_resources: int) -> "tuple[subprocess.Popen[str], str]":
    proc = subprocess.Popen(
        [str(SERVER), "--addr", "127.0.0.1:0", "--exit-on-stdin-eof", "--job-ms", "100", "--retry-after", "0",
         "--patients", str(patients), "--file-resources", str(file_resources)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[-1]
    proc.stdout.readline()
    return proc, url


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=110000)
    ap.add_argument("--file-resources", type=int, default=100000)
    ap.add_argument("--formats", default="ndjson,parquet")
    args = ap.parse_args()

    import dask
    from distributed import Client as DaskClient, LocalCluster

    import fhir_async
    import fhir_async.dask as fd

    proc, url = start(args.patients, args.file_resources)
    rows: List[Dict[str, Any]] = []
    try:
        client = fhir_async.Client(url + "/bulk/fhir", retry={"min_wait_ms": 50, "initial_backoff_ms": 50})
        result = client.export().wait(raise_on_failure=True)
        files = [f for f in result.files if f["kind"] == "output"]
        print(f"{len(files)} output files, {sum(f['expectedCount'] for f in files):,} resources", file=sys.stderr)
        t0 = time.monotonic()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
        dc = DaskClient(cluster)
        startup = time.monotonic() - t0
        try:
            for fmt in args.formats.split(","):
                for variant in ("single", "threads", "cluster"):
                    out = Path(tempfile.mkdtemp(prefix=f"dask-bench-{fmt}-{variant}-", dir=ROOT / "target"))
                    if variant != "cluster":
                        scheduler = {"single": "synchronous", "threads": "threads"}[variant]
                        with dask.config.set(scheduler=scheduler, num_workers=2):
                            report = fd.download(result, out, format=fmt, kinds=("output",))  # type: ignore[arg-type]
                    else:
                        report = fd.download(result, out, client=dc, format=fmt, kinds=("output",))  # type: ignore[arg-type]
                    assert not report.failed, report.failed
                    rows.append({
                        "format": fmt, "variant": variant, "seconds": round(report.seconds, 2),
                        "files": len(report.files), "resources": report.resources, "ndjson_bytes": report.bytes,
                        "written_bytes": sum(f.written_bytes for f in report.files),
                        "workers": len({f.worker for f in report.files}),
                    })
                    print(rows[-1], file=sys.stderr)
                    shutil.rmtree(out)
        finally:
            dc.close()
            cluster.close()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)

    print(f"cluster start-up (2 worker processes): {startup:.2f} s\n")
    print("| format | variant | seconds | files | resources | NDJSON bytes | written bytes | MB/s (NDJSON) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        mbs = r["ndjson_bytes"] / 1e6 / r["seconds"]
        print(f"| {r['format']} | {r['variant']} | {r['seconds']} | {r['files']} | {r['resources']:,} | "
              f"{r['ndjson_bytes']:,} | {r['written_bytes']:,} | {mbs:.0f} |")
    print(json.dumps({"startup_s": startup, "rows": rows}))


if __name__ == "__main__":
    main()
