"""Download benchmark: fhir_async vs 4 parallel curls vs smart-fetch, on one
reference server and one data set, in one run.

    python python/bench/download.py --patients 110000      # about 1 GB of NDJSON

Each contender runs in its own process; wall time and peak RSS (wait4
ru_maxrss) are measured from outside. Prints a Markdown table and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "target" / "release" / "fhir-async-testserver"

CHILD = r"""
import json, sys, time
import fhir_async
base, conc, gzip, mode, out = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
client = fhir_async.Client(base, retry={"min_wait_ms": 50, "initial_backoff_ms": 50})
t0 = time.monotonic()
if mode == "resume":
    job = client.resume(open(out + ".state").read())
else:
    job = client.export()
result = job.wait(raise_on_failure=True)
t1 = time.monotonic()
paths = result.download(out, concurrency=conc, gzip=gzip)
t2 = time.monotonic()
print(json.dumps({"wait_s": t1 - t0, "download_s": t2 - t1,
                  "resources": sum(r["resources"] for r in result.last_reports),
                  "bytes": sum(p.stat().st_size for p in paths), "files": len(paths)}))
"""


LAST_CPU = [0.0]


def run_measured(cmd: List[str], **kw: Any) -> Tuple[float, int, str]:
    """(wall seconds, peak RSS in MiB, stdout) of a child process; its CPU
    seconds (user + system) are left in LAST_CPU."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True, **kw)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        LAST_CPU[0] = usage.ru_utime + usage.ru_stime
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({p.returncode}): {err.read()[-2000:]} {out.read()[-1000:]}")
        return wall, usage.ru_maxrss // 1024, out.read()


