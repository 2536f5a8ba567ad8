#!/usr/bin/env bash
# The one version of fhir-async (issue 22): `[workspace.package] version` in
# the root Cargo.toml. Every crate inherits it (`version.workspace = true`),
# the wheel's comes from Cargo (pyproject.toml: `dynamic = ["version"]`), and
# `fhir-async --version` / `fhir_async.__version__` print the crate's.
#
#   bash scripts/version.sh           prints it
#   bash scripts/version.sh --check   checks that npm, Python, the path
#                                     dependencies and CHANGELOG.md agree
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || { echo "version.sh: no version in Cargo.toml's [workspace.package]" >&2; exit 1; }
if [[ ${1:-} != --check ]]; then
  echo "$version"
  exit 0
fi

bad=0
fail() { echo "version.sh: $*" >&2; bad=1; }
for c in core client cli python wasm; do
  grep -qx 'version.workspace = true' "$c/Cargo.toml" || fail "$c/Cargo.toml sets its own version (use version.workspace = true)"
done
for c in client cli; do
  # A published crate's path dependency on another carries the version (crates.io needs it), the same one.
  while IFS= read -r line; do
    [[ $line == *"version = \"=$version\""* || $line == *"version = \"$version\""* ]] ||
      fail "$c/Cargo.toml: path dependency without version \"$version\": $line"
  done < <(grep -E '^fhir-async[a-z-]* = \{[^}]*path = "\.\./(core|client|cli)"' "$c/Cargo.toml" || true)
done
npm=$(node -p 'require("./npm/package.json").version' 2>/dev/null || sed -n 's/^  "version": "\(.*\)",$/\1/p' npm/package.json)
[[ $npm == "$version" ]] || fail "npm/package.json has version $npm, Cargo.toml $version"
grep -q '^dynamic = \["version"\]' python/pyproject.toml || fail "python/pyproject.toml must take its version from Cargo (dynamic = [\"version\"])"
grep -q '^version *=' python/pyproject.toml && fail "python/pyproject.toml sets a version of its own"
grep -q '^__version__: str = _native.__version__' python/fhir_async/__init__.py || fail "fhir_async.__version__ is not the extension's (Cargo's) version"
grep -q "^## \[$version\]" CHANGELOG.md || fail "CHANGELOG.md has no section ## [$version]"
[[ $bad == 0 ]] || exit 1
echo "version.sh: $version everywhere (Cargo, npm, Python, CHANGELOG.md)"
