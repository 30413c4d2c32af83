"""notebooks/quickstart.ipynb runs top to bottom (nbclient, the venv's python3 kernel) and shows its plots."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs_and_draws(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # raises CellExecutionError (with the failing cell and its traceback) on any error
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")
    assert "Mapped to the Edge TPU: 9/9 ops (100%)" in text
    assert "pruned_qat_int8" in text and "int8 median" in text
    assert "report: " in text and Path(text.split("report: ", 1)[1].split()[0]).is_file()
    pngs = [base64.b64decode(o["data"]["image/png"]) for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(pngs) == 3
    assert all(p[:8] == b"\x89PNG\r\n\x1a\n" and len(p) > 15_000 for p in pngs), [len(p) for p in pngs]


@pytest.mark.slow
def test_budget_search_notebook_runs_and_meets_its_budget(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK.with_name("budget_search.ipynb"), as_version=4)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")
    assert "sensitivity: " in text and "search: every budget met as measured" in text  # the progress, the verdict
    assert "met as measured: {'size': True}" in text
    assert "plan.json" in text and "report.html" in text
    pngs = [o["data"]["image/png"] for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(pngs) == 1  # the Pareto plot
