#!/usr/bin/env bash
# The "4 parallel curls" contender of bench/cli_vs.sh: a whole Bulk Data export with curl alone:
# kick-off, poll until the manifest, then every file URL of the manifest with 4 curls at once
# (xargs -P 4), gzip on the wire (--compressed, decoded by curl), written to OUT_DIR.
# Prints the bytes received on the wire (sum of curl's size_download) on stdout.
# Usage: bench/cli/curl_export.sh BASE OUT_DIR [PARALLEL]
set -euo pipefail
BASE=$1 OUT=$2 PAR=${3:-4}
mkdir -p "$OUT"
LOC=$(curl -sf -D - -o /dev/null -H 'Prefer: respond-async' "$BASE/\$export" \
      | tr -d '\r' | sed -n 's/^content-location: //Ip')
[ -n "$LOC" ] || { echo "curl_export: no Content-Location" >&2; exit 1; }
for _ in $(seq 6000); do   # at most ~60 s
  CODE=$(curl -s -o "$OUT/.manifest.json" -w '%{http_code}' "$LOC")
  [ "$CODE" = 200 ] && break
  [ "$CODE" = 202 ] || { echo "curl_export: status $CODE" >&2; exit 1; }
  sleep 0.01
done
[ "$CODE" = 200 ] || { echo "curl_export: the job did not finish" >&2; exit 1; }
# Every file URL of the manifest (output and error entries); jq is not needed for this shape.
grep -o '"url":"[^"]*"' "$OUT/.manifest.json" | sed 's/^"url":"//; s/"$//' >"$OUT/.urls"
cd "$OUT"
xargs -P "$PAR" -n 1 curl -sf --compressed -O -w '%{size_download}\n' <.urls \
  | awk '{s += $1} END {print s}'
