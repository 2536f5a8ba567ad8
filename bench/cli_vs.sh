#!/usr/bin/env bash
# Issue 13's benchmark: `fhir-async export` (the command line) side by side with 4 parallel curls
# and with smart-fetch (PyPI) on one reference server and the same export, in one run.
# Each contender does a whole export into its own folder on local disk: kick-off, poll, download
# every file (4 at once; gzip on the wire, written decoded). Measured from outside by GNU time
# (`/usr/bin/time -f '%e %M %U %S'`: wall s, peak RSS KiB, user s, system s; the curls run as one
# bash script, so their CPU is the sum over every curl and their RSS the largest single process).
# The server's CPU per contender is read from /proc; the access log gives each contender's
# download window (first file request -> process exit).
#
# Usage: bench/cli_vs.sh [PATIENTS] [FILE_RESOURCES] [ROUNDS]   (defaults 30000 20000 3)
# Env: SERVER=path, CLI=path skip the builds; SMART_FETCH=path (or "" to leave smart-fetch out;
#      default: target/bench-venv/bin/smart-fetch, installed there with pip if missing).
# Needs curl, python3 (venv) and GNU time (Debian/Ubuntu: `apt-get install time`).
set -euo pipefail
cd "$(dirname "$0")/.."
PATIENTS=${1:-30000}
FILE_RESOURCES=${2:-20000}
ROUNDS=${3:-3}
TYPES=Patient,Encounter,Observation,Condition,MedicationRequest,Procedure
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
if [ -z "${SMART_FETCH+x}" ]; then
  SMART_FETCH=$T/bench-venv/bin/smart-fetch
  if [ ! -x "$SMART_FETCH" ]; then
    python3 -m venv "$T/bench-venv"
    "$T/bench-venv/bin/pip" install -q smart-fetch
  fi
fi

WORK=$T/bench-cli/run.$$
mkdir -p "$WORK"
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
"$SERVER" --patients "$PATIENTS" --file-resources "$FILE_RESOURCES" --job-ms 0 --retry-after 0 \
  --log "$WORK/access.log" >"$WORK/server.out" &
SPID=$!
for _ in $(seq 200); do grep -q '^storage on' "$WORK/server.out" 2>/dev/null && break; sleep 0.05; done
ORIGIN=$(head -1 "$WORK/server.out" | sed 's/^listening on //')
BASE=$ORIGIN/bulk/fhir
TICK=$(getconf CLK_TCK)
server_cpu() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }
now_ms() { date +%s%3N; }

# run NAME ROUND CMD... : one contender, one export; appends a row to $WORK/rows.tsv
run() {
  local name=$1 round=$2; shift 2
  local out=$WORK/out.$name
  rm -rf "$out"; sync
  local c0 t0 t1 c1
  c0=$(server_cpu); t0=$(now_ms)
  if ! /usr/bin/time -f '%e %M %U %S' -o "$WORK/time" "$@" >"$WORK/stdout.$name" 2>"$WORK/stderr.$name"; then
    echo "$name failed:" >&2; tail -5 "$WORK/stderr.$name" >&2; exit 1
  fi
  t1=$(now_ms); c1=$(server_cpu)
  local first bytes files
  first=$(awk -v t0="$t0" '$1 >= t0 && $4 ~ /\/_files\// {print $1; exit}' "$WORK/access.log")
  bytes=$(find "$out" -name '*.ndjson' ! -name log.ndjson -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  files=$(find "$out" -name '*.ndjson' ! -name log.ndjson | wc -l)
  read -r wall rss user sys <"$WORK/time"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$wall" "$rss" "$user" "$sys" \
    "$(awk -v a="$c0" -v b="$c1" -v t="$TICK" 'BEGIN {printf "%.2f", (b - a) / t}')" \
    "$(awk -v a="$first" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1000}')" "$bytes" "$files" \
    >>"$WORK/rows.tsv"
  [ "$name" = curl-x4 ] && cat "$WORK/stdout.$name" >"$WORK/wire"
  rm -rf "$out"
}

contenders=(curl-x4 fhir-async)
[ -n "$SMART_FETCH" ] && contenders+=(smart-fetch)
echo "server $ORIGIN: --patients $PATIENTS --file-resources $FILE_RESOURCES; rounds $ROUNDS;" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%H:%M) UTC" >&2
n=${#contenders[@]}
for r in $(seq "$ROUNDS"); do
  for i in $(seq 0 $((n - 1))); do   # the order rotates from round to round
    c=${contenders[$(( (i + r - 1) % n ))]}
    case $c in
      curl-x4) run "$c" "$r" bench/cli/curl_export.sh "$BASE" "$WORK/out.$c" 4 ;;
      fhir-async) run "$c" "$r" "$CLI" export --base "$BASE" --out "$WORK/out.$c" --concurrency 4 --json ;;
      smart-fetch) run "$c" "$r" "$SMART_FETCH" bulk --fhir-url "$BASE" --type "$TYPES" \
                     --no-default-filters --no-compression "$WORK/out.$c" ;;
    esac
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$WORK/rows.tsv" "$(cat "$WORK/wire" 2>/dev/null || echo 0)" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
wire = int(sys.argv[2])
sizes = {(r[8], r[9]) for r in rows}
b, f = rows[0][8], rows[0][9]
print(f"export: {int(f)} files, {int(b):,} bytes ({int(b)/1e6:.0f} MB) of NDJSON, "
      f"{wire:,} bytes ({wire/1e6:.0f} MB) gzip on the wire"
      + ("" if len(sizes) == 1 else f"  ** SIZES DIFFER: {sorted(sizes)} **"))
print()
print("| round | contender | wall s | MB/s | peak RSS MiB | CPU s (user+sys) | server CPU s | download window s |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    rnd, name, wall, rss, user, sys_, scpu, win, nbytes, _ = r
    wall = float(wall)
    print(f"| {rnd} | {name} | {wall:.2f} | {int(nbytes)/1e6/wall:.0f} | {int(rss)/1024:.0f} | "
          f"{float(user)+float(sys_):.2f} ({user}+{sys_}) | {scpu} | {win} |")
print()
print("| contender (median) | wall s | peak RSS MiB | CPU s |")
print("|---|---|---|---|")
for name in dict.fromkeys(r[1] for r in rows):
    rs = [r for r in rows if r[1] == name]
    med = lambda k: statistics.median(k(r) for r in rs)
    print(f"| {name} | {med(lambda r: float(r[2])):.2f} | {med(lambda r: int(r[3]))/1024:.0f} | "
          f"{med(lambda r: float(r[4]) + float(r[5])):.2f} |")
PY
