#!/usr/bin/env bash
# Issue 14's benchmark, one run on one reference server and the same export:
#  1. bodies cut every CUT bytes (server fault `cut=CUT`, offsets in the encoded body: gzip on the
#     wire, as the client asks): `fhir-async export` resuming by byte range, against the same
#     command on a server that refuses ranges (`cut=CUT;norange`: the client restarts each cut file
#     from byte 0, i.e. what every download did before issue 14), and a clean export without cuts
#     (the bytes of the files on the wire). Bytes on the wire come from the server
#     (/_admin/stats `file_bytes_sent`, reset before each export); wall time, peak RSS, CPU from GNU
#     time; every output is compared byte for byte with the clean export's.
#  2. the per-origin concurrency controller against a server that allows 2 file downloads at once
#     per job (`conn=2`: a third gets 429 + Retry-After: 1), with `--concurrency 6`: the `limit`
#     events of `--json` (the controller's trace), the server's 429 count and max_files_in_flight.
#     Bodies are throttled to SLOW bytes/s per download (fault `slow`, a remote server's rate):
#     on loopback a body is CPU-bound and the 2-core server's runtime never holds more than 2
#     downloads at once, so without it `conn=2` would never fire.
#
# Usage: bench/cli_resume.sh [PATIENTS] [FILE_RESOURCES] [CUT] [ROUNDS] [SLOW]
#        (defaults 30000 20000 400000 2 2000000)
# Env: SERVER=path, CLI=path skip the builds. Needs curl, jq, python3 and GNU time
# (Debian/Ubuntu: `apt-get install time`).
set -euo pipefail
cd "$(dirname "$0")/.."
PATIENTS=${1:-30000}
FILE_RESOURCES=${2:-20000}
CUT=${3:-400000}
ROUNDS=${4:-2}
SLOW=${5:-2000000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
T=$CARGO_TARGET_DIR
[ -x /usr/bin/time ] && /usr/bin/time -f '%e' true 2>/dev/null \
  || { echo "needs GNU time at /usr/bin/time (Debian/Ubuntu: apt-get install time)" >&2; exit 1; }
for c in curl jq python3; do command -v $c >/dev/null || { echo "$c is required" >&2; exit 1; }; done
if [ -z "${SERVER:-}" ] || [ -z "${CLI:-}" ]; then
  cargo build --release -q -p fhir-async-testserver -p fhir-async-cli
fi
SERVER=${SERVER:-$T/release/fhir-async-testserver}
CLI=${CLI:-$T/release/fhir-async}

WORK=$T/bench-cli/resume.$$
mkdir -p "$WORK"
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
"$SERVER" --patients "$PATIENTS" --file-resources "$FILE_RESOURCES" --job-ms 0 --retry-after 0 \
  >"$WORK/server.out" &
SPID=$!
for _ in $(seq 200); do grep -q '^storage on' "$WORK/server.out" 2>/dev/null && break; sleep 0.05; done
ORIGIN=$(head -1 "$WORK/server.out" | sed 's/^listening on //')
echo "server $ORIGIN: --patients $PATIENTS --file-resources $FILE_RESOURCES; cut=$CUT; rounds $ROUNDS; slow=$SLOW;" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%H:%M) UTC" >&2

# run NAME SPEC [ARGS...]: one `fhir-async export` of the whole system under fault prefix SPEC.
# Leaves $WORK/NAME.{events,time,stats,rc,sums}.
run() {
  local name=$1 spec=$2; shift 2
  local base=$ORIGIN/bulk/fhir out=$WORK/out.$name rc=0
  [ -n "$spec" ] && base=$ORIGIN/_f/$spec/bulk/fhir
  rm -rf "$out"; sync
  curl -sf -X POST "$ORIGIN/_admin/reset" >/dev/null
  /usr/bin/time -f '%e %M %U %S' -o "$WORK/$name.time" \
    "$CLI" export --base "$base" --out "$out" --json "$@" >"$WORK/$name.events" 2>"$WORK/$name.stderr" || rc=$?
  echo "$rc" >"$WORK/$name.rc"
  curl -sf "$ORIGIN/_admin/stats" | jq -c '{file_bytes_sent, max_files_in_flight, files}' >"$WORK/$name.stats"
  (cd "$out" && find . -name '*.ndjson' ! -name log.ndjson -exec sha256sum {} + | sort -k2) >"$WORK/$name.sums"
  rm -rf "$out"
}

