#!/usr/bin/env bash
# `make dist` (issue 22): the artifacts a release publishes, into dist/.
#
#   bash scripts/dist.sh [wheel] [sdist] [npm] [crates]     (default: all four)
#
#   wheel   one abi3 wheel (CPython >= 3.9), manylinux2014, from the `dist` cargo
#           profile (no debug info, stripped, fat LTO), linked by zig (ziglang
#           from PyPI) against glibc 2.17: fhir_async-V-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
#   sdist   fhir_async-V.tar.gz (maturin: the Rust crates it needs inside)
#   npm     fhir-async-V.tgz (`npm pack`: Node's build and the browser's)
#   crates  fhir-async, fhir-async-client, fhir-async-cli .crate files
#           (`cargo package`, which builds each from its packaged sources)
#
# The Python tools (maturin, ziglang, auditwheel) live in a venv of their own,
# target/dist-tools, made on first use. docs/releasing.md says how to publish.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIST=$ROOT/dist
TOOLS=${FHIR_ASYNC_DIST_TOOLS:-$ROOT/target/dist-tools}
version=$(bash scripts/version.sh)
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(wheel sdist npm crates)
mkdir -p "$DIST"

tools() {
  bash scripts/ensure-deps.sh python
  local reqs="maturin==1.16.0 ziglang==0.17.1 auditwheel==6.8.2"
  if [[ ! -x $TOOLS/bin/python ]]; then python3 -m venv "$TOOLS"; fi
  if [[ "$(cat "$TOOLS/.reqs" 2>/dev/null)" != "$reqs" ]]; then
    # shellcheck disable=SC2086
    "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check $reqs
    echo "$reqs" >"$TOOLS/.reqs"
  fi
}

for step in "${steps[@]}"; do
  t0=$(date +%s)
  case $step in
    wheel)
      tools
      rm -f "$DIST"/fhir_async-*.whl
      (cd python && PATH=$TOOLS/bin:$PATH "$TOOLS/bin/maturin" build --profile dist \
        --compatibility manylinux2014 --zig --out "$DIST" --quiet)
      ls "$DIST"/fhir_async-"$version"-cp39-abi3-*.whl >/dev/null
      ;;
    sdist)
      tools
      rm -f "$DIST"/fhir_async-*.tar.gz
      (cd python && "$TOOLS/bin/maturin" sdist --out "$DIST")
      ;;
    npm)
      bash scripts/ensure-deps.sh npm
      (cd npm && npm ci --no-audit --no-fund --loglevel=error)
      bash npm/scripts/build.sh
      rm -f "$DIST"/fhir-async-*.tgz
      (cd npm && npm pack --silent --pack-destination "$DIST" >/dev/null)
      ls "$DIST/fhir-async-$version.tgz" >/dev/null
      ;;
    crates)
      bash scripts/ensure-deps.sh rust
      # One command, so that the client's and the CLI's verification builds
      # find the core (and the client) of this version before they are on crates.io.
      cargo package --allow-dirty -p fhir-async -p fhir-async-client -p fhir-async-cli
      target=${CARGO_TARGET_DIR:-$ROOT/target}
      for c in fhir-async fhir-async-client fhir-async-cli; do cp "$target/package/$c-$version.crate" "$DIST/"; done
      ;;
    *)
      echo "dist.sh: unknown step $step (wheel, sdist, npm, crates)" >&2
      exit 2
      ;;
  esac
  echo "dist.sh: $step done in $(($(date +%s) - t0)) s"
done
ls -l "$DIST"
