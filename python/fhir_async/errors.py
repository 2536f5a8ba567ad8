"""The exceptions of fhir_async, declared once; the native module raises them.

Every exception has a stable, machine-readable ``code`` (the same string in
every binding; the core owns the codes) and ``details`` (the engine's
camelCase fields, when any). Every class name ends in ``Error`` (issue 11);
the old names (``InsecureUrl``, ``DeadlineExceeded``, ``RetriesExhausted``,
``Unauthorized``, ``KickoffIndeterminate``, ``JobFailed``, ``Cancelled``)
stay as deprecated aliases for one release.

``CLASSES`` maps every code to its class; ``for_code`` builds the exception
for a code and refuses one it does not know (a test checks the table
against every code in the core's sources).
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Optional, Type

__all__ = [
    "FhirAsyncError",
    "ProtocolError",
    "InsecureUrlError",
    "UsageError",
    "DeadlineExceededError",
    "RetriesExhaustedError",
    "UnauthorizedError",
    "KickoffIndeterminateError",
    "DownloadError",
    "InvalidLineError",
    "FileChangedError",
    "RefreshFailedError",
    "TooLargeError",
    "AttachmentError",
    "AttachmentOutcomeError",
    "HashMismatchError",
    "BadBinaryError",
    "ResponseTooLargeError",
    "CallbackError",
    "AuthError",
    "JobFailedError",
    "CancelledError",
    "StoppedError",
    "TableError",
    "FhirAsyncWarning",
    "InsecureUrl",
    "DeadlineExceeded",
    "RetriesExhausted",
    "Unauthorized",
    "KickoffIndeterminate",
    "JobFailed",
    "Cancelled",
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
    that is not one, ...)."""

    default_code = "protocol"


class InsecureUrlError(ProtocolError):
    """The server handed out a URL that would leak the token or downgrade to http."""

    default_code = "insecure_url"


class UsageError(FhirAsyncError, ValueError):
    """The API was used wrongly (bad configuration, wrong state)."""

    default_code = "usage"


class DeadlineExceededError(FhirAsyncError, TimeoutError):
    """The job (or a ``wait(timeout=...)``, code ``wait_timeout``) ran past its deadline."""

    default_code = "deadline_exceeded"


class RetriesExhaustedError(FhirAsyncError):
    """Transient failures (5xx, 429, resets) outlasted the retry budget."""

    default_code = "retries_exhausted"


class UnauthorizedError(FhirAsyncError):
    """The server refused the token and no new one could be had (or it
    refused the new one too). ``str(error)`` says why, with the server's words."""

    default_code = "unauthorized"


class KickoffIndeterminateError(FhirAsyncError):
    """The kick-off may have reached the server; it is never replayed."""

    default_code = "kickoff_indeterminate"


class DownloadError(FhirAsyncError):
    """A file download failed for good. ``code`` says why: ``http``,
    ``unauthorized``, ``count_mismatch``, ``size_mismatch`` (the manifest's
    ``fileSize``), ``invalid_line``, ``decode``,
    ``retries_exhausted``, ``redirect``, ``blocked``, ``line_too_long``,
    ``file_changed`` (``FileChangedError``), ``too_large`` (``TooLargeError``), ``refresh_failed``
    (``RefreshFailedError``) or ``io`` (the local disk). Messages name a
    file's URL without its query (a signed URL's signature is a credential,
    protocol K10). ``details`` has the engine's fields (``url``,
    ``status``, ``serverMessage``, ``kind``, ``expected``, ``actual``, ...)."""

    default_code = "download"


