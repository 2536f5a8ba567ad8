"""SMART Backend Services from Python (issue 12): `Client(base,
auth=BackendServices(...))` on the native client's BackendServicesAuth,
against the reference server's strict token endpoint (`--jwks` registers
`client-1`; `--client-secret` registers the symmetric `client-s`;
`--token-ttl 1` makes tokens short-lived)."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import fhir_async
from conftest import ROOT, Server, client, start_server, stop_server

KEYS = ROOT / "tests" / "server" / "tests" / "fixtures"
# A secret Basic must carry form-urlencoded (RFC 6749 §2.3.1).
SECRET = "s3cr:t/+é"


@pytest.fixture(scope="module")
def smart_server() -> Iterator[Server]:
    s = start_server(
        "--job-ms", "4500", "--retry-after", "0", "--patients", "10",
        "--jwks", str(KEYS / "jwks.json"), "--token-ttl", "1",
        "--client-secret", f"client-s={SECRET}",
    )
    yield s
    stop_server(s)


def issued(s: Server) -> int:
    tokens: Dict[str, Any] = s.stats()["tokens"]
    return int(tokens["issued"])


def private_jwk(kid: str) -> Dict[str, Any]:
    keys = json.loads((KEYS / "jwks-private.json").read_text())["keys"]
    key: Dict[str, Any] = next(k for k in keys if k["kid"] == kid)
    return key


def export_past_three_tokens(
    s: Server, auth: fhir_async.BackendServices
) -> Tuple[fhir_async.Client, fhir_async.Job, fhir_async.Result]:
    """An export of 10 Patients over a 4.5 s job with 1 s tokens: at least three tokens."""
    before = issued(s)
    c = client(
        s.base("/bulk/fhir"),
        auth=auth,
        retry={"min_wait_ms": 300, "initial_backoff_ms": 300, "max_backoff_ms": 400},
    )
    job = c.export(types=["Patient"])
    result = job.wait(raise_on_failure=True)
    assert len(list(result.resources())) == 10, "the files are fetched with the token too"
    assert issued(s) - before >= 3, "at least three tokens over a 4.5 s job with 1 s tokens"
    return c, job, result


@pytest.mark.parametrize(
    "auth",
    [
        fhir_async.BackendServices("client-1", key=private_jwk("test-rs384"), scope="system/*.read"),
        fhir_async.BackendServices("client-1", key=KEYS / "es384-private.pem", kid="test-es384"),
        fhir_async.BackendServices("client-1", key=str(KEYS / "jwks-private.json"), kid="test-rs384"),
    ],
    ids=["rs384-jwk-dict", "es384-pem", "rs384-jwks-file"],
)
def test_an_export_outlives_three_tokens(smart_server: Server, auth: fhir_async.BackendServices) -> None:
    # protocol J1-J5: discovery, signed assertions, tokens renewed as they expire (1 s) over a 4.5 s job.
    c, job, result = export_past_three_tokens(smart_server, auth)
    # J6: no token in the saved state or a repr.
    saved = job.to_json()
    assert "access_token" not in saved and "Bearer" not in saved
    for text in (repr(c), repr(job), repr(result), repr(auth)):
        assert "access_token" not in text and "PRIVATE KEY" not in text and '"d"' not in text


def test_a_wrong_key_is_a_typed_auth_error_with_the_servers_words(smart_server: Server) -> None:
    auth = fhir_async.BackendServices("client-1", key=KEYS / "other-es384-private.pem", kid="test-es384")
    c = client(smart_server.base("/bulk/fhir"), auth=auth)
    with pytest.raises(fhir_async.AuthError) as e:
        c.export(types=["Patient"]).wait()
    assert e.value.code == "auth"
    assert "invalid_client" in str(e.value), str(e.value)


def test_a_key_that_does_not_load_is_an_auth_error(tmp_path: Path) -> None:
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    with pytest.raises(fhir_async.AuthError):
        fhir_async.Client("https://fhir.example/r4", auth=fhir_async.BackendServices("c", key=bad))
    with pytest.raises(fhir_async.UsageError):
        fhir_async.Client("https://fhir.example/r4", token="t", auth=fhir_async.BackendServices("c", key=bad))


def test_a_client_secret_exports_and_never_shows(smart_server: Server) -> None:
    # protocol J3 (client_secret_basic), J5, J6: a symmetric client outlives three 1 s tokens;
    # the secret is in no repr, saved state or error.
    auth = fhir_async.BackendServices("client-s", client_secret=SECRET, scope="system/*.rs")
    c, job, result = export_past_three_tokens(smart_server, auth)
    for text in (repr(auth), repr(c), repr(job), repr(result), job.to_json()):
        assert "s3cr" not in text and "Basic" not in text, text
    assert "client_secret='***'" in repr(auth)
    wrong = fhir_async.BackendServices("client-s", client_secret="not-the-secret")
    with pytest.raises(fhir_async.AuthError) as e:
        client(smart_server.base("/bulk/fhir"), auth=wrong).export(types=["Patient"]).wait()
    assert e.value.details["error"] == "invalid_client", e.value.details
    assert "check the client id and the client secret" in str(e.value)
    shown = str(e.value) + repr(e.value) + json.dumps(e.value.details)
    assert "not-the-secret" not in shown and "s3cr" not in shown


def test_backend_services_takes_a_key_or_a_secret() -> None:
    with pytest.raises(fhir_async.UsageError):
        fhir_async.BackendServices("c")
    with pytest.raises(fhir_async.UsageError):
        fhir_async.BackendServices("c", key=KEYS / "es384-private.pem", client_secret="s")


def test_a_wrong_client_id_names_the_client(smart_server: Server) -> None:
    # protocol J4: the server's invalid_client and its description, as a typed AuthError.
    auth = fhir_async.BackendServices("nobody", key=KEYS / "es384-private.pem", kid="test-es384")
    with pytest.raises(fhir_async.AuthError) as e:
        client(smart_server.base("/bulk/fhir"), auth=auth).export(types=["Patient"]).wait()
    assert e.value.code == "auth"
    assert e.value.details["error"] == "invalid_client" and e.value.details["httpStatus"] == 401
    assert "nobody" in e.value.details["errorDescription"], e.value.details
    assert "check the client id" in str(e.value)


def test_a_clock_ten_minutes_behind_is_named(smart_server: Server) -> None:
    # protocol J5: a skewed clock shows as an exp rejection; the error names the clock.
    auth = fhir_async.BackendServices(
        "client-1", key=KEYS / "es384-private.pem", kid="test-es384", _clock_offset_ms=-600_000
    )
    with pytest.raises(fhir_async.AuthError) as e:
        client(smart_server.base("/bulk/fhir"), auth=auth).export(types=["Patient"]).wait()
    assert e.value.details["error"] == "invalid_client" and "expired" in e.value.details["errorDescription"]
    assert "check the client clock (a skewed clock is the usual cause)" in str(e.value), str(e.value)


def test_a_token_endpoint_down_at_first_is_retried(smart_server: Server) -> None:
    # protocol J5: the server's token503=2 fault: two 503s, then a token, within the retry budget.
    before = smart_server.stats()["tokens"]["unavailable"]
    auth = fhir_async.BackendServices("client-1", key=private_jwk("test-rs384"))
    c = client(smart_server.base("/bulk/fhir", "token503=2;ms=300"), auth=auth)
    c.export(types=["Patient"]).wait(raise_on_failure=True)
    assert smart_server.stats()["tokens"]["unavailable"] - before == 2


class _FlakyTokenProxy(http.server.BaseHTTPRequestHandler):
    """Forwards token requests to the real endpoint, except the ones listed in
    `down` (by 1-based number), which get the 503 an overloaded endpoint sends."""

    target = ""
    down: Tuple[int, ...] = ()
    seen: List[int] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        n = len(self.seen) + 1
        self.seen.append(n)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if n in self.down:
            status, ctype, out = 503, "text/html", b"<html><body>503 Service Unavailable</body></html>"
        else:
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type", "accept")}
            req = urllib.request.Request(self.target, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req) as r:
                    status, ctype, out = r.status, r.headers.get("Content-Type", ""), r.read()
            except urllib.error.HTTPError as e:
                status, ctype, out = e.code, e.headers.get("Content-Type", ""), e.read()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_token_endpoint_down_during_refresh_is_retried(smart_server: Server) -> None:
    # protocol J5: the first token is issued; when it runs out (1 s), the endpoint answers 503
    # twice; the refresh is retried within the budget and the export completes. A client secret
    # (no assertion, so no aud to match) lets a local proxy stand in front of the token endpoint.
    class Proxy(_FlakyTokenProxy):
        target = f"{smart_server.url}/auth/token"
        down = (2, 3)
        seen: List[int] = []

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        token_url = f"http://127.0.0.1:{proxy.server_address[1]}/token"
        auth = fhir_async.BackendServices("client-s", client_secret=SECRET, token_url=token_url)
        c = client(
            smart_server.base("/bulk/fhir"),
            auth=auth,
            retry={"min_wait_ms": 300, "initial_backoff_ms": 300, "max_backoff_ms": 400},
        )
        result = c.export(types=["Patient"]).wait(raise_on_failure=True)
        assert len(list(result.resources())) == 10
        assert len(Proxy.seen) >= 4, f"a first token, two 503s, a refreshed token: {Proxy.seen}"
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=5)
