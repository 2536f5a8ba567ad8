"""fhir_async: FHIR asynchronous operations (bulk ``$export``, ``$reindex``,
anything sent with ``Prefer: respond-async``) on a Rust sans-IO engine.

    client = fhir_async.Client("https://fhir.example/r4", token="...")
    result = client.export(types=["Patient"]).wait(progress=True)
    for patient in result.resources("Patient"):
        ...
"""

from . import _native
from ._client import (
    Client,
    CountCheck,
    DownloadedFiles,
    FileReports,
    Instant,
    Job,
    OnInvalidLine,
    Progress,
    ResourceStream,
    Result,
    TokenSource,
    read_ndjson,
)
from .errors import (
    Cancelled,
    DeadlineExceeded,
    DownloadError,
    FhirAsyncError,
    FhirAsyncWarning,
    InsecureUrl,
    InvalidLineError,
    JobFailed,
    KickoffIndeterminate,
    ProtocolError,
    RetriesExhausted,
    Unauthorized,
    UsageError,
)

__version__: str = _native.__version__


def verify_callback(body: bytes, signature: "str | None", secret: str) -> "dict[str, object]":
    """Checks ``X-Signature: sha256=<hex>`` over the exact body bytes and
    returns the parsed callback; raises ``ProtocolError`` otherwise."""
    payload: "dict[str, object]" = _native.verify_callback(body, signature, secret)
    return payload


__all__ = [
    "Client",
    "Job",
    "Result",
    "Progress",
    "ResourceStream",
    "DownloadedFiles",
    "FileReports",
    "TokenSource",
    "CountCheck",
    "OnInvalidLine",
    "Instant",
    "verify_callback",
    "read_ndjson",
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