class InvalidLineError(DownloadError, ValueError):
    """A line of an NDJSON file is not JSON (``code`` ``invalid_line``).

    Raised only with ``on_invalid_line="raise"``; by default a bad line is
    skipped, every valid line is still delivered, and the line is recorded in
    the file's report (``invalid``: ``[{"line": N, "message": ...}]``).
    ``details``: ``url`` (without its query) or ``path`` (a local file), ``line`` (1-based,
    blank lines not counted) and ``message``. A ``ValueError``, as the JSON
    parsers' own errors are."""

    default_code = "invalid_line"

    @property
    def file(self) -> Optional[str]:
        """The file's URL without its query (or its local path)."""
        found = self.details.get("url") or self.details.get("path")
        return None if found is None else str(found)

    @property
    def line(self) -> Optional[int]:
        """The 1-based line number (blank lines not counted)."""
        found = self.details.get("line")
        return None if found is None else int(found)


class FileChangedError(DownloadError):
    """A file changed on the server after some of its lines were handed to
    the consumer (code ``file_changed``, protocol K7): a continuation that
    was not a 206 under the same validator did not start with the bytes
    already taken. A stream (``Result.resources()``) fails that file with
    this error rather than mix two versions (the lines already handed out
    are all of the first one); a download to a folder starts such a file
    over from byte 0 instead. ``details``: ``url`` (without its query) and
    ``taken`` (lines handed out before the change was seen)."""

    default_code = "file_changed"


class RefreshFailedError(DownloadError):
    """The manifest refresh a file needed (its links expired) failed (code
    ``refresh_failed``, protocol K8): the file fails with the refresh's
    cause (``details["cause"]``), the job keeps its result, and a later
    ``download()`` of the same job (or of its saved state) tries again
    without a new kick-off."""

    default_code = "refresh_failed"


class TooLargeError(DownloadError):
    """A file or an attachment ran past its size limit (code ``too_large``,
    protocol M6; for attachments ``attachment_max_size``, the core's 4 MiB by
    default): seen in its ``Content-Length`` or while its bytes streamed, so no
    more than the limit is ever read. Not retried. An attachment whose declared
    ``size`` is already over the limit is not fetched at all (code ``blocked``).
    ``details``: ``url`` (without its query)."""

    default_code = "too_large"


class AttachmentError(DownloadError):
    """An attachment was fetched but could not be taken (protocol M5); one
    of the three below says why. Found in an attachment report's ``error``
    (``DownloadedFiles.attachments``, ``ResourceStream.attachments``): the
    attachment's resource is left unchanged and no file fails (M9).
    ``details``: ``url`` (without its query)."""

    default_code = "attachment_outcome"


class AttachmentOutcomeError(AttachmentError):
    """The server answered an OperationOutcome instead of the document (code
    ``attachment_outcome``); its words are in the message."""

    default_code = "attachment_outcome"


class HashMismatchError(AttachmentError):
    """The bytes fetched do not match the resource's ``hash`` (base64 SHA-1;
    code ``hash_mismatch``)."""

    default_code = "hash_mismatch"


class BadBinaryError(AttachmentError):
    """A FHIR JSON ``Binary`` answer could not be decoded (no ``data``, bad
    base64; code ``bad_binary``)."""

    default_code = "bad_binary"


class ResponseTooLargeError(ProtocolError):
    """A status, manifest or result answer's body ran past its ceiling (code
    ``response_too_large``, protocol K9; the ``max_response_bytes`` retry
    option, 256 MiB by default): reading stopped there, so memory stays
    bounded by the ceiling whatever the server sends. ``details``: ``url``
    (without its query) and ``limit`` (bytes)."""

    default_code = "response_too_large"


class CallbackError(ProtocolError):
    """A callback failed its check: ``bad_signature`` (the ``X-Signature``
    does not match the body) or ``malformed`` (not a callback payload)."""

    default_code = "bad_signature"


class AuthError(FhirAsyncError):
    """No token could be had from the authorization server (SMART Backend
    Services, code ``auth``). ``details``: ``message``, ``error`` and
    ``errorDescription`` (the server's words), ``httpStatus``."""

    default_code = "auth"


class JobFailedError(FhirAsyncError):
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
        operation_outcome: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.outcome = dict(outcome or {})
        self._operation_outcome = operation_outcome

    @property
    def operation_outcome(self) -> Optional[Dict[str, Any]]:
        """The server's OperationOutcome, wherever the result holds it (the engine finds it)."""
        return self._operation_outcome


