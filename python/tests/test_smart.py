"""SMART Backend Services from Python (issue 12): `Client(base,
auth=BackendServices(...))` on the native client's BackendServicesAuth,
against the reference server's strict token endpoint (`--jwks` registers
`client-1`; `--token-ttl 1` makes tokens short-lived)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

import fhir_async
from conftest import ROOT, Server, client, start_server, stop_server

KEYS = ROOT / "tests" / "server" / "tests" / "fixtures"


@pytest.fixture(scope="module")
def smart_server() -> Iterator[Server]:
    s = start_server(
        "--job-ms", "4500", "--retry-after", "0", "--patients", "10",
        "--jwks", str(KEYS / "jwks.json"), "--token-ttl", "1",
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
    before = issued(smart_server)
    c = client(
        smart_server.base("/bulk/fhir"),
        auth=auth,
        retry={"min_wait_ms": 300, "initial_backoff_ms": 300, "max_backoff_ms": 400},
    )
    job = c.export(types=["Patient"])
    result = job.wait(raise_on_failure=True)
    assert len(list(result.resources())) == 10, "the files are fetched with the token too"
    assert issued(smart_server) - before >= 3, "at least three tokens over a 4.5 s job with 1 s tokens"
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
