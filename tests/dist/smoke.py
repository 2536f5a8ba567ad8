"""The installed wheel's smoke test (issue 22), run by tests/dist/test-wheel.sh
in a fresh virtual environment of each CPython, with no Rust toolchain on
PATH: an export against the reference server, ``to_arrow``, and the
``fhir-async`` console script.

    python smoke.py BASE_URL VERSION OUT_DIR
"""

import json
import os
import subprocess
import sys
import sysconfig

base, version, out = sys.argv[1], sys.argv[2], sys.argv[3]

import fhir_async  # noqa: E402  (after the arguments: a usage error first)

# The installed package, not a checkout's python/fhir_async.
assert "site-packages" in fhir_async.__file__, fhir_async.__file__
assert fhir_async.__version__ == version, (fhir_async.__version__, version)

fast = {"min_wait_ms": 20, "initial_backoff_ms": 20, "max_backoff_ms": 200}
client = fhir_async.Client(base, retry=fast, timeout=120)
result = client.export(types=["Patient", "Observation"]).wait(raise_on_failure=True)
patients = result.to_arrow("Patient")
observations = result.to_arrow("Observation")
assert patients.num_rows > 0 and observations.num_rows > 0, (patients.num_rows, observations.num_rows)
assert set(patients.column("resourceType").to_pylist()) == {"Patient"}

script = os.path.join(sysconfig.get_path("scripts"), "fhir-async")
shown = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60, check=True)
assert shown.stdout.strip() == f"fhir-async {version}", shown.stdout
run = subprocess.run(
    [script, "--json", "export", "--base", base, "--type", "Patient", "--out", out],
    capture_output=True,
    text=True,
    timeout=300,
)
assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
files = [f for f in os.listdir(out) if f.endswith(".ndjson") or f.endswith(".ndjson.gz")]
assert files, os.listdir(out)
events = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
assert events, "no --json events"

print(
    f"smoke: CPython {sys.version.split()[0]}: export {patients.num_rows} Patient + "
    f"{observations.num_rows} Observation rows via to_arrow; console script: {len(files)} file(s), "
    f"{len(events)} events; fhir_async {fhir_async.__version__}"
)
