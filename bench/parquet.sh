#!/usr/bin/env bash
# Issue 15's benchmark: NDJSON -> Parquet (zstd level 3), ours vs pyarrow vs DuckDB, side by side
# in one run on the same files: the reference server's whole system $export (one file per type),
# downloaded once with `fhir-async export`, then converted by each contender into its own folder:
# - ours:    `fhir-async parquet DATA --out OUT` (fhir_async_client::tables::folder_to_parquet:
#            streaming, types in parallel, row groups of <= 65,536 rows / 128 MiB);
# - pyarrow: per file `pyarrow.json.read_json` + `pyarrow.parquet.write_table(compression="zstd",
#            compression_level=3)`;
# - DuckDB:  per file `COPY (SELECT * FROM read_json_auto(FILE)) TO OUT (FORMAT parquet,
#            COMPRESSION zstd, COMPRESSION_LEVEL 3)`.
# Measured from outside by GNU time (`/usr/bin/time -f '%e %M %U %S'`: wall s, peak RSS KiB,
# user s, system s). Throughput = NDJSON bytes / wall. Every output's row counts are checked equal.
#
# Usage: bench/parquet.sh [PATIENTS] [ROUNDS]   (defaults 110000 = 1.07 GB of NDJSON, 1 round)
# Env: SERVER=path, CLI=path skip the builds; PY=python with pyarrow and duckdb
#      (default .venv/bin/python, installed there with pip if missing); KEEP=1 keeps the work folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PATIENTS=${1:-110000}
ROUNDS=${2:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
T=$CARGO_TARGET_DIR

[ -x /usr/bin/time ] && /usr/bin/time -f '%e' true 2>/dev/null \
  || { echo "needs GNU time at /usr/bin/time (Debian/Ubuntu: apt-get install time)" >&2; exit 1; }
if [ -z "${SERVER:-}" ] || [ -z "${CLI:-}" ]; then
  cargo build --release -q -p fhir-async-testserver -p fhir-async-cli
fi
SERVER=${SERVER:-$T/release/fhir-async-testserver}
CLI=${CLI:-$T/release/fhir-async}
PY=${PY:-.venv/bin/python}
if ! "$PY" -c 'import pyarrow, duckdb' 2>/dev/null; then
  [ -x "$PY" ] || python3 -m venv .venv
  "$PY" -m pip install -q pyarrow duckdb
fi

WORK=$T/bench-parquet/run.$$
mkdir -p "$WORK"
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
"$SERVER" --patients "$PATIENTS" --job-ms 0 --retry-after 0 >"$WORK/server.out" &
SPID=$!
for _ in $(seq 200); do grep -q '^storage on' "$WORK/server.out" 2>/dev/null && break; sleep 0.05; done
ORIGIN=$(head -1 "$WORK/server.out" | sed 's/^listening on //')
"$CLI" export --base "$ORIGIN/bulk/fhir" --out "$WORK/job" --json >/dev/null
kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
# The data files only (the job folder also has its log.ndjson).
mkdir -p "$WORK/data" && mv "$WORK"/job/*.[0-9][0-9][0-9].ndjson "$WORK/data/"
BYTES=$(cat "$WORK"/data/*.ndjson | wc -c)
FILES=$(ls "$WORK"/data/*.ndjson | wc -l)

cat >"$WORK/pa.py" <<'PY'
import os, sys
import pyarrow.json as pj, pyarrow.parquet as pq
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
for name in sorted(os.listdir(src)):
    if name.endswith(".ndjson"):
        table = pj.read_json(os.path.join(src, name))
        pq.write_table(table, os.path.join(out, name.split(".")[0] + ".parquet"),
                       compression="zstd", compression_level=3)
PY
cat >"$WORK/duck.py" <<'PY'
import os, sys
import duckdb
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
con = duckdb.connect()
for name in sorted(os.listdir(src)):
    if name.endswith(".ndjson"):
        dest = os.path.join(out, name.split(".")[0] + ".parquet")
        con.execute(f"COPY (SELECT * FROM read_json_auto('{os.path.join(src, name)}')) TO '{dest}' "
                    "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3)")
PY
cat >"$WORK/rows.py" <<'PY'
import os, sys
import pyarrow.parquet as pq
d = sys.argv[1]
print(" ".join(f"{n.split('.')[0]}={pq.ParquetFile(os.path.join(d, n)).metadata.num_rows}"
               for n in sorted(os.listdir(d)) if n.endswith(".parquet")))
PY

# run NAME ROUND CMD... : one contender; appends a row to $WORK/rows.tsv
run() {
  local name=$1 round=$2; shift 2
  local out=$WORK/out.$name
  rm -rf "$out"; sync
  /usr/bin/time -o "$WORK/time" -f '%e %M %U %S' "$@" "$out" >/dev/null 2>"$WORK/err" \
    || { cat "$WORK/err" >&2; exit 1; }
  read -r wall rss user sys <"$WORK/time"
  local size rows
  size=$(cat "$out"/*.parquet | wc -c)
  rows=$("$PY" "$WORK/rows.py" "$out")
  echo "$rows" >"$WORK/rows.$name"
  awk -v n="$name" -v r="$round" -v w="$wall" -v m="$rss" -v u="$user" -v s="$sys" -v b="$BYTES" -v z="$size" \
    'BEGIN { printf "| %d | %s | %.2f | %.0f | %.0f | %.2f | %.1f |\n", r, n, w, b / w / 1e6, m / 1024, u + s, z / 1e6 }' \
    >>"$WORK/rows.tsv"
}

echo "data: $FILES files, $BYTES bytes of NDJSON ($PATIENTS patients); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  run ours "$round" "$CLI" parquet "$WORK/data" --out
  run pyarrow "$round" "$PY" "$WORK/pa.py" "$WORK/data"
  run duckdb "$round" "$PY" "$WORK/duck.py" "$WORK/data"
done
for name in pyarrow duckdb; do
  cmp -s "$WORK/rows.ours" "$WORK/rows.$name" \
    || { echo "row counts differ: ours $(cat "$WORK/rows.ours") vs $name $(cat "$WORK/rows.$name")" >&2; exit 1; }
done
echo "rows (all three): $(cat "$WORK/rows.ours")"
echo "| round | contender | wall s | MB/s | peak RSS MiB | CPU s (user+sys) | Parquet MB |"
echo "|---|---|---|---|---|---|---|"
cat "$WORK/rows.tsv"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
