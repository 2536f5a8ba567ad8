"""Issue 11 §3, one vocabulary: the names docs/api.md lists for Python exist,
every error code the core owns has its class (an unknown code is a failure,
not a silent fallback), and the behaviours the table promises hold."""

from __future__ import annotations

import builtins
import inspect
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List, Set

import pytest

import fhir_async
import fhir_async.dask
from fhir_async import errors
from conftest import Server, client, ids

ROOT = Path(__file__).resolve().parents[2]

# What a name before a dot stands for in the table.
INSTANCES = {
    "client": [fhir_async.Client],
    "job": [fhir_async.Job],
    "result": [fhir_async.Result],
    "paths": [fhir_async.DownloadedFiles],
    "stream": [fhir_async.ResourceStream],
    "error": [fhir_async.FhirAsyncError("x"), fhir_async.JobFailedError("x")],
    "dask": [fhir_async.dask],
}

# Functions whose keyword arguments the table may name as `name=`.
KEYWORDS = [
    fhir_async.Client.__init__,
    fhir_async.Client.export,
    fhir_async.Client.kickoff,
    fhir_async.Job.wait,
    fhir_async.Result.resources,
    fhir_async.Result.download,
    fhir_async.read_ndjson,
    fhir_async.BackendServices,
    fhir_async.dask.download,
    fhir_async.dask.to_dataframe,
]


def python_cells() -> Iterator[tuple[str, str]]:
    """(concept, Python cell) of every row of docs/api.md's table."""
    lines = (ROOT / "docs" / "api.md").read_text().splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("| concept |"))
    columns = [c.strip() for c in lines[header].strip("|").split("|")]
    col = columns.index("Python")
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        yield cells[0], cells[col]


def names_in(cell: str) -> List[str]:
    return re.findall(r"`([^`]+)`", cell)


def check(name: str) -> None:
    """Raises AssertionError when `name` does not exist in fhir_async."""
    name = name.removeprefix("await ")
    if name[:1] in '{"' or "<" in name or name.startswith("report["):
        return  # a literal (a dict, a string, the User-Agent)
    if name in errors.CLASSES:
        return  # an error code
    dotted = re.match(r"^(\w+)\.(\w+)", name)
    if dotted and dotted.group(1) in INSTANCES:
        owner, attr = dotted.groups()
        assert any(hasattr(o, attr) for o in INSTANCES[owner]), f"{owner}.{attr}"
        return
    keyword = re.match(r"^(\w+)=", name)
    if keyword:
        params: Set[str] = set()
        for f in KEYWORDS:
            params |= set(inspect.signature(f).parameters)
        assert keyword.group(1) in params, f"keyword {keyword.group(1)}="
        return
    head = re.match(r"^([A-Za-z_]\w*)", name)
    assert head, name
    if hasattr(builtins, head.group(1)):
        return  # ValueError, TimeoutError, KeyboardInterrupt
    if name == f"{head.group(1)}()" and not hasattr(fhir_async, head.group(1)):
        # A bare call after its owner was named (`result.download`: ...; `resources()`: ...).
        owners = [o for objs in INSTANCES.values() for o in objs]
        assert any(hasattr(o, head.group(1)) for o in owners), name
        return
    assert hasattr(fhir_async, head.group(1)), head.group(1)
    # Keyword arguments inside a call: BackendServices(client_id, key=..., scope=...).
    for kw in re.findall(r"(\w+)=", name):
        check(f"{kw}=")


def test_every_python_name_in_docs_api_exists() -> None:
    rows = list(python_cells())
    assert len(rows) > 40
    checked = 0
    for concept, cell in rows:
        for name in names_in(cell):
            try:
                check(name)
            except AssertionError as e:
                raise AssertionError(f"docs/api.md, {concept!r}: `{name}` does not exist ({e})") from None
            checked += 1
    assert checked > 60


def core_codes() -> Set[str]:
    """Every code the core (and the native client) can give an error: the
    string literals of each `fn code(&self)` in their sources."""
    found: Set[str] = set()
    for rel in ["core/src/error.rs", "core/src/download/error.rs", "core/src/callback.rs", "core/src/auth.rs", "client/src/error.rs", "client/src/tables/error.rs"]:
        text = (ROOT / rel).read_text()
        for m in re.finditer(r"fn code\(&self\) -> &'static str \{(.*?)\n    \}", text, re.S):
            found |= set(re.findall(r'"([a-z_]+)"', m.group(1)))
    return found


def test_every_core_error_code_has_its_class() -> None:
    # issue 11 §4: the core owns the codes; the binding maps each one, with no catch-all.
    codes = core_codes()
    assert {"usage", "unauthorized", "invalid_line", "bad_signature", "malformed", "auth", "stopped", "io"} <= codes
    missing = codes - set(errors.CLASSES)
    assert not missing, f"codes without a Python class: {sorted(missing)}"
    for code in codes:
        e = errors.for_code(code, "x")
        assert isinstance(e, fhir_async.FhirAsyncError) and e.code == code
    with pytest.raises(KeyError):
        errors.for_code("a_code_nobody_made", "x")
    # A file's error whose code a job's error shares is a DownloadError.
    assert type(errors.for_code("unauthorized", "x", file=True)) is fhir_async.DownloadError
    assert type(errors.for_code("unauthorized", "x")) is fhir_async.UnauthorizedError


