"""Issue 24 (protocol M): attachments from Python against the reference server's
``attach`` dialect (``/attach/fhir``): ``result.download(..., attachments=...)`` in
``files`` and ``inline`` mode, and ``result.resources(..., attachments=...)``. Each
attachment is fetched once (per-route counts of ``/_admin/stats``), its SHA-1 is the one
``/_admin/attachments`` lists, no token reaches the storage origin, and a failed one is
reported without touching its resource or any NDJSON file."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import fhir_async
from conftest import FAST, Server, start_server, stop_server

OK = ["att-text", "att-pdf", "att-storage", "att-json", "att-slow", "att-notype", "att-report"]


@pytest.fixture(scope="module")
def attach() -> Iterator[Server]:
    s = start_server("--job-ms", "200", "--retry-after", "0")
    yield s
    stop_server(s)


def listing(s: Server) -> Dict[str, Dict[str, Any]]:
    with urllib.request.urlopen(f"{s.url}/_admin/attachments") as r:
        found: List[Dict[str, Any]] = json.loads(r.read())["attachments"]
    return {a["id"]: a for a in found}


def route(s: Server, name: str) -> int:
    return int(s.stats()["routes"].get(name, 0))


def download(result: fhir_async.Result, out: Path, **kw: Any) -> fhir_async.DownloadedFiles:
    """``result.download``; att-fail and att-big always fail, and one warning says so."""
    with pytest.warns(fhir_async.FhirAsyncWarning, match="attachments failed"):
        return result.download(out, **kw)


def finished(s: Server) -> fhir_async.Result:
    s.reset()
    client = fhir_async.Client(s.base("/attach/fhir"), token="attach-token", retry=FAST)
    result = client.export().wait()
    assert result.status == "completed", result.outcome
    return result


def lines_of(paths: fhir_async.DownloadedFiles) -> Dict[str, Dict[str, Any]]:
    """Every resource of the NDJSON files written, by id, each file's count checked (intact)."""
    out: Dict[str, Dict[str, Any]] = {}
    for report in paths.reports:
        assert not report.get("error"), report
        with open(report["path"], "rb") as f:
            lines = [json.loads(line) for line in f if line.strip()]
        assert len(lines) == report["expected"] == report["resources"], report
        out.update({r["id"]: r for r in lines})
    return out


def by_url(reports: List[Dict[str, Any]], url: str) -> Dict[str, Any]:
    found = [r for r in reports if r["url"] == url]
    assert len(found) == 1, (url, reports)
    return found[0]


def attachment_of(resource: Dict[str, Any]) -> Dict[str, Any]:
    if resource["resourceType"] == "DiagnosticReport":
        found: Dict[str, Any] = resource["presentedForm"][0]
    else:
        found = resource["content"][0]["attachment"]
    return found


def test_m8_files_mode_saves_each_attachment_with_the_listed_sha1(attach: Server, tmp_path: Path) -> None:
    result = finished(attach)
    paths = download(result, tmp_path, attachments="files")
    listed = listing(attach)
    reports = paths.attachments
    on_disk = json.loads((tmp_path / "attachments.json").read_text())["attachments"]
    assert [r["url"] for r in on_disk] == [r["url"] for r in reports]
    for id in OK:
        a = listed[id]
        r = by_url(reports, a["url"])
        assert r.get("error") is None, r
        assert r["sha1"] == a["sha1"] and r["size"] == a["size"], (id, r)
        saved = tmp_path / r["fileName"]
        assert saved.parent == tmp_path / "attachments"
        assert saved.stat().st_size == a["size"]
    # M5: the FHIR JSON Binary is saved decoded, with the Binary's content type
    assert by_url(reports, listed["att-json"]["url"])["contentType"] == "text/html"
    assert not [p for p in (tmp_path / "attachments").iterdir() if p.name.endswith(".tmp")]
    # files mode leaves the NDJSON as the server sent it
    assert "data" not in attachment_of(lines_of(paths)["docref-text-1"])


