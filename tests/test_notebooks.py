"""The example notebooks execute end to end at a tiny size (nbclient)."""

import os
from pathlib import Path

import nbformat
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "examples" / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quickstart", "fluids", "plasticine"])
def test_notebook_runs(name, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("DIFFSIM_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("DIFFSIM_ARCH", "cpu")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert os.path.exists(tmp_path / "pinch_result.ply") or name != "plasticine"
