#!/usr/bin/env bash
# The npm suite (`make test-npm`): installs what it needs, builds the wasm
# package, lints the wasm crate for its target, then runs the shared vectors,
# the end-to-end tests against the reference server, the type checks and the
# headless-browser test. Works from a fresh clone.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$here"
start=$(date +%s)

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target list --installed | grep -q wasm32-unknown-unknown
want=0.2.130
if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $want" ]]; then
  echo "test.sh: installing wasm-bindgen-cli $want"
  cargo install wasm-bindgen-cli --version "$want"
fi
if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi

server="${FHIR_ASYNC_TESTSERVER:-$root/target/release/fhir-async-testserver}"
if [[ ! -x "$server" ]]; then
  (cd "$root" && cargo build --release -p fhir-async-testserver)
fi
export FHIR_ASYNC_TESTSERVER="$server"

bash scripts/build.sh
(cd "$root" && cargo clippy -p fhir-async-wasm --target wasm32-unknown-unknown -- -D warnings)

npx --no-install tsc -p tsconfig.json
node --test --test-timeout=300000 --test-concurrency=1 test/*.test.mjs
echo "test.sh: npm suite passed in $(( $(date +%s) - start )) s"