def test_m7_inline_mode_writes_data_size_hash_into_the_ndjson_and_keeps_url(attach: Server, tmp_path: Path) -> None:
    result = finished(attach)
    paths = download(result, tmp_path, attachments="inline")
    listed = listing(attach)
    resources = lines_of(paths)
    for id, att in [("docref-text-1", "att-text"), ("docref-text-2", "att-text"), ("docref-pdf", "att-pdf"),
                    ("docref-storage", "att-storage"), ("diagrep-json", "att-json")]:
        a = attachment_of(resources[id])
        data = base64.b64decode(a["data"])
        assert len(data) == listed[att]["size"] == a["size"], id
        assert a["hash"] == listed[att]["sha1"], id
        assert a["url"], f"{id}: url kept"
    assert attachment_of(resources["diagrep-json"])["contentType"] == "text/html"


def test_m4_every_attachment_fetched_once_and_no_token_to_the_storage_origin(attach: Server, tmp_path: Path) -> None:
    result = finished(attach)
    download(result, tmp_path, attachments="files")
    stats = attach.stats()
    for id in ["att-text", "att-pdf", "att-json", "att-slow", "att-notype", "att-report"]:
        # att-text is in two resources: its URL is fetched once
        assert stats["routes"].get(f"attach.binary.{id}") == 1, (id, stats["routes"])
        # a Binary read is a FHIR read: the token goes with it
        assert stats["routes_with_authorization"].get(f"attach.binary.{id}") == 1, id
    assert stats["routes"].get("storage.attachment.att-storage") == 1
    assert stats["routes_with_authorization"].get("storage.attachment.att-storage", 0) == 0
    assert stats["storage_requests_with_authorization"] == 0


def test_m9_a_failed_attachment_is_reported_and_its_resource_and_files_are_intact(
    attach: Server, tmp_path: Path
) -> None:
    result = finished(attach)
    paths = download(result, tmp_path, attachments="inline")
    assert not paths.failed
    listed = listing(attach)
    fail = by_url(paths.attachments, listed["att-fail"]["url"])
    error = fail["error"]
    assert isinstance(error, fhir_async.DownloadError), fail
    assert error.code, fail
    assert "attachment store unavailable" in str(error), str(error)
    assert "fileName" not in fail and "sha1" not in fail
    resources = lines_of(paths)
    assert "data" not in attachment_of(resources["docref-fail"])
    # the other resources of the file were hydrated all the same
    assert "data" in attachment_of(resources["docref-text-1"])


def test_m6_the_big_attachment_is_refused_by_its_size(attach: Server, tmp_path: Path) -> None:
    result = finished(attach)
    paths = download(result, tmp_path, attachments="files")
    listed = listing(attach)
    big = by_url(paths.attachments, listed["att-big"]["url"])
    error = big["error"]
    assert isinstance(error, fhir_async.DownloadError), big
    # declared 20 MiB over the 4 MiB default: planned as blocked, never fetched
    assert error.code in ("too_large", "blocked"), error.code
    assert route(attach, "attach.binary.att-big") == 0


def test_m6_an_attachment_over_the_max_size_is_refused(attach: Server, tmp_path: Path) -> None:
    result = finished(attach)
    listed = listing(attach)
    # a 100-byte limit: every attachment declaring more is refused unfetched (blocked, M6)
    paths = download(result, tmp_path, attachments="files", attachment_max_size=100)
    for id in ["att-text", "att-pdf", "att-notype", "att-storage"]:
        r = by_url(paths.attachments, listed[id]["url"])
        assert isinstance(r["error"], fhir_async.DownloadError), r
        assert r["error"].code in ("blocked", "too_large"), r
        assert route(attach, f"attach.binary.{id}") == 0, id
    for id in ["att-slow", "att-report"]:
        assert by_url(paths.attachments, listed[id]["url"]).get("error") is None, id
    # att-json declares 81 bytes but its FHIR JSON Binary answer is longer: its Content-Length
    # is over the limit, so it is refused as it comes (too_large), not read
    r = by_url(paths.attachments, listed["att-json"]["url"])
    assert isinstance(r["error"], fhir_async.TooLargeError) and r["error"].code == "too_large", r
    assert "size limit of 100 bytes" in str(r["error"])


