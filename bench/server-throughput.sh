#!/usr/bin/env bash
# Throughput of the reference server: 4 parallel curls download every NDJSON file of a big
# export (identity encoding) over loopback; prints GB/s.
# Usage: bench/server-throughput.sh [PATIENTS] [PARALLEL]   (defaults: 210000 patients ≈ 2.05 GB, 4)
set -euo pipefail
cd "$(dirname "$0")/.."
PATIENTS=${1:-210000}
PAR=${2:-4}
FILE_RESOURCES=${FILE_RESOURCES:-100000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }
# BIN=path/to/fhir-async-testserver skips the build.
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p fhir-async-testserver
  BIN="$CARGO_TARGET_DIR/release/fhir-async-testserver"
fi
OUT=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$OUT"' EXIT
"$BIN" --patients "$PATIENTS" --job-ms 0 --file-resources "$FILE_RESOURCES" >"$OUT/server.out" &
PID=$!
for _ in $(seq 100); do grep -q '^storage on' "$OUT/server.out" 2>/dev/null && break; sleep 0.05; done
ORIGIN=$(head -1 "$OUT/server.out" | sed 's/^listening on //')
LOC=$(curl -s -D - -o /dev/null -H 'Prefer: respond-async' "$ORIGIN/bulk/fhir/\$export" | tr -d '\r' | sed -n 's/^content-location: //Ip')
curl -s "$LOC" >"$OUT/manifest.json"
python3 -c 'import json,sys; [print(o["url"]) for o in json.load(open(sys.argv[1]))["output"]]' "$OUT/manifest.json" >"$OUT/urls"
NFILES=$(wc -l <"$OUT/urls")
START=$(date +%s.%N)
xargs -P "$PAR" -n 1 curl -s -o /dev/null -w '%{size_download}\n' <"$OUT/urls" >"$OUT/sizes"
END=$(date +%s.%N)
python3 - "$OUT/sizes" "$START" "$END" "$NFILES" "$PATIENTS" "$PAR" <<'PY'
import sys
sizes = [int(x) for x in open(sys.argv[1]) if x.strip()]
secs = float(sys.argv[3]) - float(sys.argv[2])
total = sum(sizes)
print(f"patients={sys.argv[5]} files={sys.argv[4]} parallel={sys.argv[6]} bytes={total} "
      f"({total/1e9:.2f} GB) time={secs:.2f}s throughput={total/1e9/secs:.2f} GB/s")
PY
