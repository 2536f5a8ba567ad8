"""What a job and a download look like while they run: the ``Progress``
snapshot (the engine's figures) and the optional tqdm bars over it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

if TYPE_CHECKING:  # pragma: no cover
    from ._job import Job


@dataclass(frozen=True)
class Progress:
    """A snapshot of a job for display. ``message`` is the server's
    ``X-Progress`` text; ``percent`` is read from it when it carries one."""

    phase: str
    message: Optional[str]
    percent: Optional[float]
    polls: int
    next_poll_in_ms: Optional[int]
    next_poll_at_ms: Optional[int]
    status_url: Optional[str]
    partial_files: int
    warning: Optional[str] = None
    """The latest warning of the job (a clamped ``Retry-After``, ...)."""

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "Progress":
        return cls(
            phase=d["phase"],
            message=d.get("message"),
            percent=d.get("percent"),
            polls=d.get("polls", 0),
            next_poll_in_ms=d.get("nextPollInMs"),
            next_poll_at_ms=d.get("nextPollAtMs"),
            status_url=d.get("statusUrl"),
            partial_files=d.get("partialFiles", 0),
            warning=d.get("warning"),
        )


def _tqdm() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class _Bar:
    """A tqdm bar over a job's progress (percent when the server says it)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        tqdm = _tqdm()
        self.bar = None if tqdm is None else tqdm(total=100, unit="%", desc="export", leave=True)

    def update(self) -> None:
        if self.bar is None:
            return
        p = self.job.progress
        if p.percent is not None:
            self.bar.n = p.percent
        elif p.phase == "done":
            self.bar.n = 100
        self.bar.set_description(p.phase, refresh=False)
        self.bar.set_postfix_str(p.message or f"polls={p.polls}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _DownloadBar:
    """A tqdm bar over files; its total comes with the first update."""

    def __init__(self) -> None:
        self.tqdm = _tqdm()
        self.bar: Any = None

    def update(self, nbytes: int, resources: int, done: int, total: int) -> None:
        if self.tqdm is None:
            return
        if self.bar is None:
            self.bar = self.tqdm(total=total, unit="file", desc="download", leave=True)
        self.bar.n = done
        self.bar.set_postfix_str(f"{nbytes / 1e6:.1f} MB, {resources} resources", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