def start_server(patients: int, file_resources: int) -> Tuple["subprocess.Popen[str]", str]:
    p = subprocess.Popen(
        [str(SERVER), "--addr", "127.0.0.1:0", "--exit-on-stdin-eof", "--patients", str(patients),
         "--file-resources", str(file_resources), "--job-ms", "100", "--retry-after", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert p.stdout is not None
    url = p.stdout.readline().split()[-1]
    p.stdout.readline()
    return p, url


def dir_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=110_000)
    ap.add_argument("--file-resources", type=int, default=100_000, help="lines per NDJSON file")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--gzip", action="store_true", help="ask for gzip (the server compresses on the fly)")
    ap.add_argument("--smart-fetch", default=shutil.which("smart-fetch"), help="path of the smart-fetch CLI")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--e2e-concurrency", type=int, default=8,
                    help="connections of the end-to-end run compared with smart-fetch (the API default)")
    ap.add_argument("--reps", type=int, default=3, help="curl / fhir_async rounds (median reported)")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="fhir-async-bench-"))
    server, url = start_server(args.patients, args.file_resources)
    base = url + "/bulk/fhir"
    rows: Dict[str, Dict[str, Any]] = {}
    try:
        # One export whose files every contender downloads (the job state is shared by resume).
        import fhir_async

        client = fhir_async.Client(base, retry={"min_wait_ms": 50, "initial_backoff_ms": 50})
        job = client.export()
        result = job.wait(raise_on_failure=True)
        urls = [f["url"] for f in result.files]
        expected = sum(f["expectedCount"] or 0 for f in result.files)

        # 1 and 2, alternating, --reps times: curl x4, and fhir_async downloading
        # the same finished job (resumed from its saved state).
        listing = work / "urls.txt"
        listing.write_text("".join(f"{u}\n" for u in urls))
        script = 'curl -sS --fail -o "$0/$(echo "$1" | md5sum | cut -c1-16).ndjson" "$1"'
        fdir = work / "fhir_async"
        Path(str(fdir) + ".state").write_text(job.to_json())
        curl_runs: List[Dict[str, Any]] = []
        ours_runs: List[Dict[str, Any]] = []
        for _ in range(args.reps):
            cdir = work / "curl"
            cdir.mkdir(parents=True, exist_ok=True)
            wall, rss, _ = run_measured(
                ["sh", "-c", f'xargs -P {args.concurrency} -n 1 sh -c \'{script}\' "{cdir}" < "{listing}"']
            )
            curl_runs.append({"seconds": wall, "peak_rss_mib": rss, "bytes": dir_bytes(cdir), "cpu_s": LAST_CPU[0]})
            shutil.rmtree(cdir)
            os.sync()  # no writeback of one contender's files during the next one
            fdir.mkdir()
            wall, rss, out = run_measured(
                [sys.executable, "-c", CHILD, base, str(args.concurrency), "1" if args.gzip else "0", "resume", str(fdir)]
            )
            info = json.loads(out)
            assert info["resources"] == expected, (info, expected)
            ours_runs.append({"seconds": info["download_s"], "process_seconds": wall, "peak_rss_mib": rss,
                              "bytes": info["bytes"], "cpu_s": LAST_CPU[0]})
            shutil.rmtree(fdir)
            os.sync()

        def median(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
            ordered = sorted(runs, key=lambda r: r["seconds"])
            chosen = dict(ordered[len(ordered) // 2])
            chosen["all_seconds"] = [round(r["seconds"], 2) for r in runs]
            chosen["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
            return chosen

        rows["curl x4"] = median(curl_runs)
        rows["fhir_async download"] = median(ours_runs)
        os.sync()
        fdir.mkdir()
        wall, rss, out = run_measured(
            [sys.executable, "-c", CHILD, base, str(args.e2e_concurrency), "1" if args.gzip else "0", "export", str(fdir)]
        )
        info = json.loads(out)
        rows["fhir_async export+download"] = {"seconds": wall, "peak_rss_mib": rss, "bytes": info["bytes"],
                                              "wait_s": info["wait_s"], "download_s": info["download_s"],
                                              "cpu_s": LAST_CPU[0]}
        shutil.rmtree(fdir)
        os.sync()

        # 3. smart-fetch, end to end (it kicks off, polls and downloads itself).
        if args.smart_fetch:
            sdir = work / "smart-fetch"
            try:
                wall, rss, _ = run_measured(
                    [args.smart_fetch, "bulk", "--fhir-url", base, "--no-compression", str(sdir)]
                )
                rows["smart-fetch bulk"] = {"seconds": wall, "peak_rss_mib": rss, "bytes": dir_bytes(sdir),
                                            "cpu_s": LAST_CPU[0]}
            except RuntimeError as e:
                rows["smart-fetch bulk"] = {"error": str(e)[-500:]}
            shutil.rmtree(sdir, ignore_errors=True)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)

    gb = rows["curl x4"]["bytes"] / 1e9
    if rows["curl x4"]["bytes"] != rows["fhir_async download"]["bytes"]:
        print("warning: curl and fhir_async wrote different byte counts")
    print(f"data: {args.patients} patients, {len(urls)} files, {gb:.2f} GB, {expected} resources, "
          f"concurrency {args.concurrency} (end to end: {args.e2e_concurrency}), gzip {'on' if args.gzip else 'off'}")
    print("| contender | seconds | MB/s | CPU s | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        if "error" in r:
            print(f"| {name} | failed: {r['error'][:200]!r} | | |")
            continue
        print(f"| {name} | {r['seconds']:.2f} | {r['bytes'] / 1e6 / r['seconds']:.0f} | {r['cpu_s']:.2f} "
              f"| {r['peak_rss_mib']} |")
    curl_s = rows["curl x4"]["seconds"]
    ours = rows["fhir_async download"]["seconds"]
    ours_proc = rows["fhir_async download"]["process_seconds"]
    print(f"fhir_async download speed vs curl x4: {curl_s / ours:.2f}x "
          f"({curl_s / ours_proc:.2f}x counting Python start-up and import)")
    sf = rows.get("smart-fetch bulk", {})
    if "seconds" in sf:
        e2e = rows["fhir_async export+download"]
        print(f"vs smart-fetch (end to end): {sf['seconds'] / e2e['seconds']:.1f}x faster, "
              f"peak RSS {e2e['peak_rss_mib']} vs {sf['peak_rss_mib']} MiB")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