def test_m2_attachment_types_filter_by_media_type(attach: Server, tmp_path: Path) -> None:
    result = finished(attach)
    paths = download(result, tmp_path, attachments="files", attachment_types=["application/pdf"])
    assert route(attach, "attach.binary.att-pdf") == 1
    for id in ["att-text", "att-notype", "att-json", "att-report"]:
        assert route(attach, f"attach.binary.{id}") == 0, id
    assert all("att-pdf" in r["url"] or "att-big" in r["url"] for r in paths.attachments), paths.attachments


def test_m_attachments_off_fetches_nothing(attach: Server, tmp_path: Path) -> None:
    result = finished(attach)
    paths = result.download(tmp_path)
    assert paths.attachments == []
    assert not (tmp_path / "attachments").exists()
    assert not [k for k in attach.stats()["routes"] if k.startswith(("attach.binary", "storage.attachment"))]
    assert "data" not in attachment_of(lines_of(paths)["docref-text-1"])


def test_m7_resources_inline_yields_hydrated_resources(attach: Server) -> None:
    result = finished(attach)
    stream = result.resources(attachments="inline")
    resources = {r["id"]: r for r in stream}
    expected = sum(f["expectedCount"] for f in result.files if f["kind"] == "output")
    assert len(resources) == expected
    listed = listing(attach)
    for id, att in [("docref-text-1", "att-text"), ("docref-storage", "att-storage"), ("diagrep-json", "att-json")]:
        a = attachment_of(resources[id])
        assert len(base64.b64decode(a["data"])) == listed[att]["size"], id
        assert a["hash"] == listed[att]["sha1"] and a["url"], id
    # M9: the failed one's resource comes unchanged
    assert "data" not in attachment_of(resources["docref-fail"])
    fail = by_url(stream.attachments, listed["att-fail"]["url"])
    assert isinstance(fail["error"], fhir_async.DownloadError)
    assert route(attach, "attach.binary.att-text") == 1
    assert attach.stats()["routes_with_authorization"].get("storage.attachment.att-storage", 0) == 0


def test_m8_resources_files_writes_into_attachments_dir(attach: Server, tmp_path: Path) -> None:
    result = finished(attach)
    with pytest.raises(fhir_async.UsageError):
        result.resources(attachments="files")
    stream = result.resources(attachments="files", attachments_dir=tmp_path / "docs")
    resources = {r["id"]: r for r in stream}
    assert "data" not in attachment_of(resources["docref-text-1"])
    listed = listing(attach)
    r = by_url(stream.attachments, listed["att-pdf"]["url"])
    saved = Path(r["fileName"])
    assert saved.parent == tmp_path / "docs"
    assert saved.read_bytes()[:5] == b"%PDF-" and r["sha1"] == listed["att-pdf"]["sha1"]


def test_m_attachment_options_are_checked(attach: Server, tmp_path: Path) -> None:
    result = finished(attach)
    with pytest.raises(fhir_async.UsageError):
        result.download(tmp_path, attachments="everything")  # type: ignore[arg-type]
    with pytest.raises(fhir_async.UsageError):
        result.download(tmp_path, attachments="files", attachment_max_size=0)
    with pytest.raises(fhir_async.UsageError):
        result.download(tmp_path, attachments="files", attachment_types="text/plain")


def test_m5_attachment_codes_have_typed_exceptions() -> None:
    from fhir_async import errors

    for code, cls in [("too_large", fhir_async.TooLargeError), ("attachment_outcome", fhir_async.AttachmentOutcomeError),
                      ("hash_mismatch", fhir_async.HashMismatchError), ("bad_binary", fhir_async.BadBinaryError)]:
        exc = errors.for_code(code, "m", file=True)
        assert type(exc) is cls and exc.code == code
        assert isinstance(exc, fhir_async.DownloadError)
    assert issubclass(fhir_async.HashMismatchError, fhir_async.AttachmentError)
