"""The example notebooks: the stored ones are the generator's, executed (outputs stored, no
errors, small), and each runs end to end at a tiny size (nbclient, slow)."""

import importlib.util
import os
from pathlib import Path

import nbformat
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "examples" / "notebooks"
spec = importlib.util.spec_from_file_location("make_notebooks", NB_DIR / "make_notebooks.py")
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)
NAMES = list(make.NOTEBOOKS)


@pytest.mark.parametrize("name", NAMES)
def test_stored_notebook_is_the_generated_one_executed(name):
    path = NB_DIR / f"{name}.ipynb"
    stored = nbformat.read(path, as_version=4)
    generated = make.NOTEBOOKS[name]
    code = [c.source for c in stored.cells if c.cell_type == "code"]
    assert code == [c.source for c in generated.cells if c.cell_type == "code"], (
        f"{path.name} differs from make_notebooks.py: run ./dev notebooks --only {name}")
    assert stored.cells[0].source.split("\n\n" + make.TIMING_MARK)[0] == generated.cells[0].source
    assert make.TIMING_MARK in stored.cells[0].source, f"{path.name} is not stored executed"
    for cell in stored.cells:
        if cell.cell_type == "code":
            assert cell.get("execution_count"), f"{path.name}: a cell was not executed"
            assert not [o for o in cell.outputs if o.get("output_type") == "error"]
    assert path.stat().st_size < 4e6
    assert "\r" not in "".join(o.get("text", "") for c in stored.cells if c.cell_type == "code"
                               for o in c.outputs)


def test_streams_are_cleaned_like_a_terminal():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="a 10%\rb 50%\rc 100%\nnext\n")]
    nb.cells = [cell]
    make.clean_streams(nb)
    assert cell.outputs[0]["text"] == "c 100%\nnext\n"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
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
