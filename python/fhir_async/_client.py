"""The typed Python API over the native client: ``Client`` starts and
resumes jobs; the other names live in the modules named for what they hold
(``_auth``, ``_job``, ``_result``, ``_files``, ``_progress``) and are
re-exported here and from ``fhir_async``.

Every protocol decision is made by the Rust engine, and the native client
(``fhir-async-client``) does the HTTP, the files and the threads without the
GIL. These files only shape arguments and results.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import _native
from ._auth import BackendServices, TokenSource
from ._files import DownloadedFiles, FileReports, NdjsonFiles, ResourceStream, read_ndjson
from ._job import Job, _ms
from ._options import CountCheck, OnInvalidLine
from ._progress import Progress
from ._result import Manifest, Result
from .errors import UsageError

__all__ = [
    "BackendServices",
    "Client",
    "CountCheck",
    "DownloadedFiles",
    "FileReports",
    "Instant",
    "Job",
    "Manifest",
    "NdjsonFiles",
    "OnInvalidLine",
    "Progress",
    "ResourceStream",
    "Result",
    "TokenSource",
    "read_ndjson",
]

Instant = Union[str, _dt.datetime]
# A path as `open()` takes it.
PathLike = Union[str, "os.PathLike[str]"]

# The retry options are the engine's RetryPolicy fields (its JSON names), read from it.
_RETRY_FIELDS = tuple(_native.retry_defaults())


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _retry_config(retry: Optional[Mapping[str, int]]) -> Dict[str, int]:
    """Accepts snake_case (``min_wait_ms``) or the engine's camelCase keys."""
    out: Dict[str, int] = {}
    for key, value in (retry or {}).items():
        camel = _camel(key)
        if camel not in _RETRY_FIELDS:
            raise UsageError(f"unknown retry option {key!r}; known: {', '.join(_RETRY_FIELDS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UsageError(f"retry option {key!r} must be a non-negative int")
        out[camel] = value
    return out


def _instant(value: Optional[Instant]) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise UsageError("a datetime for since/until must be timezone-aware")
        return value.isoformat()
    return value


def _paths(value: Union[PathLike, Sequence[PathLike]]) -> List[str]:
    """``ca_files``: one path or a list of them, as ``str``."""
    items = [value] if isinstance(value, (str, os.PathLike)) else value
    out: List[str] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise UsageError(f"ca_files takes paths (str or os.PathLike), not {type(item).__name__}")
        out.append(os.fspath(item))
    return out


class Client:
    """A FHIR server to start asynchronous operations on.

    ``timeout`` is the overall deadline of each job in seconds (None: none);
    ``retry`` tunes polling and retries (``min_wait_ms``, ``initial_backoff_ms``,
    ``max_retries``, ...) and holds the ceiling on a status, manifest or
    result answer's body, ``max_response_bytes`` (256 MiB by default; past
    it: ``ResponseTooLargeError``, with memory bounded by it); ``allowed_origins`` are other origins that may
    receive the token for file downloads. ``token`` is None, a str, or a
    callable returning a str (asked again after a 401); ``auth`` is
    ``BackendServices(...)`` for SMART Backend Services instead.

    How servers are reached (for the FHIR requests and SMART's discovery and
    token requests alike): ``ca_files`` are PEM files of certificate
    authorities to trust besides the bundled Mozilla roots (a hospital's
    private CA; one path or a list); ``system_roots=True`` trusts the
    operating system's trust store too; ``proxy`` is the proxy every request
    goes through (``http://host:port``, ``https://``, ``socks5://``; user and
    password in the URL). With ``proxy=None`` the environment's is used
    (``ALL_PROXY``, ``HTTPS_PROXY``, ``HTTP_PROXY``, with ``NO_PROXY``), read
    when the client is built. A CA file that cannot be read or holds no
    certificate, or a proxy URL that cannot be used, is a ``UsageError``
    naming it. TLS verification is never turned off.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenSource = None,
        timeout: Optional[float] = None,
        retry: Optional[Mapping[str, int]] = None,
        allowed_origins: Sequence[str] = (),
        auth: Optional[BackendServices] = None,
        ca_files: Union[PathLike, Sequence[PathLike]] = (),
        system_roots: bool = False,
        proxy: Optional[str] = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url:
            raise UsageError("base_url must be a non-empty string")
        if token is not None and not isinstance(token, str) and not callable(token):
            raise UsageError("token must be None, a str, or a callable returning a str")
        if auth is not None and not isinstance(auth, BackendServices):
            raise UsageError("auth must be a fhir_async.BackendServices")
        if auth is not None and token is not None:
            raise UsageError("pass token= or auth=, not both")
        self.base_url = base_url
        self._timeout_ms = _ms(timeout)
        self._retry = _retry_config(retry)
        self._allowed_origins = list(allowed_origins)
        # How to build this client again in another process (fhir_async.dask); never pickled as is.
        self._token, self._auth = token, auth
        self._ca_files = _paths(ca_files)
        if not isinstance(system_roots, bool):
            raise UsageError("system_roots must be a bool")
        if proxy is not None and (not isinstance(proxy, str) or not proxy):
            raise UsageError("proxy must be None or a non-empty str (http://host:port)")
        self._system_roots, self._proxy = system_roots, proxy
        self._native = _native.Client(
            base_url,
            token,
            None if auth is None else auth._native(),
            ca_files=self._ca_files,
            system_roots=system_roots,
            proxy=proxy,
        )

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def _config(self, operation: Dict[str, Any], prefer: Dict[str, Any]) -> str:
        return json.dumps(
            {
                "baseUrl": self.base_url,
                "operation": operation,
                "prefer": prefer,
                "retry": self._retry,
                "timeoutMs": self._timeout_ms,
                "allowedOrigins": self._allowed_origins,
            }
        )

    def export(
        self,
        *,
        types: Optional[Sequence[str]] = None,
        since: Optional[Instant] = None,
        until: Optional[Instant] = None,
        type_filters: Optional[Sequence[str]] = None,
        elements: Optional[Sequence[str]] = None,
        patients: Optional[Sequence[str]] = None,
        level: str = "system",
        group_id: Optional[str] = None,
        post: bool = False,
        output_format: Optional[str] = None,
        include_associated_data: Optional[Sequence[str]] = None,
        organize_output_by: Optional[str] = None,
        allow_partial_manifests: Optional[bool] = None,
        minimum_file_size: Optional[int] = None,
        maximum_file_size: Optional[int] = None,
        ig_version: str = "stu3",
        lenient: bool = False,
        separate_export_status: bool = False,
        callback_url: Optional[str] = None,
        start: bool = True,
    ) -> "Job":
        """Starts a Bulk Data ``$export`` (``level``: system, patient, group).

        With ``start=True`` this returns once the server accepted the kick-off,
        so ``status_url`` is known (see ``Job.start``: a 429 on the kick-off is
        waited out as its ``Retry-After`` says, within ``max_kickoff_retries``;
        then ``RetriesExhaustedError``). With ``start=False`` the first ``wait``
        sends it.

        ``ig_version`` is the Bulk Data form of the kick-off: ``"stu2"``,
        ``"stu3"`` (the default), ``"stu4"`` (a POST of ``Parameters`` only) or
        ``"auto"`` (read the server's CapabilityStatement first, protocol L2).
        ``minimum_file_size`` / ``maximum_file_size`` are bytes (L7).
        """
        op: Dict[str, Any] = {
            "type": "export",
            "level": level,
            "groupId": group_id,
            "types": list(types or []),
            "since": _instant(since),
            "until": _instant(until),
            "typeFilters": list(type_filters or []),
            "elements": list(elements or []),
            "patients": list(patients or []),
            "includeAssociatedData": list(include_associated_data or []),
            "organizeOutputBy": organize_output_by,
            "allowPartialManifests": allow_partial_manifests,
            "outputFormat": output_format,
            "minimumFileSize": minimum_file_size,
            "maximumFileSize": maximum_file_size,
            "igVersion": ig_version,
            "post": post,
        }
        prefer = {
            "lenient": lenient,
            "separateExportStatus": separate_export_status,
            "callbackUrl": callback_url,
        }
        return self._new(op, prefer, start)

    def kickoff(
        self,
        method: str,
        path: str,
        body: Union[None, str, Mapping[str, Any]] = None,
        *,
        async_mode: Optional[str] = None,
        callback_url: Optional[str] = None,
        lenient: bool = False,
        start: bool = True,
    ) -> "Job":
        """Starts any operation with ``Prefer: respond-async``: ``method`` is
        GET, POST or DELETE; ``path`` is relative to the base (``$reindex``,
        ``Patient?name=x``, ``""`` for a transaction); ``async_mode`` is
        ``"bundle"`` or ``"redirect"``. With ``start=True`` it returns once
        the kick-off was accepted, like ``export()`` (see ``Job.start``)."""
        text = body if body is None or isinstance(body, str) else json.dumps(body)
        op = {"type": "operation", "method": method.upper(), "path": path, "body": text}
        prefer = {"asyncMode": async_mode, "callbackUrl": callback_url, "lenient": lenient}
        return self._new(op, prefer, start)

    def resume(self, state: str) -> "Job":
        """A job saved with ``Job.to_json()``, in this process or another one.
        The resumed run's deadline is this client's ``timeout`` from now (None:
        none), not the first run's: it bounds the waits, polls and manifest
        refreshes of what follows (issue 19)."""
        return Job(self, self._native.resume(state, self._timeout_ms))

    def stop(self) -> None:
        """Stops every call of this client in progress, from any thread (a
        UI's stop button): each raises ``StoppedError`` (code ``stopped``),
        an internal stop, not the server's cancel; the jobs can be waited for
        again. Ctrl-C raises ``KeyboardInterrupt`` instead."""
        self._native.stop()

    def resources(
        self,
        result_or_manifest: Union["Result", "Manifest"],
        resource_type: Union[None, str, Sequence[str]] = None,
        **options: Any,
    ) -> "ResourceStream":
        """The resources of a finished job: ``result_or_manifest`` is a
        ``Result`` or its ``result.manifest``. Same options as ``Result.resources``."""
        result = result_or_manifest._result if isinstance(result_or_manifest, Manifest) else result_or_manifest
        if not isinstance(result, Result) or result.job._client is not self:
            raise UsageError("resources() needs a Result of this client (or its result.manifest)")
        return result.resources(resource_type, **options)

    def _new(self, op: Dict[str, Any], prefer: Dict[str, Any], start: bool) -> "Job":
        job = Job(self, self._native.job(self._config(op, prefer)))
        if start:
            job.start()
        return job