class CancelledError(FhirAsyncError):
    """The job was cancelled (on the server), so it has no files to read:
    raised by ``Result.raise_for_status()`` and by reading a cancelled
    result; ``wait(raise_on_failure=True)`` never raises it."""

    default_code = "cancelled"


class StoppedError(FhirAsyncError):
    """An internal stop (not the server's cancel): the call ended before its
    work was done; the job's saved state stays usable. Ctrl-C raises
    ``KeyboardInterrupt`` instead."""

    default_code = "stopped"


class TableError(FhirAsyncError):
    """Arrow or Parquet refused a conversion (codes ``arrow``, ``parquet``;
    issue 15). A file that cannot be read is a ``DownloadError`` (code
    ``io``), a line that is not a JSON object an ``InvalidLineError``."""

    default_code = "arrow"


class FhirAsyncWarning(UserWarning):
    """Something worth telling a human that did not stop the call: a file that
    failed while the others were kept, lines skipped as invalid."""


# Deprecated aliases (issue 11: every class ends in `Error`), for one release.
InsecureUrl = InsecureUrlError
DeadlineExceeded = DeadlineExceededError
RetriesExhausted = RetriesExhaustedError
Unauthorized = UnauthorizedError
KickoffIndeterminate = KickoffIndeterminateError
JobFailed = JobFailedError
Cancelled = CancelledError

CLASSES: Dict[str, Type[FhirAsyncError]] = {
    # the job's (core `Error::code`)
    "usage": UsageError,
    "protocol": ProtocolError,
    "insecure_url": InsecureUrlError,
    "deadline_exceeded": DeadlineExceededError,
    "retries_exhausted": RetriesExhaustedError,
    "unauthorized": UnauthorizedError,
    "kickoff_indeterminate": KickoffIndeterminateError,
    # a file's (core `DownloadError::code`; `usage`, `unauthorized` and
    # `retries_exhausted` of a file are told apart by `DownloadError` below)
    "blocked": DownloadError,
    "http": DownloadError,
    "count_mismatch": DownloadError,
    "size_mismatch": DownloadError,
    "invalid_line": InvalidLineError,
    "line_too_long": DownloadError,
    "decode": DownloadError,
    "redirect": DownloadError,
    "file_changed": FileChangedError,
    "refresh_failed": RefreshFailedError,
    "too_large": TooLargeError,
    # an attachment's (core `AttachmentError::code`, protocol M5)
    "attachment_outcome": AttachmentOutcomeError,
    "hash_mismatch": HashMismatchError,
    "bad_binary": BadBinaryError,
    # the job's (core `Error::code`, K9)
    "response_too_large": ResponseTooLargeError,
    # callbacks (core `CallbackError::code`)
    "bad_signature": CallbackError,
    "malformed": CallbackError,
    # authorization (core `AuthError::code`)
    "auth": AuthError,
    # the native client's own
    "io": DownloadError,
    "stopped": StoppedError,
    # the binding's, for outcomes
    "job_failed": JobFailedError,
    "cancelled": CancelledError,
    "wait_timeout": DeadlineExceededError,
    # the native client's tables (`tables::TableError::code`; `io`, `invalid_line` above)
    "arrow": TableError,
    "parquet": TableError,
}

# Codes a file's error shares with a job's: a file's is a DownloadError.
_FILE_CODES = {"unauthorized", "retries_exhausted", "usage"}


def for_code(
    code: str, message: str, *, details: Optional[Dict[str, Any]] = None, file: bool = False
) -> FhirAsyncError:
    """The exception for ``code`` (``file=True``: a file's error). A code
    not in ``CLASSES`` is a bug of this package, not a server's: it raises
    ``KeyError`` (a test checks every code of the core is here)."""
    cls = DownloadError if file and code in _FILE_CODES else CLASSES[code]
    return cls(message, code=code, details=details)
