"""Runs every shared scenario in tests/vectors/ through the extension's
low-level Job (format: tests/vectors/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import fhir_async
from fhir_async import _native

VECTORS = Path(__file__).resolve().parents[2] / "tests" / "vectors"
FILES = sorted(VECTORS.glob("*.json"))
# The only transport failure kinds of the format (tests/vectors/README.md).
TRANSPORT_KINDS = ("connect", "afterSend")


def subset(expected: Any, actual: Any, path: str = "") -> None:
    """``expected`` is a subset of ``actual`` (README, *Matching*)."""
    if expected is None:
        assert actual is None, f"{path}: expected null/absent, got {actual!r}"
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for k, v in expected.items():
            subset(v, actual.get(k), f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected an array, got {actual!r}"
        assert len(expected) == len(actual), f"{path}: expected {len(expected)} items, got {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            subset(e, a, f"{path}[{i}]")
    elif isinstance(expected, (int, float)) and not isinstance(expected, bool):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), (
            f"{path}: expected {expected!r}, got {actual!r}"
        )
        assert float(expected) == float(actual), f"{path}: expected {expected!r}, got {actual!r}"
    else:
        assert expected == actual, f"{path}: expected {expected!r}, got {actual!r}"


def headers_of(v: Dict[str, Any]) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    for k, val in (v.get("headers") or {}).items():
        for item in val if isinstance(val, list) else [val]:
            out.append((k, item))
    return out


def body_of(v: Dict[str, Any]) -> bytes:
    body = v.get("body")
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def action_for_matching(action: Dict[str, Any]) -> Dict[str, Any]:
    req = action.get("request")
    if isinstance(req, dict):
        req = dict(req)
        req["headers"] = {k: v for k, v in req.get("headers") or []}
        action = {**action, "request": req}
    return action


def test_there_are_vectors() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_vector(path: Path) -> None:
    run_vector(json.loads(path.read_text()))


def test_unknown_transport_error_fails_the_vector() -> None:
    # issue 10 §3: a typo in `transportError` must fail the vector, not be read as after-send.
    v = json.loads((VECTORS / "h02_transport_errors_retried.json").read_text())
    steps = v["steps"]
    at = next(i for i, s in enumerate(steps) if "transportError" in s)
    steps[at] = {**steps[at], "transportError": "afterSned"}
    with pytest.raises(AssertionError, match="unknown transportError 'afterSned'"):
        run_vector(v)


def run_vector(v: Dict[str, Any]) -> None:
    try:
        job = _native.Job(json.dumps(v["config"]))
    except fhir_async.FhirAsyncError as e:
        assert v.get("newError") is not None, f"Job creation failed: {e!r}"
        subset(v["newError"], {"code": e.code})
        return
    assert v.get("newError") is None, "expected Job creation to fail"
    last_id: Optional[int] = None
    for i, step in enumerate(v["steps"]):
        now = step["now"]
        where = f"step {i} ({step.get('note', '')})"
        if "expect" in step:
            try:
                actual = job.next_action(now)
            except fhir_async.FhirAsyncError as e:
                actual = {"type": "error", "code": e.code, "error": e.details}
            req = actual.get("request")
            if isinstance(req, dict):
                last_id = req["id"]
            try:
                subset(step["expect"], action_for_matching(actual), "action")
            except AssertionError as e:
                raise AssertionError(f"{where}: {e}") from None
        elif "respond" in step:
            assert last_id is not None, f"{where}: respond without a sent request"
            r = step["respond"]
            job.handle_response(last_id, r.get("status", 0), headers_of(r), body_of(r), now, r.get("url"))
        elif "transportError" in step:
            assert last_id is not None, f"{where}: transportError without a sent request"
            kind = step["transportError"]
            assert kind in TRANSPORT_KINDS, f"{where}: unknown transportError {kind!r}"
            job.handle_transport_error(last_id, kind, "scripted failure", now)
        elif "cancel" in step:
            job.cancel(now)
        elif "cleanup" in step:
            job.cleanup()
        elif "refreshManifest" in step:
            job.refresh_manifest(now)
        elif "resume" in step:
            job = _native.Job.from_json(job.to_json())
        elif "callback" in step:
            effect = job.handle_callback(json.dumps(step["callback"]), now)
            subset(step.get("effect"), effect, f"{where}: effect")
        elif "progress" in step:
            subset(step["progress"], job.progress(now), f"{where}: progress")
        elif "cancelResult" in step:
            subset(step["cancelResult"], job.cancel_result(), f"{where}: cancelResult")
        elif "downloadPlan" in step:
            subset(step["downloadPlan"], job.download_plan(), f"{where}: downloadPlan")
        elif "warningsContain" in step:
            needle = step["warningsContain"]
            assert any(needle in w for w in job.warnings()), f"{where}: no warning has {needle!r}: {job.warnings()}"
        else:
            raise AssertionError(f"{where}: unknown step {step}")
