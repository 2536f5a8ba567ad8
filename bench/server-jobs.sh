#!/usr/bin/env bash
# Concurrent jobs: kick off N (default 1000) bulk exports that stay running, poll each of them
# twice (50 client threads), and report the server's RSS before and after.
# Usage: bench/server-jobs.sh [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-1000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
# BIN=path/to/fhir-async-testserver skips the build.
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p fhir-async-testserver
  BIN="$CARGO_TARGET_DIR/release/fhir-async-testserver"
fi
OUT=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$OUT"' EXIT
"$BIN" --job-ms 600000 >"$OUT/server.out" &
PID=$!
for _ in $(seq 100); do grep -q '^storage on' "$OUT/server.out" 2>/dev/null && break; sleep 0.05; done
ORIGIN=$(head -1 "$OUT/server.out" | sed 's/^listening on //')
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$PID/status"; }
echo "RSS idle: $(rss)"
python3 - "$ORIGIN" "$JOBS" <<'PY'
import sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
origin, n = sys.argv[1], int(sys.argv[2])
def kick(i):
    req = urllib.request.Request(f"{origin}/bulk/fhir/$export?_type=Patient,Observation",
                                 headers={"Prefer": "respond-async"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 202
        return r.headers["Content-Location"]
def poll(url):
    with urllib.request.urlopen(url) as r:
        assert r.status == 202, r.status
t = time.time()
with ThreadPoolExecutor(50) as ex:
    locs = list(ex.map(kick, range(n)))
t1 = time.time()
with ThreadPoolExecutor(50) as ex:
    list(ex.map(poll, locs + locs))
t2 = time.time()
print(f"jobs={n} kickoffs={t1-t:.2f}s ({n/(t1-t):.0f}/s) polls={2*n} in {t2-t1:.2f}s ({2*n/(t2-t1):.0f}/s)")
PY
echo "RSS with $JOBS running jobs: $(rss)"
