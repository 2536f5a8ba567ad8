"""A finished export's files as tasks on a cluster (issue 15).

    from dask.distributed import Client as DaskClient
    import fhir_async.dask

    result = fhir_async.Client(base, auth=BackendServices(...)).export().wait()
    report = fhir_async.dask.download(result, "/shared/export", format="parquet")
    frame = fhir_async.dask.to_dataframe(result, "Observation")

Each file of the manifest becomes one :class:`FileTask`: a small picklable
object holding the job's saved state (``job.to_json()``, which never holds
a token), the name of its file and a :class:`ClientSpec` (base URL, retry
options, and the auth *configuration*: a ``BackendServices`` with its key,
or a picklable token callable; a token string never travels in a task).
A worker calls the task: it resumes the job from the state and downloads
that one file with the engine's own per-file rules (the token only where
the manifest allows it, retries, range continuation, count check, a
manifest refresh when links expire), then reports it (:class:`FileOutcome`).
The same task objects run on Spark or Ray (``docs/scale-out.md``).

Needs ``pip install 'fhir-async[dask]'`` (dask, distributed, pandas, pyarrow).
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Literal, Mapping, Optional, Sequence, Union

from ._client import BackendServices, Client, Result
from ._options import COUNT_CHECK, KINDS, CountCheck
from .errors import FhirAsyncError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import dask.dataframe as dd
    import pandas

Format = Literal["ndjson", "parquet"]
"""What a task writes: the file as the server sent it, or one Parquet file
(``<name>.parquet``, written by the Rust TableWriter)."""

__all__ = [
    "ClientSpec",
    "EnvToken",
    "DownloadReport",
    "FileOutcome",
    "FileTask",
    "Format",
    "download",
    "file_tasks",
    "to_dataframe",
]


@dataclass(frozen=True)
class EnvToken:
    """A picklable token callable: reads the environment variable ``name``
    where it runs (each worker's own environment), so the token never
    travels in a task. ``Client(base, token=EnvToken("FHIR_TOKEN"))``."""

    name: str

    def __call__(self) -> str:
        try:
            return os.environ[self.name]
        except KeyError:
            raise UsageError(f"the environment variable {self.name} (the token) is not set here") from None


def _refuse_inline(auth: Optional[BackendServices]) -> None:
    """``UsageError`` when ``auth`` holds a secret or key material itself:
    it would be pickled into every task."""
    field_name = None if auth is None else auth.inline_credential
    if field_name == "client_secret":
        raise UsageError(
            "fhir_async.dask sends no client secret to workers: use "
            "BackendServices(..., client_secret_env=\"NAME\") (each worker reads that environment variable) "
            "or client_secret_file=<path every worker can read>"
        )
    if field_name == "key":
        raise UsageError(
            "fhir_async.dask sends no key material (a JWK dict, PEM text or bytes) to workers: use "
            "BackendServices(..., key=<path of the key file every worker can read>) or key_env=\"NAME\" "
            "(each worker reads the PEM or JWK text from that environment variable)"
        )


@dataclass(frozen=True)
class ClientSpec:
    """How a worker builds the ``fhir_async.Client`` again: everything but a
    credential. ``token`` is a picklable callable (asked in the worker),
    ``auth`` a ``BackendServices`` that names a key file or the environment
    variable / file of its secret (the worker reads it and signs its own
    assertions). A client secret or inline key material is refused
    (``UsageError``), here and again when the spec is pickled. The
    connection settings (``ca_files``, ``system_roots``, ``proxy``) travel as
    they are: CA files must be at the same paths on every worker, and a
    proxy given by the environment is each worker's own."""

    base_url: str
    retry: Mapping[str, int] = field(default_factory=dict)
    timeout: Optional[float] = None
    allowed_origins: Sequence[str] = ()
    token: Optional[Callable[[], str]] = None
    auth: Optional[BackendServices] = None
    ca_files: Sequence[str] = ()
    system_roots: bool = False
    proxy: Optional[str] = None

    def __post_init__(self) -> None:
        if isinstance(self.token, str):
            raise UsageError("fhir_async.dask sends no token string to workers: use a picklable callable")
        _refuse_inline(self.auth)

    def __getstate__(self) -> Dict[str, Any]:
        # Checked again where the spec leaves the process (a spec changed after it was built).
        if isinstance(self.token, str):
            raise UsageError("fhir_async.dask sends no token string to workers: use a picklable callable")
        _refuse_inline(self.auth)
        return dict(self.__dict__)

    @classmethod
    def of(cls, client: Client) -> "ClientSpec":
        """The spec of ``client``; ``UsageError`` when it was built with a
        token string (it would travel in every task: use a callable that
        fetches it, or ``BackendServices``), or with a ``BackendServices``
        holding a client secret or key material itself (use
        ``client_secret_env`` / ``client_secret_file``, or a key file's path /
        ``key_env``)."""
        token = client._token
        if isinstance(token, str):
            raise UsageError(
                "fhir_async.dask sends no token string to workers: build the Client with "
                "token=<a picklable callable> or auth=BackendServices(...)"
            )
        if token is not None:
            try:
                # Plain pickle, as a check: it takes functions by name, so a lambda or a
                # closure (whose captured values, a token among them, cloudpickle would copy) is refused.
                pickle.dumps(token)
            except (pickle.PicklingError, AttributeError, TypeError) as e:
                raise UsageError(
                    "the token callable must be picklable by name (a module-level function, "
                    f"or fhir_async.dask.EnvToken): {e}"
                ) from None
        timeout = None if client._timeout_ms is None else client._timeout_ms / 1000
        return cls(
            client.base_url,
            dict(client._retry),
            timeout,
            tuple(client._allowed_origins),
            token,
            client._auth,
            tuple(client._ca_files),
            client._system_roots,
            client._proxy,
        )

    def build(self) -> Client:
        return Client(
            self.base_url,
            token=self.token,
            auth=self.auth,
            retry=self.retry,
            timeout=self.timeout,
            allowed_origins=self.allowed_origins,
            ca_files=self.ca_files,
            system_roots=self.system_roots,
            proxy=self.proxy,
        )

    def __repr__(self) -> str:
        # A callable's repr could hold a secret (a partial over a string): only its type is shown.
        token = self.token
        shown = repr(token) if isinstance(token, EnvToken) else type(token).__name__
        auth = shown if token is not None else repr(self.auth)
        return f"ClientSpec({self.base_url!r}, auth={auth})"


@dataclass(frozen=True)
class FileOutcome:
    """How one file of a cluster download ended. ``path`` is where it was
    written (None when it failed); ``resources`` and ``bytes`` are the
    engine's figures of the file (``bytes``: the decoded NDJSON);
    ``written_bytes`` is the size of what ``path`` holds (the Parquet file's
    with ``format="parquet"``); ``error`` says why it failed (``code`` is the
    error's code, e.g. ``count_mismatch``); ``worker`` is ``host:pid``."""

    file_name: str
    kind: str
    resource_type: Optional[str]
    # Not in the repr: a signed URL's query is a credential (protocol K10).
    url: str = field(repr=False)
    path: Optional[str]
    resources: int
    bytes: int
    written_bytes: int
    error: Optional[str]
    code: Optional[str]
    seconds: float
    worker: str

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class DownloadReport:
    """Every file of a cluster download (manifest order) and the totals."""

    files: List[FileOutcome]
    seconds: float

    @property
    def failed(self) -> List[FileOutcome]:
        return [f for f in self.files if not f.ok]

    @property
    def paths(self) -> List[str]:
        return [f.path for f in self.files if f.path is not None]

    @property
    def resources(self) -> int:
        return sum(f.resources for f in self.files if f.ok)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files if f.ok)

    def __repr__(self) -> str:
        workers = len({f.worker for f in self.files})
        return (
            f"<DownloadReport {len(self.files)} files, {len(self.failed)} failed, {self.resources} resources, "
            f"{self.bytes} bytes, {workers} worker(s), {self.seconds:.1f} s>"
        )


