#!/usr/bin/env bash
# The "xargs -P 4 curl" contender of bench/attachments.sh: every URL of URL_FILE with 4 curls at
# once, each body written to a file in OUT_DIR; the bearer token only on the FHIR origin ORIGIN
# (what a careful script would do; bulk-data-client and smart-fetch send it everywhere).
# Usage: bench/cli/curl_attachments.sh URL_FILE OUT_DIR ORIGIN TOKEN
set -euo pipefail
URLS=$1 OUT=$2 ORIGIN=$3 TOKEN=$4
mkdir -p "$OUT"
cd "$OUT"
export ORIGIN TOKEN
xargs -P 4 -n 1 sh -c 'case "$1" in "$ORIGIN"/*) exec curl -sf -H "Authorization: Bearer $TOKEN" -O "$1" ;; *) exec curl -sf -O "$1" ;; esac' _ <"$URLS"
