"""The documentation site's machinery (docs/hooks.py, docs/griffe_grouped_params.py) and its
sources: every ``@include`` of a page resolves, every API name exists, every task has its
docstring sections and a picture. Fast: no MkDocs build here (``./dev docs`` in CI does that)."""

import importlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


hooks = _load("diffsim_docs_hooks", DOCS / "hooks.py")


class FakeFiles:
    def __init__(self, published=()):
        self.published = set(published)

    def get_file_from_path(self, path):
        return object() if path in self.published else None


README = """# Title

intro text

## First `one`

text with a [link](sub/file.md) and ![pic](assets/gallery/a.gif)

```python
# not a heading
x = 1
```

### Sub

sub text

## Second

end
"""


def test_section_takes_the_heading_until_the_next_of_its_level_and_skips_code():
    lines = README.split("\n")
    sec = hooks._section(lines, "First", intro=False, where="t")
    text = "\n".join(sec)
    assert sec[0] == "## First `one`" and "### Sub" in text and "## Second" not in text
    assert "# not a heading" in text   # a comment in a code block is not a heading
    intro = hooks._section(lines, "First", intro=True, where="t")
    assert "### Sub" not in "\n".join(intro)
    assert hooks._section(lines, "Title", intro=True, where="t") == ["# Title", "", "intro text", ""]


def test_missing_heading_is_a_warning(caplog):
    with caplog.at_level("WARNING", logger="mkdocs.hooks.diffsim"):
        assert hooks._section(README.split("\n"), "Nope", intro=False, where="page.md") == []
    assert "no heading starting with 'Nope'" in caplog.text


def test_shift_moves_headings_outside_code_and_drops_the_first_for_body():
    lines = hooks._section(README.split("\n"), "First", intro=False, where="t")
    out = hooks._shift(lines, level=1, body=False)
    assert out[0] == "# First `one`" and "## Sub" in out and "# not a heading" in out
    body = hooks._shift(lines, level=None, body=True)
    assert not body[0].startswith("#") and "### Sub" in body


def test_rebase_links_to_pages_published_files_and_plain_paths(caplog):
    files = FakeFiles({"assets/gallery/pour.gif"})
    cfg = {"repo_url": None}
    text = ("see [the FEM README](../fem/README.md), [`solvers/README.md`](../../solvers/README.md), "
            "![g](../../assets/gallery/pour.gif), [a test](../../tests/test_render.py) and "
            "[web](https://example.org) [here](#anchor)")
    out = hooks._rebase(text, "diffsim/render/README.md", "simulators/x.md", files, cfg, "t")
    assert "[the FEM README](fem.md)" in out                       # a README shown by a page
    assert "(../solvers/ode.md)" in out
    assert "![g](../assets/gallery/pour.gif)" in out               # a published picture
    assert "a test (`tests/test_render.py`)" in out                # any other file: its path
    assert "(https://example.org)" in out and "(#anchor)" in out
    out = hooks._rebase("[x](../../tests/test_render.py)", "diffsim/render/README.md", "a.md", files,
                        {"repo_url": "https://h/o/r"}, "t")
    assert out == "[x](https://h/o/r/blob/HEAD/tests/test_render.py)"
    with caplog.at_level("WARNING", logger="mkdocs.hooks.diffsim"):
        hooks._rebase("[gone](nowhere.md)", "README.md", "index.md", files, cfg, "t")
    assert "names no file of the repository" in caplog.text


def test_page_of_names_pages_and_readmes_that_exist():
    for readme, page in hooks.PAGE_OF.items():
        assert (ROOT / readme).is_file(), readme
        assert (DOCS / page).is_file(), page


def _includes():
    for page in sorted(DOCS.rglob("*.md")):
        for line in page.read_text().split("\n"):
            m = hooks.INCLUDE.match(line)
            if m:
                yield page.relative_to(DOCS).as_posix(), m.group(1)


@pytest.mark.parametrize("page,spec", list(_includes()))
def test_every_include_resolves(page, spec, caplog):
    parts = [p.strip() for p in spec.split("|")]
    path = ROOT / parts[0]
    assert path.is_file(), f"{page}: {parts[0]} does not exist"
    heading = next((a for a in parts[1:] if a not in ("body", "intro") and not a.startswith("level=")), None)
    if heading is not None:
        with caplog.at_level("WARNING", logger="mkdocs.hooks.diffsim"):
            sec = hooks._section(path.read_text().split("\n"), heading, "intro" in parts, page)
        assert sec, f"{page}: {parts[0]} has no heading starting with {heading!r}"


@pytest.mark.parametrize("module,title", list(hooks.API_MODULES.values()))
def test_api_pages_list_names_that_exist(module, title):
    mod = importlib.import_module(module)
    names = hooks._all_names(module)
    assert names == list(mod.__all__)
    assert all(hasattr(mod, n) for n in names)
    text = hooks._api_page(module, title)
    assert text.count("\n::: ") == len(names) + 1


def test_task_pages_have_gymnasium_sections_and_a_picture():
    from diffsim.envs import TASKS

    tasks = hooks._registry()
    assert list(tasks) == list(TASKS)
    catalogue = json.loads((DOCS / "tasks" / "catalogue.json").read_text())
    for name, (rel, cls) in tasks.items():
        doc, attrs = hooks._class_info(ROOT / rel, cls)
        summary, sections = hooks._doc_sections(doc)
        assert summary and set(sections) == set(hooks.TASK_SECTIONS), name
        rec = catalogue["tasks"][name]
        assert (DOCS / "tasks" / rec["image"]).is_file(), name
        page = hooks._task_page(name, rel, cls, rec, "cmd")
        assert f"# {name}" in page and "## Action Space" in page and "``" not in page


def test_nav_pages_exist():
    text = (ROOT / "mkdocs.yml").read_text()
    generated = set(hooks.API_MODULES) | {"tasks/index.md"}
    for page in re.findall(r":\s*([\w/.-]+\.(?:md|ipynb))\s*$", text, flags=re.M) + re.findall(
            r"^\s*-\s+([\w/.-]+\.ipynb)\s*$", text, flags=re.M):
        assert page in generated or (DOCS / page).is_file() or (ROOT / page).is_file(), page


def test_grouped_parameters_are_split():
    pytest.importorskip("griffe")
    ext = _load("diffsim_griffe_ext", DOCS / "griffe_grouped_params.py")
    doc = ("Solve it.\n\nArgs:\n    f: the field.\n    rtol, atol: tolerances,\n        relative and absolute.\n"
           "    dt, substeps, integrator,\n    newton_tol: as for FEM.\n\nReturns:\n    a, b: not parameters.\n")
    out = ext.split_grouped(doc)
    assert "    rtol: tolerances,\n        relative and absolute.\n    atol: tolerances," in out
    assert "    integrator: as for FEM." in out and "    newton_tol: as for FEM." in out
    assert "    a, b: not parameters." in out     # only parameter sections are touched
