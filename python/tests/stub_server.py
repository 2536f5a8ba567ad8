"""A scripted Bulk Data server for what the reference server does not do on
purpose: files with non-JSON lines, file errors with the server's own text,
a 410 that outlasts the manifest refresh. Loopback, port 0, one per test."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest


@dataclass
class StubFile:
    """A file of the manifest: its lines (bytes, joined with newlines) or an
    error answer, and the count the manifest promises."""

    body: bytes = b""
    count: Optional[int] = None
    status: int = 200
    content_type: str = "application/fhir+ndjson"
    resource_type: Optional[str] = "Patient"
    """None: an entry without ``type`` (organized output)."""


@dataclass
class Stub:
    url: str = ""
    files: Dict[str, StubFile] = field(default_factory=dict)
    requires_token: bool = False
    manifests: int = 0
    requests: List[Tuple[str, Dict[str, str]]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"{self.url}/fhir"

    def manifest(self) -> Dict[str, Any]:
        def entry(name: str, f: StubFile) -> Dict[str, Any]:
            e: Dict[str, Any] = {"url": f"{self.url}/files/{name}"}
            if f.resource_type is not None:
                e["type"] = f.resource_type
            if f.count is not None:
                e["count"] = f.count
            return e

        return {
            "transactionTime": "2026-01-01T00:00:00Z",
            "request": f"{self.base}/$export",
            "requiresAccessToken": self.requires_token,
            "output": [entry(n, f) for n, f in self.files.items() if f.resource_type != "OperationOutcome"],
            "error": [entry(n, f) for n, f in self.files.items() if f.resource_type == "OperationOutcome"],
        }


def outcome(text: str) -> bytes:
    """An OperationOutcome whose diagnostics is `text`."""
    oo = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing", "diagnostics": text}]}
    return json.dumps(oo).encode()


def _handler(stub: Stub) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status: int, body: bytes, headers: Dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's spelling
            stub.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            if self.path.startswith("/fhir/$export"):
                self.answer(202, b"", {"Content-Location": f"{stub.base}/status"})
            elif self.path == "/fhir/status":
                stub.manifests += 1
                self.answer(200, json.dumps(stub.manifest()).encode(), {"Content-Type": "application/json"})
            elif self.path.startswith("/files/") and self.path[len("/files/"):] in stub.files:
                f = stub.files[self.path[len("/files/"):]]
                self.answer(f.status, f.body, {"Content-Type": f.content_type})
            else:
                self.answer(404, outcome("no such route"), {"Content-Type": "application/fhir+json"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        # A client that read the start of an error body and hung up is fine.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@pytest.fixture()
def stub() -> Iterator[Stub]:
    s = Stub()
    httpd = _Server(("127.0.0.1", 0), _handler(s))
    s.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield s
    httpd.shutdown()
    httpd.server_close()