def test_issue19_codes_have_their_classes() -> None:
    # issue 19: file_changed (K7) and refresh_failed (K8) are a file's errors, response_too_large
    # (K9) a job's; each is declared once, with its code, and raised by its code.
    for code, cls, base in [
        ("file_changed", fhir_async.FileChangedError, fhir_async.DownloadError),
        ("refresh_failed", fhir_async.RefreshFailedError, fhir_async.DownloadError),
        ("response_too_large", fhir_async.ResponseTooLargeError, fhir_async.ProtocolError),
    ]:
        assert code in core_codes(), code
        assert errors.CLASSES[code] is cls and cls.default_code == code and issubclass(cls, base)
        assert type(errors.for_code(code, "x", file=True)) is cls
        assert cls.__name__ in errors.__all__ and getattr(fhir_async, cls.__name__) is cls


def test_class_names_end_in_error_and_old_names_are_aliases() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, fhir_async.FhirAsyncError) and not name.endswith("Error"):
            assert getattr(errors, name + "Error") is obj, name
    assert fhir_async.Cancelled is fhir_async.CancelledError
    assert fhir_async.StoppedError is not fhir_async.CancelledError
    assert issubclass(fhir_async.CallbackError, fhir_async.ProtocolError)


def test_raise_on_failure_never_raises_for_cancelled(server: Server) -> None:
    job = client(server.base("/bulk/fhir", "never;retry=5")).export(types=["Patient"])
    job._request_cancel()
    result = job.wait(raise_on_failure=True)
    assert result.status == "cancelled" and not result.ok
    with pytest.raises(fhir_async.CancelledError):
        result.resources()


def test_poll_now_overrides_retry_after_once(server: Server) -> None:
    job = client(server.base("/bulk/fhir", "never;retry=30")).export(types=["Patient"])
    deadline = time.monotonic() + 10
    while job.progress.polls == 0:  # the first poll (bounded)
        assert time.monotonic() < deadline
        job.poll()
        time.sleep(0.01)
    assert job.progress.polls == 1 and (job.progress.next_poll_in_ms or 0) > 10_000
    assert job.poll_now()
    job.poll()
    assert job.progress.polls == 2
    assert (job.progress.next_poll_in_ms or 0) > 10_000, "the next Retry-After is honoured again"
    job.cancel()


def test_cleanup_is_on_the_job(server: Server) -> None:
    job = client(server.base("/bulk/fhir")).export(types=["Patient"])
    result = job.wait(raise_on_failure=True)
    done = job.cleanup()
    assert done is not None and done["ok"], done
    assert result.cleanup is not None  # the deprecated alias stays


def test_client_resources_take_a_result_or_its_manifest(server: Server) -> None:
    c = client(server.base("/bulk/fhir"))
    result = c.export(types=["Patient"]).wait(raise_on_failure=True)
    assert result.manifest is not None
    want = ids(list(result.resources()))
    assert ids(list(c.resources(result))) == want
    assert ids(list(c.resources(result.manifest))) == want
    with pytest.raises(fhir_async.UsageError):
        c.resources(dict(result.manifest))  # type: ignore[arg-type]
    with pytest.raises(fhir_async.UsageError):
        client(server.base("/bulk/fhir")).resources(result)


def test_max_per_origin_and_its_old_name(server: Server, tmp_path: Path) -> None:
    result = client(server.base("/bulk/fhir")).export(types=["Patient", "Condition"]).wait()
    assert len(result.download(tmp_path / "a", max_per_origin=2)) == 2
    assert len(result.download(tmp_path / "b", concurrency=2)) == 2
    with pytest.raises(fhir_async.UsageError):
        result.download(tmp_path / "c", max_per_origin=0)
    assert len(ids(list(result.resources(max_per_origin=2)))) == len(ids(list(result.resources())))


def test_a_stop_through_the_api_is_stopped_not_cancelled(server: Server) -> None:
    # issue 11 §4: an internal stop is not the server's cancel; the job goes on afterwards.
    c = client(server.base("/bulk/fhir", "never;retry=30"))
    job = c.export(types=["Patient"])
    threading.Timer(0.3, c.stop).start()
    start = time.monotonic()
    with pytest.raises(fhir_async.StoppedError) as e:
        job.wait()
    assert e.value.code == "stopped" and not isinstance(e.value, fhir_async.CancelledError)
    assert time.monotonic() - start < 2
    assert job.cancel() is not None
    assert job.result().status == "cancelled"


def test_error_details_not_detail() -> None:
    e = fhir_async.UnauthorizedError("x", details={"serverMessage": "no"})
    assert e.details == {"serverMessage": "no"} and not hasattr(e, "detail")


def test_handle_callback_answers_a_dict_like_js(server: Server) -> None:
    import hashlib
    import hmac
    import json

    job = client(server.base("/bulk/fhir", "never;retry=30")).export(types=["Patient"])
    body = json.dumps(
        {"resourceType": "Parameters", "parameter": [{"name": "status", "valueCode": "completed"}]}
    ).encode()
    sig = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    effect = job.handle_callback(body, sig, "s3cret")
    assert isinstance(effect, dict) and effect["kind"] in ("woken", "ignored")
    with pytest.raises(fhir_async.CallbackError) as e:
        job.handle_callback(body, "sha256=00", "s3cret")
    assert e.value.code == "bad_signature"
    with pytest.raises(fhir_async.CallbackError) as e2:
        fhir_async.verify_callback(b"not json", "sha256=" + hmac.new(b"s", b"not json", hashlib.sha256).hexdigest(), "s")
    assert e2.value.code == "malformed"
    job.cancel()


def test_names_are_exported() -> None:
    for name in fhir_async.__all__:
        assert hasattr(fhir_async, name), name
    assert callable(Any)  # typing stays importable for the checks above