def _is_url(dest: str) -> bool:
    return "://" in dest and not dest.startswith("file://")


@dataclass(frozen=True)
class FileTask:
    """One file of a finished job's plan, as a picklable callable: calling it
    (on any machine that reaches the server) downloads that file into
    ``dest`` (a folder all workers share, or an fsspec URL) and returns its
    :class:`FileOutcome`; a failed file is an outcome, not an exception."""

    spec: ClientSpec
    state: str
    file_name: str
    kind: str
    resource_type: Optional[str]
    url: str
    dest: str
    format: Format = "ndjson"
    count_check: CountCheck = COUNT_CHECK

    def __repr__(self) -> str:
        return f"FileTask({self.file_name!r} -> {self.dest!r}, {self.format})"

    def __call__(self) -> FileOutcome:
        start = time.monotonic()
        worker = f"{socket.gethostname()}:{os.getpid()}"
        local = not _is_url(self.dest)
        if local:
            Path(self.dest).mkdir(parents=True, exist_ok=True)
        # A fresh folder per attempt, beside the destination when it is local (so
        # the final rename is atomic): a retried or killed task leaves no half file.
        scratch = tempfile.mkdtemp(prefix=".fhir-async-", dir=self.dest if local else None)
        try:
            return self._run(Path(scratch), start, worker)
        except FhirAsyncError as e:
            return self._outcome(None, 0, 0, 0, e, start, worker)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _run(self, scratch: Path, start: float, worker: str) -> FileOutcome:
        reports = self.fetch(scratch)
        report = reports.report(0)
        error = report.get("error")
        if error is not None:
            return self._outcome(None, 0, 0, 0, error, start, worker)
        ndjson = Path(report["path"])
        if self.format == "parquet":
            from ._tables import ndjson_to_parquet

            out = ndjson.with_suffix(".parquet") if ndjson.suffix == ".ndjson" else Path(f"{ndjson}.parquet")
            ndjson_to_parquet([ndjson], out)
            ndjson.unlink()
        else:
            out = ndjson
        written = out.stat().st_size
        path = self._publish(out)
        return self._outcome(path, int(report.get("resources", 0)), int(report.get("bytes", 0)), written, None, start, worker)

    def fetch(self, folder: Path) -> Any:
        """Resumes the job (no kick-off, no poll: its state holds the
        outcome) and downloads this one file into ``folder``; the native
        reports (one entry)."""
        job = self.spec.build().resume(self.state)
        job.result().raise_for_status()
        reports = job._native.download(
            str(folder),
            max_per_origin=1,
            kinds=[self.kind],
            count_check=self.count_check,
            files=[self.file_name],
        )
        if len(reports) != 1:
            raise UsageError(f"{self.file_name}: the plan selected {len(reports)} files, not 1")
        return reports

    def _publish(self, local: Path) -> str:
        """Moves the finished file to ``dest``; returns where it is."""
        if _is_url(self.dest):
            import fsspec  # type: ignore[import-untyped]

            url = self.dest.rstrip("/") + "/" + local.name
            fs, target = fsspec.core.url_to_fs(url)
            fs.put_file(str(local), target)
            return url
        dest = self.dest.removeprefix("file://")
        final = Path(dest) / local.name
        os.replace(local, final)
        return str(final)

    def _outcome(
        self,
        path: Optional[str],
        resources: int,
        nbytes: int,
        written: int,
        error: Optional[BaseException],
        start: float,
        worker: str,
    ) -> FileOutcome:
        return FileOutcome(
            file_name=self.file_name,
            kind=self.kind,
            resource_type=self.resource_type,
            url=self.url,
            path=path,
            resources=resources,
            bytes=nbytes,
            written_bytes=written,
            # The message and code only: exceptions with details need not pickle.
            error=None if error is None else f"{type(error).__name__}: {error}",
            code=None if error is None else getattr(error, "code", None),
            seconds=time.monotonic() - start,
            worker=worker,
        )


