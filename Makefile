# fhir-async: the two commands a newcomer needs are `make demo` and `make test`.
# Every target installs what it needs itself; a second run reuses the build.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: deps server browser-demo test setup lint test-rust test-server fuzz-smoke test-npm test-python test-examples demo dist test-dist

## The main job: a bulk export with a live progress bar against the bundled
## reference server (or `make demo SERVER=https://... TOKEN=...`).
demo: server
	$(CARGO) build --release -p fhir-async-cli
	SERVER='$(SERVER)' TOKEN='$(TOKEN)' bash scripts/demo.sh

## The browser example: the reference server plus a static server; prints the page URL.
browser-demo: server
	bash scripts/ensure-deps.sh npm
	test -d npm/node_modules || (cd npm && npm ci --no-audit --no-fund --loglevel=error)
	test -f npm/wasm/fhir_async_wasm_bg.wasm || bash npm/scripts/build.sh
	node examples/browser/serve.mjs

## The one test command (what .ci/run calls). Runs each suite in turn (stopping
## at the first that fails) and ends with one line: every suite and its duration.
SUITES := deps setup lint test-rust test-server fuzz-smoke test-npm test-python test-dist test-examples
test:
	@done=(); for s in $(SUITES); do t0=$$(date +%s); \
	  if $(MAKE) --no-print-directory $$s; then done+=("$$s $$(( $$(date +%s) - t0 )) s"); \
	  else done+=("$$s FAILED after $$(( $$(date +%s) - t0 )) s"); \
	    (IFS=,; echo "make test: $${done[*]}" | sed 's/,/, /g'); exit 1; fi; \
	done; (IFS=,; echo "make test: $${done[*]}" | sed 's/,/, /g'); echo "make test: all suites passed"

## The Debian packages the suites need (chromium, binaryen, ...): installed when
## missing (apt-get), or the command to run is printed. See scripts/ensure-deps.sh.
deps:
	bash scripts/ensure-deps.sh

setup:
	rustup component add rustfmt clippy >/dev/null 2>&1 || true
	rustup target add wasm32-unknown-unknown >/dev/null

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS=-Dwarnings $(CARGO) doc --workspace --no-deps

# The examples' end-to-end tests (the demo's Ctrl-C/--resume) start the reference server.
test-rust: server
	bash scripts/ensure-deps.sh rust
	$(CARGO) test --workspace --exclude fhir-async-testserver

test-server:
	bash scripts/ensure-deps.sh rust
	$(CARGO) test -p fhir-async-testserver

# Every cargo-fuzz target of the core, briefly (libFuzzer + ASan; RUSTC_BOOTSTRAP
# lets the stable toolchain accept the sanitizer flags). Longer: FUZZ_SECONDS=600.
FUZZ_SECONDS ?= 10
FUZZ_TARGETS := manifest retry_after ndjson response
fuzz-smoke:
	bash scripts/ensure-deps.sh fuzz
	command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz
	cd core/fuzz && for t in $(FUZZ_TARGETS); do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$t -- -max_total_time=$(FUZZ_SECONDS) 2>&1 | grep -E '^(Done|==)|panicked|SUMMARY' ; \
	  test "$${PIPESTATUS[0]}" -eq 0 || exit 1; done

# Builds the reference server once (release); every language's suite starts it.
SERVER_BIN := target/release/fhir-async-testserver
server:
	$(CARGO) build --release -p fhir-async-testserver

test-npm: server
	bash scripts/ensure-deps.sh npm
	bash npm/scripts/test.sh

test-python: server
	bash python/scripts/test.sh

# The Rust examples (one per seed dialect, and the demo itself) against the
# reference server. The browser, Node and notebook examples run in their suites.
EXAMPLES := medplum healthconnect oracle aidbox
test-examples: server
	bash scripts/ensure-deps.sh npm
	$(CARGO) build --release -p fhir-async-examples
	for b in $(EXAMPLES); do echo "== example $$b"; ./target/release/$$b; done
	./target/release/fhir-async-demo --help | grep -- '--resume' >/dev/null
	rm -rf target/demo-test-output
	./target/release/fhir-async-demo --patients 300 --out $(CURDIR)/target/demo-test-output | tee target/demo-test.log
	grep -qF 'files are in $(CURDIR)/target/demo-test-output/' target/demo-test.log
	test "$$(ls target/demo-test-output/*.ndjson | wc -l)" -ge 6
	test -d npm/node_modules || (cd npm && npm ci --no-audit --no-fund --loglevel=error)
	test -f npm/wasm/fhir_async_wasm_bg.wasm || bash npm/scripts/build.sh
	node --test --test-timeout=120000 examples/node/service.test.mjs
	# make demo itself: the command line against the bundled server, end to end.
	$(CARGO) build --release -p fhir-async-cli
	OUT=target/demo-cli-output PATIENTS=300 bash scripts/demo.sh | tee target/demo-cli.log
	grep -q '^total' target/demo-cli.log
	test "$$(ls target/demo-cli-output/*.ndjson | wc -l)" -ge 6

## The release artifacts, into dist/ (issue 22; docs/releasing.md): the abi3
## manylinux wheel, the sdist, the npm tarball and the three .crate files.
dist:
	bash scripts/dist.sh

# What `make test` checks of them: the one version everywhere, then the wheel
# (built once, from the `dist` profile) installed and smoke-tested in a fresh
# venv of every CPython 3.9-3.13 found, with no Rust on PATH. The npm tarball's
# tests (Node 18/20/22, the browser bundle, the size budgets) run in test-npm.
test-dist: server
	bash scripts/version.sh --check
	bash scripts/dist.sh wheel
	bash tests/dist/test-wheel.sh
