"""The options of a download or a stream, checked, with the core's defaults:
``DownloadOptions::default()`` is read from the native module once, so no
default lives here (issue 20: the same defaults in every language)."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, cast

from . import _native
from .errors import UsageError

CountCheck = Literal["strict", "lenient"]
"""What an output file whose resources differ from the manifest's count
does: fail (``"strict"``, the default; the other files are kept) or
complete with a note. Only lines that parse as JSON objects count. An error
file is evidence: whatever the check, its lines are kept and a mismatch is
a warning in its report (issue 19)."""

OnInvalidLine = Literal["report", "raise"]
"""What a line that is not JSON does: skipped and reported (``"report"``, the
default), or ``InvalidLineError`` (``"raise"``)."""

AttachmentMode = Literal["off", "inline", "files"]
"""How attachments (protocol M: the documents behind ``DocumentReference`` and
``DiagnosticReport``) are handled: not fetched (``"off"``, the default), put
into the resources as ``data``, ``size``, ``hash`` with ``url`` kept
(``"inline"``), or saved as files with a report (``"files"``)."""

_DEFAULTS: Dict[str, Any] = _native.download_defaults()

MAX_PER_ORIGIN: int = _DEFAULTS["maxPerOrigin"]
"""Files downloaded at once from one origin, the core's default (4)."""

MAX_TOTAL: int = _DEFAULTS["maxTotal"]
"""Files downloaded at once in all, whatever their origins, the core's default (64)."""

KINDS: Tuple[str, ...] = tuple(_DEFAULTS["kinds"])
"""The manifest lists a folder download takes, the core's default (all three)."""

COUNT_CHECK = cast(CountCheck, _DEFAULTS["countCheck"])
"""What a count mismatch does, the core's default (``"strict"``)."""

ON_INVALID_LINE = cast(OnInvalidLine, _DEFAULTS["invalidLines"])
"""What a line that is not JSON does, the core's default (``"report"``)."""

ATTACHMENTS = cast(AttachmentMode, _DEFAULTS["attachments"]["mode"])
"""How attachments are handled, the core's default (``"off"``)."""

ATTACHMENT_MAX_SIZE: int = _DEFAULTS["attachments"]["maxSize"]
"""The largest attachment taken, bytes, the core's default (4 MiB): checked
against the Attachment's ``size``, the ``Content-Length`` and while streaming."""

STREAM_KINDS: Tuple[str, ...] = ("output",)
"""The lists a stream of resources takes (JS's ``resources`` too): the
resources asked for, not the OperationOutcomes and Bundles of the others."""


def _max_line(max_line: Optional[int]) -> Optional[int]:
    """The ``max_line`` ceiling (bytes), checked: None (the core's default) or a positive int."""
    if max_line is not None and (not isinstance(max_line, int) or isinstance(max_line, bool) or max_line < 1):
        raise UsageError("max_line must be None or an int of at least 1 (bytes)")
    return max_line


def _at_least_one(value: int, name: str) -> int:
    """A count of files at once, checked: an int of at least 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"{name} must be an int of at least 1")
    return value


def _per_origin(max_per_origin: int, concurrency: Optional[int]) -> int:
    """``concurrency`` is the old name of ``max_per_origin``."""
    return _at_least_one(max_per_origin if concurrency is None else concurrency, "max_per_origin")


def _attachment_types(types: Optional[Sequence[str]]) -> Optional[List[str]]:
    """``attachment_types``, checked: None (the core's default: every type) or media types."""
    if types is None:
        return None
    if isinstance(types, str) or not all(isinstance(t, str) for t in types):
        raise UsageError("attachment_types must be a sequence of media types (str), not one str")
    return list(types)


def _attachment_max_size(max_size: Optional[int]) -> Optional[int]:
    """``attachment_max_size``, checked: None (the core's default) or a positive int of bytes."""
    if max_size is not None and (not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1):
        raise UsageError("attachment_max_size must be None or an int of at least 1 (bytes)")
    return max_size