def file_tasks(
    result: Result,
    dest: Union[str, "os.PathLike[str]"],
    *,
    format: Format = "ndjson",
    types: Optional[Sequence[str]] = None,
    kinds: Sequence[str] = KINDS,
    count_check: CountCheck = COUNT_CHECK,
) -> List[FileTask]:
    """One :class:`FileTask` per selected file of ``result``'s plan
    (manifest order), for any scheduler: Dask, Spark, Ray, a process pool."""
    if format not in ("ndjson", "parquet"):
        raise UsageError(f'format must be "ndjson" or "parquet", not {format!r}')
    result.raise_for_status()
    spec = ClientSpec.of(result.job._client)
    state = result.job.to_json()
    target = os.fspath(dest)
    if not _is_url(target):
        target = str(Path(target.removeprefix("file://")).resolve())
    out = []
    for f in result.files:
        if f["kind"] not in kinds:
            continue
        if types is not None and f["kind"] == "output" and f.get("resourceType") not in types:
            continue
        out.append(
            FileTask(
                spec, state, f["fileName"], f["kind"], f.get("resourceType"), f["url"], target, format, count_check
            )
        )
    return out


def _dask() -> Any:
    try:
        import dask
        import dask.dataframe  # noqa: F401  (checks the extra is complete)
    except ImportError as e:
        raise UsageError("fhir_async.dask needs dask: pip install 'fhir-async[dask]'") from e
    return dask


