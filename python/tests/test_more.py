"""Callbacks, progress bars, the exception hierarchy, and transport failures."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import fhir_async
from fhir_async import _native
from conftest import Server, client

SECRET = "fhir-async-demo-secret"


class _Callbacks(BaseHTTPRequestHandler):
    received: List[Tuple[bytes, Optional[str]]] = []
    event = threading.Event()

    def do_POST(self) -> None:  # noqa: N802 - http.server's spelling
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append((body, self.headers.get("X-Signature")))
        type(self).event.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def callback_url() -> Iterator[str]:
    _Callbacks.received = []
    _Callbacks.event = threading.Event()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Callbacks)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/cb"
    httpd.shutdown()
    httpd.server_close()


def test_aidbox_callback_wakes_the_job(server: Server, callback_url: str) -> None:
    # Retry-After 30 s: without the callback the job would sleep that long.
    c = client(server.base("/aidbox/fhir", "retry=30;ms=300"))
    job = c.kickoff("POST", "$reindex", async_mode="redirect", callback_url=callback_url)
    effects: List[Dict[str, Any]] = []

    def deliver() -> None:
        assert _Callbacks.event.wait(10)
        body, sig = _Callbacks.received[0]
        effects.append(job.handle_callback(body, sig, SECRET))

    t = threading.Thread(target=deliver)
    t.start()
    start = time.monotonic()
    result = job.wait(timeout=15)
    t.join(5)
    assert time.monotonic() - start < 5
    assert result.status == "completed"
    assert effects and effects[0]["kind"] == "woken", effects
    body, sig = _Callbacks.received[0]
    payload = fhir_async.verify_callback(body, sig, SECRET)
    assert isinstance(payload, dict)
    # issue 11: the core's callback codes, a CallbackError (still a ProtocolError)
    with pytest.raises(fhir_async.CallbackError) as e:
        fhir_async.verify_callback(body, "sha256=00", SECRET)
    assert e.value.code == "bad_signature" and isinstance(e.value, fhir_async.ProtocolError)


def test_progress_bar_in_a_terminal(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    result = client(server.base("/bulk/fhir", "ms=300")).export(types=["Patient"]).wait(progress=True)
    assert result.ok
    err = capsys.readouterr().err
    assert "100" in err and "done" in err


def test_download_progress_bar(server: Server, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = client(server.base("/bulk/fhir")).export(types=["Patient", "Condition"]).wait()
    result.download(tmp_path, progress=True)
    assert "2/2" in capsys.readouterr().err


def test_exception_hierarchy() -> None:
    pairs = {
        fhir_async.ProtocolError: "protocol",
        fhir_async.InsecureUrl: "insecure_url",
        fhir_async.UsageError: "usage",
        fhir_async.DeadlineExceeded: "deadline_exceeded",
        fhir_async.RetriesExhausted: "retries_exhausted",
        fhir_async.Unauthorized: "unauthorized",
        fhir_async.KickoffIndeterminate: "kickoff_indeterminate",
        fhir_async.DownloadError: "download",
        fhir_async.JobFailed: "job_failed",
        fhir_async.Cancelled: "cancelled",
    }
    for cls, code in pairs.items():
        e = cls("x")
        assert isinstance(e, fhir_async.FhirAsyncError)
        assert e.code == code
    assert issubclass(fhir_async.UsageError, ValueError)
    assert issubclass(fhir_async.DeadlineExceeded, TimeoutError)
    assert issubclass(fhir_async.InsecureUrl, fhir_async.ProtocolError)


def test_protocol_error_raised_from_rust() -> None:
    job = _native.Job(json.dumps({"baseUrl": "https://fhir.example/r4", "operation": {"type": "export"}}))
    now = _native.now_ms()
    a = job.next_action(now)
    job.handle_response(a["request"]["id"], 202, [], b"", now)
    with pytest.raises(fhir_async.ProtocolError) as e:
        job.next_action(now)
    assert e.value.code == "protocol"
    assert e.value.details.get("httpStatus") == 202
    assert isinstance(job.exception(), fhir_async.ProtocolError)


def test_reset_after_send_makes_the_kickoff_indeterminate() -> None:
    """A server that reads the request and hangs up: the kick-off may have
    been seen, so it is never replayed."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with pytest.raises(fhir_async.KickoffIndeterminate) as e:
            client(f"http://127.0.0.1:{port}/fhir").export(types=["Patient"]).wait()
        assert e.value.code == "kickoff_indeterminate"
    finally:
        srv.close()


def test_repr_of_low_level_objects(server: Server) -> None:
    s = _native.Client("https://fhir.example/r4")
    assert "Client" in repr(s)
    r = client(server.base("/bulk/fhir")).export(types=["Patient"]).wait()
    it = r.resources("Patient")
    next(it)
    assert "ResourceIterator" in repr(it)
    it.close()
    assert list(it) == []


def test_read_ndjson_streams_downloaded_files(server: Server, tmp_path: Any) -> None:
    result = client(server.base("/bulk/fhir")).export(types=["Patient", "Condition"]).wait()
    paths = result.download(tmp_path)
    from_disk = list(fhir_async.read_ndjson(paths))
    assert sorted(r["id"] for r in from_disk) == sorted(r["id"] for r in result.resources())
    raw = list(_native.read_ndjson([str(p) for p in paths], raw=True))
    assert len(raw) == len(from_disk) and all(isinstance(x, bytes) for x in raw)
    with pytest.raises(fhir_async.DownloadError) as e:
        list(fhir_async.read_ndjson(tmp_path / "missing.ndjson"))
    assert e.value.code == "io"


def test_resources_without_orjson_use_the_native_parser(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from fhir_async import _files

    result = client(server.base("/bulk/fhir")).export(types=["Patient"]).wait()
    with_orjson = list(result.resources())
    monkeypatch.setattr(_files, "_orjson_loads", lambda: None)
    native = list(result.resources())
    assert native == with_orjson and len(native) == 50
