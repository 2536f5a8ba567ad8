#!/usr/bin/env bash
# Issue 24's benchmark row: attachments per second against the reference server, 4 per origin,
# beside `xargs -P 4 curl` over the same URLs, in one run.
#
# The server's fault `attachments=N;attachbytes=B` adds N DocumentReferences to the `attach`
# dialect's export, each with one text attachment of B bytes (size and hash given), half of them
# `Binary/att-bulk-{k}` on the FHIR origin (a token needed), half on the storage origin.
# - fhir-async: `export --attachments files --max-per-origin 4`, measured by GNU time from
#   outside (wall, peak RSS), and the bulk attachments' own window read from its log.ndjson:
#   from the first one's start (`timestamp` - `durationMs` of `attachment_download_complete`) to
#   the last one's end. The dialect's ten fixed attachments come along (one always fails and is
#   retried for about 30 s, one is slow): the window leaves them out, the wall time does not.
#   An export with `--attachments off` gives the URLs for curl.
# - curl: the same URLs (read from the NDJSON the "off" run saved, `Binary/…` resolved against
#   the base), 4 curls at once (xargs -P 4), a bearer token only on the FHIR origin, each body
#   written to a file (no hash check: curl does not know the hashes).
#
# Usage: bench/attachments.sh [N] [BYTES] [ROUNDS]   (defaults 2000 4096 3)
# Env: SERVER=path, CLI=path skip the builds. Needs curl and GNU time (`apt-get install time`).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
BYTES=${2:-4096}
ROUNDS=${3:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
T=$CARGO_TARGET_DIR

[ -x /usr/bin/time ] && /usr/bin/time -f '%e' true 2>/dev/null \
  || { echo "needs GNU time at /usr/bin/time (Debian/Ubuntu: apt-get install time)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }
if [ -z "${SERVER:-}" ] || [ -z "${CLI:-}" ]; then
  cargo build --release -q -p fhir-async-testserver -p fhir-async-cli
fi
SERVER=${SERVER:-$T/release/fhir-async-testserver}
CLI=${CLI:-$T/release/fhir-async}

WORK=$T/bench-attachments/run.$$
mkdir -p "$WORK"
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
"$SERVER" --job-ms 0 --retry-after 0 >"$WORK/server.out" &
SPID=$!
for _ in $(seq 200); do grep -q '^storage on' "$WORK/server.out" 2>/dev/null && break; sleep 0.05; done
ORIGIN=$(head -1 "$WORK/server.out" | sed 's/^listening on //')
BASE="$ORIGIN/_f/attachments=$N;attachbytes=$BYTES/attach/fhir"
TOKEN=bench-token

# timed NAME CMD... : GNU time's "wall rss_kib" of one run into $WORK/time.NAME
timed() {
  local name=$1; shift
  if ! /usr/bin/time -f '%e %M' -o "$WORK/time.$name" "$@" >"$WORK/stdout.$name" 2>"$WORK/stderr.$name"; then
    echo "$name failed:" >&2; tail -5 "$WORK/stderr.$name" >&2; exit 1
  fi
}
# The URLs of the bulk attachments, as the NDJSON of an "off" export writes them.
urls() { # urls OUT_DIR
  cat "$1"/DocumentReference*.ndjson | grep -o '"url":"[^"]*att-bulk-[^"]*"' | sed 's/^"url":"//; s/"$//' \
    | while read -r u; do case $u in http*) echo "$u" ;; *) echo "$BASE/$u" ;; esac; done
}

echo "server $ORIGIN: $N attachments of $BYTES bytes (half on each origin); rounds $ROUNDS;" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%H:%M) UTC" >&2
printf '| round | contender | attachments s | attachments/s | peak RSS MiB |\n|---|---|---|---|---|\n'
for r in $(seq "$ROUNDS"); do
  rm -rf "$WORK/off" "$WORK/files" "$WORK/curl"
  timed off "$CLI" export --base "$BASE" --token "$TOKEN" --out "$WORK/off" --attachments off --json
  # Exit code 3: the dialect's always-failing attachment (the others are checked below).
  /usr/bin/time -f '%e %M' -o "$WORK/time.files" "$CLI" export --base "$BASE" --token "$TOKEN" \
    --out "$WORK/files" --attachments files --max-per-origin 4 --json >"$WORK/stdout.files" 2>"$WORK/stderr.files" \
    || [ $? -eq 3 ] || { echo "files failed:" >&2; tail -5 "$WORK/stderr.files" >&2; exit 1; }
  urls "$WORK/off" >"$WORK/urls"
  got=$(wc -l <"$WORK/urls")
  [ "$got" -eq "$N" ] || { echo "expected $N attachment URLs, found $got" >&2; exit 1; }
  saved=$(find "$WORK/files/attachments" -type f ! -name '*.tmp' | wc -l)
  [ "$saved" -ge "$N" ] || { echo "fhir-async saved $saved attachments, expected at least $N" >&2; exit 1; }
  window=$(python3 - "$WORK/files/log.ndjson" "$N" <<'PY'
import datetime, json, sys
starts, ends = [], []
for line in open(sys.argv[1]):
    e = json.loads(line)
    d = e.get("eventDetail") or {}
    if e.get("eventId") != "attachment_download_complete" or "att-bulk-" not in d.get("fileUrl", ""):
        continue
    t = datetime.datetime.fromisoformat(e["timestamp"]).timestamp()
    ends.append(t)
    starts.append(t - d.get("durationMs", 0) / 1000)
if len(ends) != int(sys.argv[2]):
    sys.exit(f"log.ndjson has {len(ends)} bulk attachments, expected {sys.argv[2]}")
print(f"{max(ends) - min(starts):.3f}")
PY
)
  timed curl bench/cli/curl_attachments.sh "$WORK/urls" "$WORK/curl" "$ORIGIN" "$TOKEN"
  fetched=$(find "$WORK/curl" -type f | wc -l)
  [ "$fetched" -eq "$N" ] || { echo "curl fetched $fetched of $N" >&2; exit 1; }
  read -r files_wall files_rss < <(tail -1 "$WORK/time.files")  # after "Command exited with non-zero status 3"
  read -r curl_wall curl_rss <"$WORK/time.curl"
  awk -v r="$r" -v n="$N" -v w="$window" -v files="$files_wall" -v frss="$files_rss" \
      -v curl="$curl_wall" -v crss="$curl_rss" 'BEGIN {
    printf "| %d | fhir-async export --attachments files (the whole export: %.2f s) | %.2f | %.0f | %.0f |\n", r, files, w, n / w, frss / 1024
    printf "| %d | xargs -P 4 curl | %.2f | %.0f | %.0f (one curl) |\n", r, curl, n / curl, crss / 1024
  }'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
