"""Issue 11 §3, one vocabulary: the names docs/api.md lists for Python are
exactly what fhir_async exports (issue 20: each attribute of the class or
module the row names, each call's argument names, keywords, defaults and
values, the report keys the engine writes; no text search), every error code
the core owns has its class (an unknown code is a failure, not a silent
fallback), and the behaviours the table promises hold."""

from __future__ import annotations

import ast
import builtins
import inspect
import re
import threading
import time
import typing
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Set, Tuple

import pytest

import fhir_async
import fhir_async.dask
from fhir_async import errors
from conftest import Server, client, ids
from stub_server import Stub, StubFile, outcome, stub  # noqa: F401 - `stub` is a fixture

ROOT = Path(__file__).resolve().parents[2]

# What a name before a dot stands for in the table: the class (or module) whose
# attributes it names. `error` is an instance: an exception's fields are set in __init__.
OWNERS: Dict[str, List[Any]] = {
    "client": [fhir_async.Client],
    "job": [fhir_async.Job],
    "result": [fhir_async.Result],
    "paths": [fhir_async.DownloadedFiles],
    "stream": [fhir_async.ResourceStream],
    "error": [fhir_async.FhirAsyncError("x"), fhir_async.JobFailedError("x")],
    "dask": [fhir_async.dask],
}

# The functions a row's bare `name=` (a keyword without its call) belongs to: the name
# must be a parameter of every one of them, and a value given is checked against each
# (a tuple: the default; `"a" | "b"`: the Literal's values). A row not listed here that
# names a bare keyword fails the test.
R = fhir_async.Result
ROW_KEYWORDS: Dict[str, List[Callable[..., Any]]] = {
    "default kinds: streams": [R.resources],
    "default kinds: download to a folder": [R.download],
    "files at once per origin": [R.download, R.resources],
    "files at once in all": [R.download, R.resources],
    "what a count mismatch does": [R.download, R.resources],
    "what a non-JSON line does": [R.download, R.resources, fhir_async.read_ndjson],
    "overall deadline": [fhir_async.Client],
    "retry policy": [fhir_async.Client],
    "the ceiling on a status, manifest, result or token answer": [fhir_async.Client],
    "the other ceilings": [R.download, R.resources],
    "a resumed run's own deadline": [fhir_async.Client],
    "select files of the plan by name": [R.download],
    "the kick-off's Bulk Data form": [fhir_async.Client.export],
    "the STU4 file-size parameters": [fhir_async.Client.export],
    "attachments: off, inline, files": [R.download, R.resources],
    "attachment media types": [R.download, R.resources],
    "the largest attachment taken": [R.download, R.resources],
    "where a stream's files-mode attachments go": [R.resources],
}


def python_cells() -> Iterator[Tuple[str, str]]:
    """(concept, Python cell) of every row of docs/api.md's table."""
    lines = (ROOT / "docs" / "api.md").read_text().splitlines()
    header = next(i for i, l in enumerate(lines) if l.startswith("| concept |"))
    columns = [c.strip() for c in lines[header].strip("|").split("|")]
    col = columns.index("Python")
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        yield cells[0], cells[col].replace("\\|", "|")


def names_in(cell: str) -> List[str]:
    return re.findall(r"`([^`]+)`", cell)


