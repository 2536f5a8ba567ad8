#!/usr/bin/env bash
# Builds the wasm engine into npm/wasm/ (Node) and npm/browser/ (browsers): cargo (wasm32, profile `wasm`) -> wasm-bindgen
# (--target web: an ES module whose init takes bytes or a URL) -> wasm-opt -Oz.
# Without wasm-opt (Debian package binaryen) the package is too big for its size
# guard, so the build stops (issue 10 §4); FHIR_ASYNC_ALLOW_NO_WASM_OPT=1 builds
# an unoptimized .wasm anyway, for development only.
set -euo pipefail
if ! command -v wasm-opt >/dev/null 2>&1 && [[ ${FHIR_ASYNC_ALLOW_NO_WASM_OPT:-0} != 1 ]]; then
  echo "build.sh: wasm-opt not found: install the Debian package binaryen" \
    "(\`bash scripts/ensure-deps.sh npm\` or \`apt-get install -y binaryen\`)," \
    "or set FHIR_ASYNC_ALLOW_NO_WASM_OPT=1 for an unoptimized development build" >&2
  exit 1
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="$here/wasm"

# The wasm target and the wasm-bindgen CLI at the crate's pinned version.
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
want="$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' "$root/wasm/Cargo.toml")"
if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $want" ]]; then
  echo "build.sh: installing wasm-bindgen-cli $want"
  cargo install wasm-bindgen-cli --version "$want"
fi

# The size-tuned `wasm` profile of the root Cargo.toml (opt-level "z", fat LTO,
# one codegen unit, panic = "abort"); FHIR_ASYNC_WASM_OPT_LEVEL overrides its level.
if [[ -n ${FHIR_ASYNC_WASM_OPT_LEVEL:-} ]]; then export CARGO_PROFILE_WASM_OPT_LEVEL=$FHIR_ASYNC_WASM_OPT_LEVEL; fi
raw_out="$target_dir/wasm32-unknown-unknown/wasm/fhir_async_wasm.wasm"
esbuild="$here/node_modules/.bin/esbuild"

# Two builds of the engine (issue 22): Node's, with SMART Backend Services
# (feature `backend-services`), into wasm/ next to src/; the browser's,
# without it (a private key never belongs in a browser: README.md, "Browser
# build"), into browser/wasm/ next to a copy of src/ (the same modules, so the
# relative `../wasm/` imports pick the browser's .wasm and glue). The exports
# map sends `node` to node/src/node.js and everything else to browser/src/browser.js.
build_variant() { # build_variant OUT_DIR [CARGO_ARGS...]
  local out=$1
  shift
  (cd "$root" && cargo build --profile wasm --target wasm32-unknown-unknown -p fhir-async-wasm "$@")
  local raw=$raw_out
  rm -rf "$out" && mkdir -p "$out"
  # wasm-opt runs on cargo's output, before wasm-bindgen: the binaryen of
  # distributions (v108) mistypes the externref table wasm-bindgen adds.
  if command -v wasm-opt >/dev/null 2>&1; then
    wasm-opt "${FHIR_ASYNC_WASM_OPT:--Oz}" --enable-bulk-memory --enable-nontrapping-float-to-int \
      --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
      -o "$out/opt.wasm" "$raw"
    raw="$out/opt.wasm"
  else
    echo "build.sh: FHIR_ASYNC_ALLOW_NO_WASM_OPT=1 and no wasm-opt: the .wasm is NOT optimized (too big to publish)" >&2
  fi
  wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir "$out" --out-name fhir_async_wasm "$raw"
  rm -f "$out/opt.wasm"
  # The glue minified (whitespace, comments, syntax, local names): wasm-bindgen
  # copies every `///` of the wasm crate into it (index.d.ts has the docs).
  minify "$out/fhir_async_wasm.js" "$out/glue.js"
  mv "$out/glue.js" "$out/fhir_async_wasm.js"
}
# minify IN OUT: one module on its own with the package's esbuild (a devDependency:
# `npm ci` first; without it the JS stays as written, bigger than the size guard
# allows). Exported names, imports and class names (set on each error's
# prototype) stay as they are: a user's bundler still sees the same modules.
minify() {
  if [[ -x "$esbuild" ]]; then
    "$esbuild" "$1" --format=esm --minify --legal-comments=none --log-level=warning --outfile="$2"
  else
    echo "build.sh: no npm/node_modules/.bin/esbuild (run npm ci in npm/): $(basename "$1") is NOT minified" >&2
    cp "$1" "$2"
  fi
}

build_variant "$here/wasm"
build_variant "$here/browser/wasm" --no-default-features
# What each environment loads, each module minified on its own: the browser's,
# src/ without the Node-only files, next to browser/wasm/ (the same relative
# `../wasm/` imports); Node's, all of src/, in node/src/ with its imports pointed
# at wasm/ (no second copy of Node's engine). The repository's src/ stays the
# source the tests and examples import.
rm -rf "$here/browser/src" "$here/node" && mkdir -p "$here/browser/src" "$here/node/src"
for f in "$here"/src/*.js; do
  name=$(basename "$f")
  minify "$f" "$here/node/src/$name"
  sed -i 's#\([\x27"]\)\.\./wasm/#\1../../wasm/#g' "$here/node/src/$name"
  case $name in node.js | node-http.js) continue ;; esac
  minify "$f" "$here/browser/src/$name"
done

report() { # report NAME WASM_DIR SRC_DIR
  local wasm_gz js_gz
  wasm_gz=$(gzip -9c "$2/fhir_async_wasm_bg.wasm" | wc -c)
  js_gz=$(cat "$2/fhir_async_wasm.js" "$3"/*.js 2>/dev/null | gzip -9c | wc -c)
  echo "build.sh: $1: fhir_async_wasm_bg.wasm $(wc -c <"$2/fhir_async_wasm_bg.wasm") bytes, gzip -9 ${wasm_gz};" \
    "JS (glue + src) gzip -9 ${js_gz}; total $((wasm_gz + js_gz))"
}
echo "build.sh: $(command -v wasm-opt >/dev/null && wasm-opt --version || echo 'no wasm-opt')"
report node "$here/wasm" "$here/node/src"
report browser "$here/browser/wasm" "$here/browser/src"
