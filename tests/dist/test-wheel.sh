#!/usr/bin/env bash
# The wheel test (issue 22; `make test-dist`): the one abi3 wheel in dist/
# (`bash scripts/dist.sh wheel` builds it), installed into a fresh virtual
# environment of every CPython 3.9-3.13 found on this machine (pyenv's
# versions, then python3.N on PATH), with no Rust toolchain on PATH. In each:
# an export against the reference server, to_arrow, the console script
# (tests/dist/smoke.py). Also: `auditwheel show` agrees with the wheel's
# platform tag, the wheel is under 10 MB, and each install's size is printed.
#
#   bash tests/dist/test-wheel.sh [WHEEL]
# Needs target/release/fhir-async-testserver (`make server`) and dist tools
# (target/dist-tools, made by scripts/dist.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TOOLS=${FHIR_ASYNC_DIST_TOOLS:-$ROOT/target/dist-tools}
SERVER=${FHIR_ASYNC_TESTSERVER:-$ROOT/target/release/fhir-async-testserver}
MAX_WHEEL=$((10 * 1000 * 1000))
version=$(bash scripts/version.sh)

wheel=${1:-$(ls -t dist/fhir_async-"$version"-*abi3*.whl 2>/dev/null | head -1 || true)}
[[ -n $wheel && -f $wheel ]] || { echo "test-wheel: no abi3 wheel in dist/ (bash scripts/dist.sh wheel)" >&2; exit 1; }
[[ -x $SERVER ]] || { echo "test-wheel: $SERVER is missing (make server)" >&2; exit 1; }
name=$(basename "$wheel")
size=$(stat -c %s "$wheel")
echo "test-wheel: $name: $size bytes"
(( size < MAX_WHEEL )) || { echo "test-wheel: $name is $size bytes, not under $MAX_WHEEL" >&2; exit 1; }
[[ $name == *-cp39-abi3-* ]] || { echo "test-wheel: $name is not a cp39-abi3 wheel" >&2; exit 1; }

# auditwheel reads the extension's symbol versions: the platform tag it finds
# the wheel consistent with must be one the wheel carries (manylinux2014 is
# manylinux_2_17's other name).
mkdir -p "$ROOT/target"
"$TOOLS/bin/auditwheel" show "$wheel" | tee "$ROOT/target/auditwheel-show.txt"
audited=$(tr '\n' ' ' <"$ROOT/target/auditwheel-show.txt" | sed -n 's/.*is consistent with the following platform tag: *"\([^"]*\)".*/\1/p')
tags=${name##*-abi3-}; tags=${tags%.whl}
[[ -n $audited && ".$tags." == *".$audited."* ]] || { echo "test-wheel: auditwheel says \"$audited\", the wheel is tagged $tags" >&2; exit 1; }
echo "test-wheel: auditwheel: consistent with $audited, which the wheel carries ($tags)"

# Every CPython 3.9-3.13 on the machine: pyenv's newest of each, else python3.N on PATH.
pythons=()
for minor in 9 10 11 12 13; do
  py=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3."$minor".*/bin/python3 2>/dev/null | sort -V | tail -1 || true)
  [[ -z $py ]] && py=$(command -v "python3.$minor" || true)
  [[ -n $py ]] && pythons+=("$py")
done
(( ${#pythons[@]} > 0 )) || { echo "test-wheel: no CPython 3.9-3.13 found" >&2; exit 1; }

# No Rust: cargo, rustc and rustup are not on the PATH the installs and smoke tests see.
norust_path=/usr/local/bin:/usr/bin:/bin
for tool in cargo rustc rustup; do
  if PATH=$norust_path command -v "$tool" >/dev/null; then
    echo "test-wheel: $tool is on $norust_path; the test needs a PATH without Rust" >&2
    exit 1
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/fhir-async-wheel-XXXXXX")
exec 3> >(cat >/dev/null) # keeps the server's stdin open until this script ends
coproc SRV { "$SERVER" --addr 127.0.0.1:0 --exit-on-stdin-eof --job-ms 100 --retry-after 0 --patients 30; }
cleanup() { kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
read -r line <&"${SRV[0]}"
url=${line##* }
[[ $line == "listening on http://"* ]] || { echo "test-wheel: the server said: $line" >&2; exit 1; }
read -r _ <&"${SRV[0]}"

report=()
for py in "${pythons[@]}"; do
  v=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  env=$work/venv-$v
  "$py" -m venv "$env"
  # The wheel alone, from dist/ (--no-index: nothing is built), then pyarrow for to_arrow.
  PATH=$env/bin:$norust_path "$env/bin/python" -m pip install -q --disable-pip-version-check --no-index "$wheel"
  installed=$(du -sk "$env"/lib/python*/site-packages/fhir_async | cut -f1)
  PATH=$env/bin:$norust_path "$env/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: pyarrow
  mkdir -p "$work/out-$v"
  (cd "$work" && PATH=$env/bin:$norust_path "$env/bin/python" "$ROOT/tests/dist/smoke.py" "$url/bulk/fhir" "$version" "$work/out-$v")
  report+=("CPython $v: installed fhir_async ${installed} KiB")
done
echo "test-wheel: $name ($size bytes) passed on ${#pythons[@]} CPython(s):"
printf '  %s\n' "${report[@]}"
