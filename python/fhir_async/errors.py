"""The exceptions of fhir_async, declared once; the native module raises them.

Every exception has a stable, machine-readable ``code`` (the same string in
every binding) and ``details`` (the engine's camelCase fields, when any).
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional

__all__ = [
    "FhirAsyncError",
    "ProtocolError",
    "InsecureUrl",
    "UsageError",
    "DeadlineExceeded",
    "RetriesExhausted",
    "Unauthorized",
    "KickoffIndeterminate",
    "DownloadError",
    "InvalidLineError",
    "JobFailed",
    "Cancelled",
    "FhirAsyncWarning",
]


class FhirAsyncError(Exception):
    """Base class of every fhir_async error."""

    default_code: ClassVar[str] = "error"

    code: str
    details: Dict[str, Any]

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.details = dict(details or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, code={self.code!r})"


class ProtocolError(FhirAsyncError):
    """The server broke the protocol (a 202 without a status URL, a manifest
    that is not one, a bad callback signature, ...)."""

    default_code = "protocol"


class InsecureUrl(ProtocolError):
    """The server handed out a URL that would leak the token or downgrade to http."""

    default_code = "insecure_url"


class UsageError(FhirAsyncError, ValueError):
    """The API was used wrongly (bad configuration, wrong state)."""

    default_code = "usage"


class DeadlineExceeded(FhirAsyncError, TimeoutError):
    """The job (or a ``wait(timeout=...)``) ran past its deadline."""

    default_code = "deadline_exceeded"


class RetriesExhausted(FhirAsyncError):
    """Transient failures (5xx, 429, resets) outlasted the retry budget."""

    default_code = "retries_exhausted"


class Unauthorized(FhirAsyncError):
    """The server kept answering 401 even after a token refresh."""

    default_code = "unauthorized"


class KickoffIndeterminate(FhirAsyncError):
    """The kick-off may have reached the server; it is never replayed."""

    default_code = "kickoff_indeterminate"


class DownloadError(FhirAsyncError):
    """A file download failed for good. ``code`` says why: ``http``,
    ``unauthorized``, ``count_mismatch``, ``invalid_line``, ``decode``,
    ``retries_exhausted``, ``redirect``, ``blocked``, ``line_too_long`` or ``io``.
    ``details`` has the engine's fields (``url``, ``status``, ``serverMessage``,
    ``kind``, ``expected``, ``actual``, ...)."""

    default_code = "download"


class InvalidLineError(DownloadError, ValueError):
    """A line of an NDJSON file is not JSON (``code`` ``invalid_line``).

    Raised only with ``on_invalid_line="raise"``; by default a bad line is
    skipped, every valid line is still delivered, and the line is recorded in
    the file's report (``invalid``: ``[{"line": N, "message": ...}]``).
    ``details``: ``url`` (or ``path`` for a local file), ``line`` (1-based,
    blank lines not counted) and ``message``. A ``ValueError``, as the JSON
    parsers' own errors are."""

    default_code = "invalid_line"

    @property
    def file(self) -> Optional[str]:
        """The file's URL (or local path)."""
        found = self.details.get("url") or self.details.get("path")
        return None if found is None else str(found)

    @property
    def line(self) -> Optional[int]:
        """The 1-based line number (blank lines not counted)."""
        found = self.details.get("line")
        return None if found is None else int(found)


class JobFailed(FhirAsyncError):
    """The server reports that the operation failed. ``outcome`` is the job's
    outcome; ``operation_outcome`` the server's OperationOutcome, if any."""

    default_code = "job_failed"

    outcome: Dict[str, Any]

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
        outcome: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.outcome = dict(outcome or {})

    @property
    def operation_outcome(self) -> Optional[Dict[str, Any]]:
        result = self.outcome.get("result") or {}
        kind = result.get("kind")
        if kind == "operationOutcome":
            oo: Optional[Dict[str, Any]] = result.get("outcome")
            return oo
        if kind == "bundle":
            entries = (result.get("bundle") or {}).get("entry") or []
            if entries:
                found: Optional[Dict[str, Any]] = (entries[0].get("response") or {}).get("outcome")
                return found
        return None


class Cancelled(FhirAsyncError):
    """The job was cancelled, so it has no result (or a download was stopped)."""

    default_code = "cancelled"


class FhirAsyncWarning(UserWarning):
    """Something worth telling a human that did not stop the call: a file that
    failed while the others were kept, lines skipped as invalid."""