def split_args(text: str) -> List[str]:
    """The top-level arguments of a call's text (commas inside brackets or strings kept)."""
    out, depth, cur, quoted = [], 0, "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "([{":
            depth += 1
        elif not quoted and ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def parameters(f: Any) -> List[inspect.Parameter]:
    """A callable's parameters as a caller sees them (no self)."""
    params = list(inspect.signature(f).parameters.values())
    if params and params[0].name == "self" and not isinstance(f, type):
        params = params[1:]
    return params


def check_call(f: Any, args_text: str, where: str) -> None:
    """`f(a, b, kw=..., ...)`: each positional name is f's parameter at that
    place (the name a caller may also pass as a keyword), each keyword one of
    f's parameters, and a nested call is checked the same way."""
    params = parameters(f)
    names = [p.name for p in params]
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    args = split_args(args_text)
    i = 0
    for arg in args:
        if arg == "...":
            continue
        kw = re.fullmatch(r"(\w+)=(.*)", arg, re.S)
        if kw:
            assert kw.group(1) in names, f"{where}: no keyword {kw.group(1)}= (has {names})"
            if re.match(r"^[A-Za-z_][\w.]*\(", kw.group(2)):
                check(kw.group(2))
            continue
        assert re.fullmatch(r"\w+", arg), f"{where}: argument {arg!r}"
        assert i < len(positional), f"{where}: more positional arguments than {positional}"
        assert arg == positional[i], f"{where}: argument {i + 1} is `{positional[i]}`, not `{arg}`"
        i += 1


def resolve(path: str) -> List[Any]:
    """What `owner.attr.attr` names: a list of objects (one per owner it may be)."""
    head, *rest = path.split(".")
    if head in OWNERS:
        objs = OWNERS[head]
    else:
        assert hasattr(fhir_async, head), f"fhir_async has no {head}"
        objs = [getattr(fhir_async, head)]
    for attr in rest:
        found = [getattr(o, attr) for o in objs if hasattr(o, attr)]
        assert found, f"{path}: no attribute {attr}"
        objs = found
    return objs


def returned(f: Any) -> Any:
    """The class a function returns (its annotation, resolved in its module)."""
    hint = typing.get_type_hints(f)["return"]
    assert isinstance(hint, type), f"{f.__qualname__} returns {hint}"
    return hint


def check(name: str, row: List[Callable[..., Any]] = []) -> None:  # noqa: B006
    """Raises AssertionError when `name` is not exactly what fhir_async exports."""
    name = name.removeprefix("await ")
    if name[:1] in '{"' or "<" in name or name.startswith("report["):
        return  # a literal (a dict, a JSON key, the User-Agent); keys are the core's JSON
    if name in errors.CLASSES:
        return  # an error code
    bare = re.fullmatch(r"(\w+)=(.*)", name, re.S)
    if bare:
        assert row, f"a bare keyword {name!r} in a row without ROW_KEYWORDS"
        for f in row:
            check_call(f, name, f.__qualname__)
            check_value(f, bare.group(1), bare.group(2).strip())
        return
    m = re.fullmatch(r"([A-Za-z_][\w.]*)(?:\((.*?)\))?((?:\.\w+\(.*?\))*)(\[.*\])?", name, re.S)
    assert m, f"cannot read `{name}`"
    path, args, chain, _key = m.groups()
    if "." not in path and hasattr(builtins, path) and args is None:
        assert path in BUILTINS, f"{path}: a builtin the table may not name"
        return
    if "." not in path and args == "" and not hasattr(fhir_async, path):
        # A bare call of the row's function (`max_line=` on `download()` and `resources()`).
        assert any(f.__name__ == path for f in row), f"{path}() is none of the row's {[f.__qualname__ for f in row]}"
        return
    objs = resolve(path)
    if args is not None:
        for f in objs:
            check_call(f, args, path)
    for call in re.findall(r"\.(\w+)\((.*?)\)", chain or ""):
        classes = [returned(f) for f in objs]
        assert all(hasattr(c, call[0]) for c in classes), f"{name}: no method {call[0]}"
        objs = [getattr(c, call[0]) for c in classes]
        for f in objs:
            check_call(f, call[1], call[0])


def check_value(f: Any, kw: str, value: str) -> None:
    """`kinds=("output",)`: the default; `count_check="strict" | "lenient"`: the Literal's values."""
    if not value or value == "...":
        return
    param = next(p for p in parameters(f) if p.name == kw)
    if value.startswith("("):
        assert param.default == ast.literal_eval(value), f"{f.__qualname__}: {kw}={param.default!r}"
    elif value.startswith('"') and "|" in value:
        hint = typing.get_type_hints(f)[kw]
        want = {ast.literal_eval(v.strip()) for v in value.split("|")}
        assert set(typing.get_args(hint)) == want, f"{f.__qualname__}: {kw} is {hint}"
    elif value.startswith("{") and kw == "retry":
        for key in re.findall(r'"(\w+)"', value):
            fhir_async.Client("https://fhir.example", retry={key: 1})  # UsageError for an unknown key


# The builtins a row names as a base class ("also a ValueError") or what Ctrl-C raises.
BUILTINS = {"ValueError", "TimeoutError", "KeyboardInterrupt"}


def row_bases_hold(cell: str) -> None:
    """A builtin named beside a class ("`UsageError` (also a `ValueError`)") is its base."""
    names = names_in(cell)
    for b in [n for n in names if n in BUILTINS and n != "KeyboardInterrupt"]:
        classes = [getattr(fhir_async, n) for n in names if isinstance(getattr(fhir_async, n, None), type)]
        assert any(issubclass(c, getattr(builtins, b)) for c in classes), f"no class of the row is a {b}"


def test_every_python_name_in_docs_api_exists() -> None:
    rows = list(python_cells())
    assert len(rows) > 40
    checked = 0
    for concept, cell in rows:
        row = next((fs for c, fs in ROW_KEYWORDS.items() if concept.startswith(c)), [])
        for name in names_in(cell):
            try:
                check(name, row)
            except AssertionError as e:
                raise AssertionError(f"docs/api.md, {concept!r}: `{name}`: {e}") from None
            checked += 1
        row_bases_hold(cell)
    assert checked > 60


def test_the_checker_refuses_what_is_not_exported() -> None:
    # The table's check is exact: each of these is a near miss of a real name.
    for wrong, row in [
        ("Client(base, token=...)", []),
        ("client.kickoff(method, path, body, mode=...)", []),
        ("job.wait(raise_on_failure=True, progres=True)", []),
        ("result.to_arrow(type)", []),
        ("result.download_all(...)", []),
        ("read_ndjson(paths).to_feather()", []),
        ("dask.download(result, dest, cluster=...)", []),
        ("max_line=", [fhir_async.read_ndjson]),
        ('kinds=("output",)', [R.download]),
        ('count_check="strict" | "loose"', [R.resources]),
        ("upload()", [R.download, R.resources]),
        ("OSError", []),
    ]:
        with pytest.raises(AssertionError):
            check(wrong, row)
    with pytest.raises(fhir_async.UsageError):
        check_value(fhir_async.Client, "retry", '{"min_wait": ...}')


def test_the_report_and_details_keys_in_docs_api_are_the_cores(stub: Stub, tmp_path: Path) -> None:
    # The keys a row names (`report["invalid"]`, `error.details["serverMessage"]`) are the
    # engine's JSON: each is found in the reports of a real download that has them all.
    cells = " ".join(cell for _, cell in python_cells())
    report_keys = set(re.findall(r'`report\["(\w+)"\]`', cells))
    detail_keys = set(re.findall(r'`error\.details\["(\w+)"\]`', cells))
    assert {"invalid", "countMismatch", "error", "warnings"} <= report_keys and detail_keys
    stub.files.update(
        bad=StubFile(b'{"resourceType":"Patient","id":"a"}\n{not json}\n', count=5),
        gone=StubFile(outcome("it is gone"), status=404),
    )
    result = client(stub.base).export().wait(raise_on_failure=True)
    with pytest.warns(fhir_async.FhirAsyncWarning):
        paths = result.download(tmp_path, count_check="lenient")
    found = {k for r in paths.reports for k in r}
    assert report_keys <= found, report_keys - found
    details = {k for r in paths.failed for k in r["error"].details}
    assert detail_keys <= details, detail_keys - details


def core_codes() -> Set[str]:
    """Every code the core (and the native client) can give an error: the
    string literals of each `fn code(&self)` in their sources."""
    found: Set[str] = set()
    # Every source file of both crates: a split moves an error type, never out of the check.
    for path in sorted([*(ROOT / "core" / "src").rglob("*.rs"), *(ROOT / "client" / "src").rglob("*.rs")]):
        text = path.read_text()
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
