#!/usr/bin/env bash
# The Python suite: builds the extension into .venv (reusing the build on a
# second run), then pytest (warnings are errors), mypy --strict on a typed
# usage file, stubtest on the native stubs, and the example notebook.
# Needs target/release/fhir-async-testserver (`make server` builds it).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=$VENV/bin/python
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

# Debian packages (python3-venv, a C compiler): installed when missing, issue 10 §4.
bash "$ROOT/scripts/ensure-deps.sh" python

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
fi
REQS="maturin>=1.7,<2 pytest pytest-timeout mypy pandas-stubs types-tqdm nbclient nbformat ipykernel ipywidgets pandas tqdm orjson matplotlib psutil pyarrow pyarrow-stubs polars duckdb dask distributed"
STAMP=$VENV/.fhir-async-deps
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$REQS" ]; then
    "$PY" -m pip install -q --upgrade pip
    # shellcheck disable=SC2086
    "$PY" -m pip install -q $REQS
    echo "$REQS" > "$STAMP"
fi

# `maturin develop` rebuilds only what changed (cargo), then installs the
# package editable: python/fhir_async with _native inside it.
(cd python && VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH "$VENV/bin/maturin" develop --release -q)

export MPLBACKEND=Agg
export PYTHONDONTWRITEBYTECODE=1
cd python
"$PY" -m pytest -q -p no:cacheprovider tests
"$PY" -m mypy --strict --no-incremental tests/typed_usage.py fhir_async
"$PY" -m mypy.stubtest fhir_async._native --allowlist tests/stubtest_allowlist.txt
echo "python suite: all passed"
