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


def test_tqdm_redraws_sent_as_separate_messages_become_one_line():
    # the kernel sends each redraw as its own stream output; a print in between is another stream
    cell = nbformat.v4.new_code_cell("x")
    out = nbformat.v4.new_output
    cell.outputs = [out("stream", name="stdout", text="start\n"),
                    out("stream", name="stderr", text="\rAdam:   0%|"),
                    out("stream", name="stderr", text="\rAdam:  50%|\x1b[A"),
                    out("stream", name="stderr", text="\rAdam: 100%|"),
                    out("stream", name="stderr", text="\n"),
                    out("display_data", data={"text/plain": "fig"}),
                    out("stream", name="stderr", text="after\n")]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell]
    make.clean_streams(nb)
    assert [(o.get("name"), o.get("text")) for o in cell.outputs] == [
        ("stdout", "start\n"), ("stderr", "Adam: 100%|\n"), (None, None), ("stderr", "after\n")]


def test_refresh_changes_text_cells_and_keeps_outputs(tmp_path):
    def nb(md, code="print(1)"):
        book = nbformat.v4.new_notebook()
        book.cells = [nbformat.v4.new_markdown_cell(md), nbformat.v4.new_code_cell(code),
                      nbformat.v4.new_markdown_cell(md + " later")]
        return book

    stored = nb("# old")
    stored.cells[0].source += f"\n\n{make.TIMING_MARK} 1.0 min on a 2-core CPU.*"
    stored.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    stored.cells[1].execution_count = 1
    path = tmp_path / "a.ipynb"
    nbformat.write(stored, path)
    make.refresh(nb("# new"), path)
    got = nbformat.read(path, as_version=4)
    assert got.cells[0].source == f"# new\n\n{make.TIMING_MARK} 1.0 min on a 2-core CPU.*"
    assert got.cells[2].source == "# new later" and got.cells[1].outputs[0]["text"] == "1\n"
    with pytest.raises(ValueError, match="code differs"):
        make.refresh(nb("# new", code="print(2)"), path)
    nbformat.write(nb("# x"), path)
    with pytest.raises(ValueError, match="not stored executed"):
        make.refresh(nb("# x"), path)


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
