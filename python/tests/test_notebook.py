"""The example notebook runs top to bottom (nbclient) against the reference server."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, Server

NOTEBOOK = ROOT / "examples" / "notebook" / "export.ipynb"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_notebook_runs(server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("FHIR_ASYNC_SERVER", server.url)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs)
    assert "<Result completed" in text
    assert "Patient" in text
    # issue 15: DuckDB and polars read the Arrow result, and Parquet is written.
    assert "Observations;" in text and "Observation" in text