def _run_task(task: FileTask) -> FileOutcome:
    return task()


def _compute(items: List[Any], client: Any) -> List[Any]:
    """Runs the delayed ``items`` on ``client`` (a ``dask.distributed.Client``),
    else on dask's current scheduler (a distributed client if one is
    active, otherwise threads in this process)."""
    dask = _dask()
    if client is not None:
        futures = client.compute(items)
        gathered: List[Any] = client.gather(futures)
        return gathered
    computed = dask.compute(*items)
    return list(computed)


def download(
    result: Result,
    dest: Union[str, "os.PathLike[str]"],
    *,
    client: Any = None,
    format: Format = "ndjson",
    types: Optional[Sequence[str]] = None,
    kinds: Sequence[str] = KINDS,
    count_check: CountCheck = COUNT_CHECK,
) -> DownloadReport:
    """Downloads every file of ``result`` into ``dest`` (a folder the
    workers share, or an fsspec URL), one task per file on ``client`` (a
    ``dask.distributed.Client``; None: dask's current scheduler). With
    ``format="parquet"`` each file becomes ``<name>.parquet``. Returns the
    report of every file; failed files are in ``report.failed``."""
    dask = _dask()
    start = time.monotonic()
    tasks = file_tasks(result, dest, format=format, types=types, kinds=kinds, count_check=count_check)
    run = dask.delayed(_run_task, pure=False)
    outcomes = _compute([run(t, dask_key_name=f"fhir-async-{t.file_name}-{uuid.uuid4().hex[:8]}") for t in tasks], client)
    return DownloadReport(list(outcomes), time.monotonic() - start)


def _frame(task: FileTask) -> "pandas.DataFrame":
    """One file's resources as a pandas DataFrame (through Arrow); a file
    that fails raises its error (a DataFrame cannot hold a missing file)."""
    with tempfile.TemporaryDirectory(prefix="fhir-async-") as scratch:
        report = task.fetch(Path(scratch)).report(0)
        error = report.get("error")
        if error is not None:
            raise error
        from ._tables import arrow_table

        frame: "pandas.DataFrame" = arrow_table([report["path"]]).to_pandas()
        return frame


def _columns(frame: "pandas.DataFrame") -> List[str]:
    return [str(c) for c in frame.columns]


def _aligned(frame: "pandas.DataFrame", columns: List[str]) -> "pandas.DataFrame":
    return frame.reindex(columns=columns)


def to_dataframe(result: Result, resource_type: str, *, client: Any = None) -> "dd.DataFrame":
    """The resources of one type as a Dask DataFrame, one partition per
    file, each downloaded by a worker (``client``: a
    ``dask.distributed.Client``; None: dask's current scheduler). The
    files are downloaded now and kept in the workers' memory; partitions
    share the union of the files' columns (a field a file lacks is null)."""
    dask = _dask()
    from dask import dataframe

    tasks = file_tasks(result, tempfile.gettempdir(), types=[resource_type], kinds=("output",))
    if not tasks:
        raise UsageError(f"the result has no {resource_type} file")
    frame = dask.delayed(_frame, pure=False)
    parts = [frame(t, dask_key_name=f"fhir-async-frame-{t.file_name}-{uuid.uuid4().hex[:8]}") for t in tasks]
    if client is not None:
        parts = client.persist(parts)
    else:
        parts = [dask.delayed(p) for p in dask.compute(*parts)]
    # Only the column names travel back to this process, not the data.
    names = _compute([dask.delayed(_columns)(p) for p in parts], client)
    columns: List[str] = []
    for cols in names:
        columns.extend(c for c in cols if c not in columns)
    aligned = [dask.delayed(_aligned)(p, columns) for p in parts]
    meta = _compute([dask.delayed(lambda f: f.head(0))(aligned[0])], client)[0]
    ddf: "dd.DataFrame" = dataframe.from_delayed(aligned, meta=meta, verify_meta=False)
    return ddf
