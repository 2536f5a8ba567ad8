#!/usr/bin/env bash
# The Debian packages the test suites need, installed in one place (issue 10 §4).
#
#   bash scripts/ensure-deps.sh [GROUP...]     GROUP: rust npm python fuzz (default: all)
#
# Checks each tool; when some are missing it runs `apt-get update` once, then
# `apt-get install -y --no-install-recommends <packages>` (as root, or through
# sudo when it is available without a password). Otherwise it stops at once
# and prints the command to run. Silent when nothing is missing.
# FHIR_ASYNC_NO_APT=1 never installs: it only names what is missing.
set -euo pipefail

groups=("$@")
[[ ${#groups[@]} -eq 0 ]] && groups=(rust npm python fuzz)

missing=()
need() { # need PACKAGE WHY: record PACKAGE as missing (once)
  local p
  for p in "${missing[@]}"; do [[ $p == "$1" ]] && return; done
  missing+=("$1")
  echo "ensure-deps: missing $2 (Debian package $1)" >&2
}
has() { command -v "$1" >/dev/null 2>&1; }

for g in "${groups[@]}"; do
  case $g in
    rust)
      has cc || need gcc "cc (the linker rustc calls)"
      # Tests that send signals run `kill` (tests/server/tests/misc.rs, examples/rust/tests/demo_ctrl_c.rs).
      [[ -x /bin/kill || -x /usr/bin/kill ]] || need procps "kill (signal tests)"
      ;;
    npm)
      has node || need nodejs "node (the npm suite and examples/node)"
      has npm || need npm "npm"
      # wasm-opt shrinks the .wasm under the package size guard (npm/test/size.test.mjs).
      has wasm-opt || need binaryen "wasm-opt (npm/scripts/build.sh)"
      # npm/test/browser.test.mjs launches ${CHROMIUM:-/usr/bin/chromium}.
      [[ -x ${CHROMIUM:-/usr/bin/chromium} ]] || need chromium "${CHROMIUM:-/usr/bin/chromium} (npm/test/browser.test.mjs)"
      has gzip || need gzip "gzip (npm/scripts/build.sh size line)"
      ;;
    python)
      if ! has python3; then
        need python3 "python3 (the Python suite)"
        need python3-venv "python3 -m venv"
      elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        need python3-venv "python3 -m venv (python/scripts/test.sh)"
      fi
      # maturin links the extension with the system C toolchain.
      has cc || need gcc "cc (maturin, the Python extension)"
      ;;
    fuzz)
      # cargo-fuzz builds libFuzzer (C++) with the system compiler.
      has c++ || need g++ "c++ (libFuzzer for make fuzz-smoke)"
      ;;
    *)
      echo "ensure-deps: unknown group '$g' (rust, npm, python, fuzz)" >&2
      exit 2
      ;;
  esac
done

[[ ${#missing[@]} -eq 0 ]] && exit 0

cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [[ ${FHIR_ASYNC_NO_APT:-0} == 1 ]]; then
  echo "ensure-deps: run: $cmd" >&2
  exit 1
fi
if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif has sudo && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "ensure-deps: not root and no password-less sudo; run: sudo sh -c '$cmd'" >&2
  exit 1
fi
if ! has apt-get; then
  echo "ensure-deps: no apt-get on this machine; install: ${missing[*]}" >&2
  exit 1
fi
echo "ensure-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "ensure-deps: installed ${missing[*]}" >&2
# Check again: a package that installed without the tool is a failure here, not later.
FHIR_ASYNC_NO_APT=1 exec bash "$0" "${groups[@]}"