for r in $(seq "$ROUNDS"); do
  run "clean.$r" ""
  run "range.$r" "cut=$CUT"
  run "restart.$r" "cut=$CUT;norange"
done
run "conn2" "conn=2;slow=$SLOW" --concurrency 6
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$WORK" "$ROUNDS" "$CUT" <<'PY'
import json, sys
from pathlib import Path
w, rounds, cut = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def load(name):
    ev = [json.loads(l) for l in (w / f"{name}.events").read_text().splitlines() if l.startswith("{")]
    wall, rss, user, sys_ = (w / f"{name}.time").read_text().split()[-4:]
    return dict(ev=ev, wall=float(wall), rss=int(rss) / 1024, cpu=float(user) + float(sys_),
                stats=json.loads((w / f"{name}.stats").read_text()), rc=int((w / f"{name}.rc").read_text()),
                sums=(w / f"{name}.sums").read_text())
clean1 = load("clean.1")
files = [e for e in clean1["ev"] if e["event"] == "file.finished"]
size = sum(e["bytes"] for e in files)
print(f"export: {len(files)} files, {size:,} bytes ({size/1e6:.0f} MB) of NDJSON; "
      f"gzip on the wire {clean1['stats']['file_bytes_sent']:,} bytes; bodies cut every {cut:,} encoded bytes")
print()
print("| round | download | exit | wall s | bytes on the wire | × clean | 200 / 206 / 200-to-range / cuts | extra attempts | failed files | identical to clean | peak RSS MiB | CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in range(1, rounds + 1):
    base = load(f"clean.{r}")["stats"]["file_bytes_sent"]
    for kind, label in (("clean", "clean (no cuts)"), ("range", "us: range resume (`cut`)"),
                        ("restart", "restart files (`cut;norange`)")):
        x = load(f"{kind}.{r}")
        f = x["stats"]["files"]
        extra = sum(1 for e in x["ev"] if e["event"] == "file.started" and e.get("attempt", 1) > 1)
        failed = sum(1 for e in x["ev"] if e["event"] == "file.failed")
        b = x["stats"]["file_bytes_sent"]
        same = "yes" if x["sums"] == clean1["sums"] else "**no**"
        print(f"| {r} | {label} | {x['rc']} | {x['wall']:.2f} | {b:,} | {b/base:.2f} | "
              f"{f['200']} / {f['206']} / {f['200_to_range']} / {f['cut']} | {extra} | {failed} | {same} | "
              f"{x['rss']:.0f} | {x['cpu']:.2f} |")
print()
x = load("conn2")
f = x["stats"]["files"]
failed = sum(1 for e in x["ev"] if e["event"] == "file.failed")
t0 = next(e["t"] for e in x["ev"] if e["event"] == "file.started")
print(f"conn=2 (bodies at the `slow` rate), --concurrency 6: exit {x['rc']}, wall {x['wall']:.2f} s, {f['200']} files of 200, "
      f"{f['429']} answers 429, server max_files_in_flight {x['stats']['max_files_in_flight']}, "
      f"failed files {failed}, identical to clean: {'yes' if x['sums'] == clean1['sums'] else 'no'}")
print()
print("| t since first file (ms) | limit from → to | reason |")
print("|---|---|---|")
for e in x["ev"]:
    if e["event"] == "limit":
        print(f"| {e['t'] - t0} | {e['from']} → {e['to']} | {e['reason']} |")
PY
