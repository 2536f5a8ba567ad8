#!/usr/bin/env bash
# Download benchmark (BENCHMARKS.md, ## Python): ~1 GB export from the reference
# server, fhir_async vs 4 parallel curls vs smart-fetch (installed into its own
# venv so it cannot disturb ours). Usage: bash python/bench/download.sh [PATIENTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
PATIENTS=${1:-110000}
[ -x target/release/fhir-async-testserver ] || cargo build --release -p fhir-async-testserver
[ -x .venv/bin/python ] || bash python/scripts/test.sh
SF_VENV=${SF_VENV:-/tmp/fhir-async-smart-fetch-venv}
if [ ! -x "$SF_VENV/bin/smart-fetch" ]; then
    python3 -m venv "$SF_VENV"
    "$SF_VENV/bin/pip" install -q smart-fetch
fi
exec .venv/bin/python python/bench/download.py --patients "$PATIENTS" --smart-fetch "$SF_VENV/bin/smart-fetch" "${@:2}"
