#!/usr/bin/env bash
# `make demo`: `fhir-async export` with a live progress bar, against the bundled
# reference server (started here on 127.0.0.1, port 0, and stopped with the demo),
# or against a real server: `make demo SERVER=https://... TOKEN=...`.
# Writes ./demo-output/ and prints the summary table.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cli=target/release/fhir-async
out=${OUT:-demo-output}
if [[ -n ${SERVER:-} ]]; then
  exec "$cli" export --base "$SERVER" ${TOKEN:+--token "$TOKEN"} --out "$out" "$@"
fi
# The bundled server's jobs live as long as it does: a fresh folder each run.
rm -rf "$out"
fifo=$(mktemp -u)
mkfifo "$fifo"
# --exit-on-stdin-eof: the server ends with this script, whatever happens.
exec 3> >(target/release/fhir-async-testserver --patients "${PATIENTS:-2000}" --job-ms 4000 --retry-after 1 \
  --file-resources 5000 --exit-on-stdin-eof >"$fifo")
read -r first <"$fifo"
url=${first#listening on }
rm -f "$fifo"
echo "reference server at $url (Bulk Data at $url/bulk/fhir)" >&2
"$cli" export --base "$url/bulk/fhir" --out "$out" "$@"
