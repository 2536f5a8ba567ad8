"""The ``fhir-async`` console script (issue 13): ``pip install fhir-async``
runs the same command line as ``cargo install --path cli``, end to end."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import Server

import fhir_async


def script() -> str:
    # The console script pip (maturin develop) put beside this interpreter.
    return str(Path(sys.executable).parent / "fhir-async")


def test_console_script_exports_into_a_folder(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "export"
    run = subprocess.run(
        [script(), "--json", "export", "--base", server.base("/bulk/fhir"), "--type", "Patient", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    # The SMART bulk-data log (protocol N), written by the same Rust code as the `fhir-async` binary.
    names = [e["eventId"] for e in events]
    assert names[0] == "kickoff" and "status_complete" in names and "download_complete" in names
    lines = (out / "Patient.000.ndjson").read_text().splitlines()
    assert len(lines) == 50 and all(json.loads(line)["resourceType"] == "Patient" for line in lines)
    # The same folder again: the job resumes, nothing is fetched again.
    again = subprocess.run([script(), "export", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "no second kick-off" in again.stderr


def test_console_script_usage_and_help() -> None:
    assert subprocess.run([script(), "--help"], capture_output=True, timeout=60).returncode == 0
    bad = subprocess.run([script(), "export", "--nonsense"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--nonsense" in bad.stderr
    assert fhir_async._native.cli_main(["fhir-async", "--version"]) == 0
