"""fhir_async: FHIR asynchronous operations (bulk ``$export``, ``$reindex``,
anything sent with ``Prefer: respond-async``) on a Rust sans-IO engine.

    client = fhir_async.Client("https://fhir.example/r4", token="...")
    result = client.export(types=["Patient"]).wait(progress=True)
    for patient in result.resources("Patient"):
        ...
"""

from . import _native
from ._client import (
    BackendServices,
    Client,
    CountCheck,
    DownloadedFiles,
    FileReports,
    Instant,
    Job,
    Manifest,
    NdjsonFiles,
    OnInvalidLine,
    Progress,
    ResourceStream,
    Result,
    TokenSource,
    read_ndjson,
)
from ._options import AttachmentMode
from . import errors as _errors
from .errors import *  # noqa: F401,F403  (every name of errors.__all__)

__version__: str = _native.__version__


def verify_callback(body: bytes, signature: "str | None", secret: str) -> "dict[str, object]":
    """Checks ``X-Signature: sha256=<hex>`` over the exact body bytes and
    returns the parsed callback; raises ``CallbackError`` (a
    ``ProtocolError``; code ``bad_signature`` or ``malformed``) otherwise."""
    payload: "dict[str, object]" = _native.verify_callback(body, signature, secret)
    return payload


__all__ = [
    "BackendServices",
    "Client",
    "Job",
    "Result",
    "Manifest",
    "Progress",
    "ResourceStream",
    "NdjsonFiles",
    "DownloadedFiles",
    "FileReports",
    "TokenSource",
    "CountCheck",
    "OnInvalidLine",
    "AttachmentMode",
    "Instant",
    "verify_callback",
    "read_ndjson",
]
# The exceptions and the warning, listed once (in errors.py), deprecated aliases included.
__all__ += _errors.__all__
