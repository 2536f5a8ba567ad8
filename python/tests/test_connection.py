"""How the client reaches servers (issue 23, "the same options in Python"):
`Client(..., ca_files=..., system_roots=..., proxy=...)` is the native
client's `Connection`. A proxy on loopback sees every request of an export
(kick-off, polls, manifest, files) and of SMART (discovery, token); the
environment's `HTTPS_PROXY` is honoured; a CA file that cannot be used is a
`UsageError` naming it."""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import fhir_async
from conftest import Server, client, start_server, stop_server

PATIENTS = 7


class Proxy:
    """A tiny HTTP proxy on 127.0.0.1 (port 0): `CONNECT host:port` tunnels (what the
    native client sends to an `http://` proxy, whatever the target's scheme). It keeps
    what the client sent in each tunnel, so the requests inside are counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tunnels: List[Tuple[str, bytearray]] = []
        self.sockets: List[socket.socket] = []
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy.tunnel(self.request)

        socketserver.ThreadingTCPServer.daemon_threads = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def tunnel(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        m = re.fullmatch(r"CONNECT (127\.0\.0\.1):(\d+) HTTP/1\.[01]", line)
        if not m:  # only tunnels to loopback
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            return
        upstream = socket.create_connection((m.group(1), int(m.group(2))), timeout=30)
        sent = bytearray(head.split(b"\r\n\r\n", 1)[1])
        with self.lock:
            self.tunnels.append((line, sent))
            self.sockets += [conn, upstream]
        if sent:
            upstream.sendall(bytes(sent))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        back = threading.Thread(target=self.pipe, args=(upstream, conn, None), daemon=True)
        back.start()
        self.pipe(conn, upstream, sent)
        back.join(timeout=30)

    def pipe(self, src: socket.socket, dst: socket.socket, keep: "bytearray | None") -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if keep is not None:
                    with self.lock:
                        keep += data
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def requests(self) -> List[Tuple[str, str]]:
        """(method, path) of every request sent through the tunnels."""
        with self.lock:
            streams = [bytes(b) for _, b in self.tunnels]
        out = []
        for data in streams:
            pos = 0
            while (end := data.find(b"\r\n\r\n", pos)) >= 0:
                lines = data[pos:end].decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                out.append((method, path))
                length = next(
                    (int(h.split(":", 1)[1]) for h in lines[1:] if h.lower().startswith("content-length:")), 0
                )
                pos = end + 4 + length
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            sockets = list(self.sockets)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.thread.join(timeout=10)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()


@pytest.fixture
def own_server() -> Iterator[Server]:
    # Its own server, so its request count is this test's alone.
    s = start_server("--job-ms", "200", "--retry-after", "0", "--patients", str(PATIENTS))
    yield s
    stop_server(s)


@pytest.fixture
def smart_server() -> Iterator[Server]:
    # Its own server that asks for a token (client_secret_basic of `client-s`).
    s = start_server("--job-ms", "200", "--retry-after", "0", "--patients", str(PATIENTS),
                     "--client-secret", "client-s=s3cret")
    yield s
    stop_server(s)


def assert_all_through(proxy: Proxy, s: Server, paths: List[str]) -> None:
    seen = proxy.requests()
    assert proxy.tunnels, "no CONNECT reached the proxy"
    # Every request the server answered came through the proxy.
    assert len(seen) == s.stats()["total"], (seen, s.stats()["total"])
    for part in paths:
        assert any(part in p for _, p in seen), (part, seen)


def export_all(c: fhir_async.Client, tmp_path: Path) -> Dict[str, Any]:
    result = c.export(types=["Patient"]).wait(raise_on_failure=True)
    files = result.download(tmp_path)
    lines = sum(len(p.read_text().splitlines()) for p in files)
    return {"lines": lines, "files": len(files)}


def test_proxy_carries_every_request_of_an_export(own_server: Server, proxy: Proxy, tmp_path: Path) -> None:
    c = client(own_server.base("/bulk/fhir"), proxy=proxy.url)
    got = export_all(c, tmp_path)
    assert got["lines"] == PATIENTS and got["files"] >= 1
    # kick-off, status polls, the files.
    assert_all_through(proxy, own_server, ["$export", "/Patient"])
    assert any(m == "GET" for m, _ in proxy.requests())


def test_proxy_carries_smart_discovery_and_token(smart_server: Server, proxy: Proxy, tmp_path: Path) -> None:
    auth = fhir_async.BackendServices("client-s", client_secret="s3cret", scope="system/*.rs")
    c = client(smart_server.base("/bulk/fhir"), auth=auth, proxy=proxy.url)
    assert export_all(c, tmp_path)["lines"] == PATIENTS
    assert_all_through(proxy, smart_server, ["smart-configuration", "$export"])
    assert any(m == "POST" and "token" in p for m, p in proxy.requests()), proxy.requests()


def test_https_proxy_from_the_environment(
    own_server: Server, proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # proxy=None: the environment's, read when the client is built (ALL_PROXY first, then HTTPS_PROXY).
    for name in ("ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    c = client(own_server.base("/bulk/fhir"))
    monkeypatch.delenv("HTTPS_PROXY")
    assert export_all(c, tmp_path)["lines"] == PATIENTS
    assert_all_through(proxy, own_server, ["$export"])


def test_an_unreadable_ca_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(fhir_async.UsageError) as e:
        fhir_async.Client("https://fhir.example/r4", ca_files=[missing])
    assert str(missing) in str(e.value) and "ca_files" in str(e.value), str(e.value)
    assert e.value.code == "usage" and e.value.details["path"] == str(missing)
    # One path is taken as well as a list, as a str too.
    with pytest.raises(fhir_async.UsageError, match=re.escape(str(missing))):
        fhir_async.Client("https://fhir.example/r4", ca_files=str(missing))


def test_a_ca_file_with_no_certificate_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("# not a certificate\n")
    with pytest.raises(fhir_async.UsageError, match="no certificate") as e:
        fhir_async.Client("https://fhir.example/r4", ca_files=empty, system_roots=True)
    assert str(empty) in str(e.value)


def test_a_ca_file_and_the_system_store_are_taken(tmp_path: Path) -> None:
    # A real CA file: the first certificate of the system's bundle (when the machine has one).
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if not bundle.exists():
        pytest.skip("no system CA bundle to copy a certificate from")
    text = bundle.read_text()
    first = text[: text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"
    ca = tmp_path / "ca.pem"
    ca.write_text(first)
    c = fhir_async.Client("https://fhir.example/r4", ca_files=[ca, str(ca)], system_roots=True)
    assert repr(c) == "Client('https://fhir.example/r4')"


def test_a_bad_proxy_url_is_a_usage_error_without_its_password() -> None:
    with pytest.raises(fhir_async.UsageError, match="proxy") as e:
        fhir_async.Client("https://fhir.example/r4", proxy="ftp://user:pw-SECRET@127.0.0.1:1")
    assert "pw-SECRET" not in str(e.value) and "pw-SECRET" not in repr(e.value.details), str(e.value)
    for bad in ("", 3):
        with pytest.raises(fhir_async.UsageError):
            fhir_async.Client("https://fhir.example/r4", proxy=bad)  # type: ignore[arg-type]
    with pytest.raises(fhir_async.UsageError):
        fhir_async.Client("https://fhir.example/r4", ca_files=[3])  # type: ignore[list-item]
