"""Memory of a download whose manifest lists 100,000 files (issue 10 §3,
"memory on hostile input").

    .venv/bin/python python/bench/many_files.py --files 100000

The reference server (`--file-resources 1`) hands out one NDJSON file per
Patient, so an export of N patients has a manifest of N `output` entries.
A child process runs ``export().wait()`` then ``download()``; a sampler
thread reads its RSS (psutil) every 5 ms. Prints one JSON line: RSS before
the download, the peak during it, and the delta (the cost of the download
itself), plus the peak RSS of the whole process (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "target" / "release" / "fhir-async-testserver"

CHILD = r"""
import json, resource, sys, threading, time
import psutil
import fhir_async
base, out, conc = sys.argv[1], sys.argv[2], int(sys.argv[3])
proc = psutil.Process()
client = fhir_async.Client(base, retry={"min_wait_ms": 20, "initial_backoff_ms": 20})
t0 = time.monotonic()
result = client.export(types=["Patient"]).wait(raise_on_failure=True)
t1 = time.monotonic()
before = proc.memory_info().rss
peak = [before]
done = threading.Event()
def sample():
    while not done.wait(0.005):
        peak[0] = max(peak[0], proc.memory_info().rss)
t = threading.Thread(target=sample, daemon=True)
t.start()
paths = result.download(out, concurrency=conc)
t2 = time.monotonic()
peak[0] = max(peak[0], proc.memory_info().rss)
done.set()
t.join()
mib = 1 << 20
print(json.dumps({
    "files": len(paths),
    "wait_s": round(t1 - t0, 2),
    "download_s": round(t2 - t1, 2),
    "rss_before_download_mib": round(before / mib, 1),
    "rss_peak_during_download_mib": round(peak[0] / mib, 1),
    "download_delta_mib": round((peak[0] - before) / mib, 1),
    "process_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    server = subprocess.Popen(
        [str(SERVER), "--addr", "127.0.0.1:0", "--exit-on-stdin-eof", "--patients", str(args.files),
         "--file-resources", "1", "--job-ms", "100", "--retry-after", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[-1]
        server.stdout.readline()
        with tempfile.TemporaryDirectory() as out:
            r = subprocess.run([sys.executable, "-c", CHILD, f"{url}/bulk/fhir", out, str(args.concurrency)],
                               capture_output=True, text=True, check=False)
            if r.returncode != 0:
                sys.exit(f"child failed:\n{r.stderr}")
            print(r.stdout.strip())
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
