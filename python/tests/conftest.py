"""Fixtures: the reference server (tests/server), started once per session
on loopback port 0, and clients with small retry floors."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import fhir_async

ROOT = Path(__file__).resolve().parents[2]
SERVER_BIN = Path(os.environ.get("FHIR_ASYNC_TESTSERVER", ROOT / "target" / "release" / "fhir-async-testserver"))
FAST = {"min_wait_ms": 20, "initial_backoff_ms": 20, "max_backoff_ms": 200}


@dataclass
class Server:
    url: str
    storage: str
    proc: "subprocess.Popen[str]"

    def base(self, path: str, faults: str = "") -> str:
        prefix = f"/_f/{faults}" if faults else ""
        return f"{self.url}{prefix}{path}"

    def stats(self) -> Dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_admin/stats") as r:
            stats: Dict[str, Any] = json.loads(r.read())
            return stats

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}/_admin/reset", method="POST", data=b"")
        urllib.request.urlopen(req).close()


def start_server(*args: str) -> Server:
    if not SERVER_BIN.exists():
        raise RuntimeError(f"{SERVER_BIN} is missing: run `make server` first")
    proc = subprocess.Popen(
        [str(SERVER_BIN), "--addr", "127.0.0.1:0", "--exit-on-stdin-eof", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    second = proc.stdout.readline().strip()
    assert first.startswith("listening on http://"), first
    return Server(url=first.split()[-1], storage=second.split()[-1], proc=proc)


def stop_server(s: Server) -> None:
    assert s.proc.stdin is not None
    s.proc.stdin.close()
    try:
        s.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        s.proc.kill()
        s.proc.wait()
    if s.proc.stdout is not None:
        s.proc.stdout.close()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    s = start_server("--job-ms", "200", "--retry-after", "0", "--patients", "50")
    yield s
    stop_server(s)


@pytest.fixture(scope="session")
def auth_server() -> Iterator[Server]:
    s = start_server("--job-ms", "200", "--retry-after", "0", "--patients", "20", "--token", "secret-token")
    yield s
    stop_server(s)


def ids(resources: List[Dict[str, Any]]) -> List[str]:
    return sorted(f"{r['resourceType']}/{r['id']}" for r in resources)


def read_ndjson(paths: List[Path]) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    for p in paths:
        with open(p, "rb") as f:
            out.extend(json.loads(line) for line in f if line.strip())
    return out


def client(url: str, **kw: Any) -> fhir_async.Client:
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", 60)
    return fhir_async.Client(url, **kw)


@pytest.fixture(autouse=True)
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, as in a terminal, even when the suite
    was started in the background (a non-interactive shell's `&` ignores
    SIGINT, and Python then keeps ignoring it)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
