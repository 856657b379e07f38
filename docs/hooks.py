"""MkDocs hooks of the diffsim site (``mkdocs.yml: hooks``): the site is built from the
repository's own text, never from copies of it.

* ``@include PATH [| HEADING] [| level=N] [| body] [| intro]`` on a line of its own pulls a
  file of the repository (a README) into a page, whole or one section of it: the section
  starts at the first heading whose text starts with ``HEADING`` and ends before the next
  heading of the same or a higher level (``intro``: before the next heading of any level).
  ``level=N`` moves the section's headings so that its first one is at level N; ``body``
  drops that first heading (the page has its own title). Relative links and images of the
  included text are rebased: a README that a page of the site shows becomes a link to
  that page, a file the site publishes (gallery pictures, notebooks) a link to it, any
  other file of the repository its path as text (or a link into ``repo_url`` when the
  configuration has one). A missing file, heading or link target is a warning, so
  ``mkdocs build --strict`` fails on it.
* Generated pages: the API reference (one page per public module, one ``:::`` entry per
  name of its ``__all__``, read with ``ast``: the build never imports Taichi), the task
  catalogue (one page per task of ``envs/registry.py`` from the task class's docstring
  sections, its start picture and the spaces recorded by ``examples/gallery/make_gallery.py
  --part tasks`` in ``docs/tasks/catalogue.json``), the notebooks of ``examples/notebooks``
  (rendered by mkdocs-jupyter as they are stored, executed) and the gallery pictures of
  ``assets/gallery``.
* mkdocstrings reads the sources statically; ``diffsim.solvers`` and ``diffsim.envs`` live
  in ``solvers/`` and ``envs/`` (setup.py's package_dir), so the hook lays out the installed
  package tree under ``build/docs/pkg/diffsim`` (symbolic links) for it to read.
* The architecture page appears in the navigation once ``diffsim/ARCHITECTURE.md`` exists.
"""

from __future__ import annotations

import ast
import json
import logging
import posixpath
import re
import shutil
import textwrap
from pathlib import Path

try:
    from mkdocs.plugins import event_priority
    from mkdocs.structure.files import File, Files
except ImportError:   # the pure functions below are tested without the [docs] extra
    def event_priority(priority):
        return lambda fn: fn

    File = Files = None

log = logging.getLogger("mkdocs.hooks.diffsim")

ROOT = Path(__file__).resolve().parents[1]
PKG_TREE = ROOT / "build" / "docs" / "pkg"
#: package -> folder of the repository (setup.py's ROOTS)
PACKAGES = {"diffsim": "diffsim", "diffsim.solvers": "solvers", "diffsim.envs": "envs",
            "diffsim.assets": "assets"}

#: README of the repository -> the page of the site that shows it (links to it land there)
PAGE_OF = {
    "README.md": "index.md",
    "diffsim/fem/README.md": "simulators/fem.md",
    "diffsim/tactile/README.md": "simulators/tactile.md",
    "diffsim/render/README.md": "rendering.md",
    "solvers/README.md": "solvers/ode.md",
    "solvers/pde/README.md": "solvers/surrogates.md",
}

#: public modules documented in the API reference: page -> (module, title)
API_MODULES = {
    "api/diffsim.md": ("diffsim", "diffsim (physics core)"),
    "api/render.md": ("diffsim.render", "diffsim.render"),
    "api/eulerian.md": ("diffsim.eulerian", "diffsim.eulerian (smoke)"),
    "api/solvers.md": ("diffsim.solvers", "diffsim.solvers"),
    "api/nn.md": ("diffsim.solvers.nn", "diffsim.solvers.nn"),
    "api/pde.md": ("diffsim.solvers.pde", "diffsim.solvers.pde"),
    "api/envs.md": ("diffsim.envs", "diffsim.envs"),
}

#: folders of the repository published under the same path in the site
PUBLISHED = {"assets/gallery": (".gif", ".webp", ".png", ".svg"),
             "examples/notebooks": (".ipynb",)}

TASK_SECTIONS = ("Description", "Action Space", "Observation Space", "Rewards", "Starting State",
                 "Episode End", "Arguments", "Version History")

INCLUDE = re.compile(r"^@include\s+(.+?)\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
HTML_SRC = re.compile(r"""(<(?:img|source|a)\b[^>]*?\b(?:src|href)=")([^"]+)(")""")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


# ------------------------------------------------------------------------------ config
def _package_tree() -> None:
    """``build/docs/pkg/diffsim``: the installed layout, as symbolic links into the checkout."""
    target = PKG_TREE / "diffsim"
    if target.exists() or target.is_symlink():
        shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
    target.mkdir(parents=True)
    for entry in (ROOT / "diffsim").iterdir():
        if entry.name != "__pycache__":
            (target / entry.name).symlink_to(entry)
    for package, folder in PACKAGES.items():
        if package != "diffsim":
            (target / package.split(".", 1)[1]).symlink_to(ROOT / folder)


@event_priority(100)
def on_config(config):
    _package_tree()
    nav = config["nav"]
    for i, item in enumerate(nav):
        if isinstance(item, dict) and item.get("Tasks") == "tasks/index.md":
            nav[i] = {"Tasks": ["tasks/index.md", *(f"tasks/{name}.md" for name in _registry())]}
    if (ROOT / "diffsim" / "ARCHITECTURE.md").exists():
        nav.append({"Architecture": "architecture.md"})
    return config


# ------------------------------------------------------------------------------ files
def _all_names(module: str) -> list[str]:
    """``__all__`` of a public module, read from its ``__init__.py`` without importing it."""
    head, _, rest = module.partition(".")
    folder = None
    for package in sorted(PACKAGES, key=len, reverse=True):
        if module == package or module.startswith(package + "."):
            folder = ROOT / PACKAGES[package] / module[len(package):].lstrip(".").replace(".", "/")
            break
    path = folder / "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return list(ast.literal_eval(node.value))
    raise ValueError(f"{path} has no literal __all__ (the API reference lists it)")


def _api_page(module: str, title: str) -> str:
    names = _all_names(module)
    lines = [f"# {title}", "", f"Generated from the docstrings of `{module}` (its `__all__`, "
             f"{len(names)} names, in order).", "", f"::: {module}",
             "    options:", "      members: false", "      show_root_heading: false", ""]
    for name in names:
        lines += [f"::: {module}.{name}", ""]
    return "\n".join(lines)


def _registry() -> dict[str, tuple[str, str]]:
    """Task name -> (source file relative to the repository, class name), from
    ``envs/registry.py``'s ``TASKS`` literal."""
    tree = ast.parse((ROOT / "envs" / "registry.py").read_text())
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "TASKS":
            out = {}
            for name, spec in ast.literal_eval(node.value).items():
                module, cls = spec.split(":")
                rel = module.replace("diffsim.envs.", "envs/", 1).replace(".", "/") + ".py"
                out[name] = (rel, cls)
            return out
    raise ValueError("envs/registry.py has no TASKS literal")


def _class_info(path: Path, cls: str) -> tuple[str, dict]:
    """A class's docstring and the literal class attributes ``defaults``/``version``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            attrs = {}
            for item in node.body:
                if isinstance(item, ast.Assign) and len(item.targets) == 1 and isinstance(
                        item.targets[0], ast.Name) and item.targets[0].id in ("defaults", "version"):
                    try:
                        attrs[item.targets[0].id] = ast.literal_eval(item.value)
                    except ValueError:
                        pass   # computed, not a literal: the page leaves it out
            return ast.get_docstring(node) or "", attrs
    raise ValueError(f"{path} has no class {cls}")


def _doc_sections(doc: str) -> tuple[str, dict[str, str]]:
    """Gymnasium's fixed docstring sections: ``Name:`` lines followed by an indented body."""
    summary, sections, current, body = [], {}, None, []
    for line in doc.splitlines():
        key = line.strip().rstrip(":")
        if line.strip().endswith(":") and not line.startswith(" ") and key in TASK_SECTIONS:
            if current:
                sections[current] = textwrap.dedent("\n".join(body)).strip()
            current, body = key, []
        elif current:
            body.append(line)
        else:
            summary.append(line)
    if current:
        sections[current] = textwrap.dedent("\n".join(body)).strip()
    return "\n".join(summary).strip(), sections


def _md(text: str) -> str:
    """reStructuredText literals (````x````) as Markdown code (```x```)."""
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _catalogue() -> dict:
    path = ROOT / "docs" / "tasks" / "catalogue.json"
    return json.loads(path.read_text()) if path.exists() else {"tasks": {}}


def _task_page(name: str, rel: str, cls: str, record: dict | None, command: str) -> str:
    doc, attrs = _class_info(ROOT / rel, cls)
    summary, sections = _doc_sections(doc)
    version = attrs.get("version", 0)
    missing = [s for s in TASK_SECTIONS if s not in sections]
    if missing:
        log.warning(f"task {name} ({rel}): docstring lacks the sections {', '.join(missing)}")
    lines = [f"# {name}", "", f"`gym.make(\"diffsim/{name}-v{version}\")` - {_md(summary)}", ""]
    if record is None:
        log.warning(f"task {name}: no entry in docs/tasks/catalogue.json; run {command}")
    else:
        lines += [f"![{name} at reset]({record['image']})", "",
                  f"*{record['caption']} Regenerate: `{command}`.*", "",
                  "| | as registered (measured by the picture script) |", "|---|---|",
                  f"| simulator | {record['simulator']} |",
                  f"| action space | `{record['action_space']}` |",
                  f"| observation space | `{record['observation_space']}` |",
                  f"| horizon | {record['horizon']} control steps |",
                  f"| precision | {record['precision']} |", ""]
    if "defaults" in attrs:
        opts = ", ".join(f"`{k}={v!r}`" for k, v in attrs["defaults"].items())
        lines += [f"Default options: {opts}. Source: `{rel}` (class `{cls}`).", ""]
    for section in TASK_SECTIONS:
        if section in sections:
            body = _md(sections[section])
            if section == "Version History":   # one bullet per version
                body = re.sub(r"^(v\d+:)", r"* \1", body, flags=re.M)
            lines += [f"## {section}", "", body, ""]
    return "\n".join(lines)


def _task_index(tasks: dict, records: dict) -> str:
    lines = ["# Task catalogue", "",
             "Every registered task, generated from its class docstring (Gymnasium's sections) "
             "and a picture of its start state drawn by `env.render()`. The tasks, their losses "
             "and the optimisation results:", "", "@include README.md | Manipulation tasks | body",
             "", "## Pictures", "", "| | | |", "|---|---|---|"]
    cells = []
    for name in tasks:
        rec = records.get(name)
        pic = f"[![{name}]({rec['image']})]({name}.md)" if rec else "(no picture yet)"
        cells.append(f"{pic}<br>[{name}]({name}.md)")
    while len(cells) % 3:
        cells.append("")
    for i in range(0, len(cells), 3):
        lines.append("| " + " | ".join(cells[i:i + 3]) + " |")
    return "\n".join(lines) + "\n"


def _published(config) -> list[File]:
    out = []
    for folder, suffixes in PUBLISHED.items():
        base = ROOT / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.suffix in suffixes:
                out.append(File(str(path.relative_to(ROOT)), str(ROOT), config["site_dir"],
                                config["use_directory_urls"]))
    return out


@event_priority(100)   # before mkdocs-jupyter, which claims the notebooks added here
def on_files(files: Files, config):
    for page, (module, title) in API_MODULES.items():
        files.append(File.generated(config, page, content=_api_page(module, title)))
    tasks = _registry()
    catalogue = _catalogue()
    records = catalogue.get("tasks", {})
    command = catalogue.get("command", "./dev gallery --part tasks")
    for name, (rel, cls) in tasks.items():
        files.append(File.generated(config, f"tasks/{name}.md",
                                    content=_task_page(name, rel, cls, records.get(name), command)))
    files.append(File.generated(config, "tasks/index.md", content=_task_index(tasks, records)))
    for file in _published(config):
        files.append(file)
    architecture = ROOT / "diffsim" / "ARCHITECTURE.md"
    if architecture.exists():
        files.append(File.generated(config, "architecture.md",
                                    content="@include diffsim/ARCHITECTURE.md\n"))
    return files


# ------------------------------------------------------------------------------ include
def _outside_fences(lines: list[str]):
    """(index, line, inside a code fence) for each line."""
    fenced = False
    for i, line in enumerate(lines):
        if FENCE.match(line):
            yield i, line, True
            fenced = not fenced
            continue
        yield i, line, fenced


def _section(lines: list[str], heading: str, intro: bool, where: str) -> list[str]:
    start = level = None
    for i, line, fenced in _outside_fences(lines):
        m = None if fenced else HEADING.match(line)
        if not m:
            continue
        if start is None:
            if m.group(2).startswith(heading):
                start, level = i, len(m.group(1))
        elif intro or len(m.group(1)) <= level:
            return lines[start:i]
    if start is None:
        log.warning(f"{where}: no heading starting with {heading!r}")
        return []
    return lines[start:]


def _shift(lines: list[str], level: int | None, body: bool) -> list[str]:
    first = next((len(m.group(1)) for _, line, fenced in _outside_fences(lines)
                  if not fenced and (m := HEADING.match(line))), None)
    if body and first is not None:
        idx = next(i for i, line, fenced in _outside_fences(lines)
                   if not fenced and HEADING.match(line))
        lines = lines[:idx] + lines[idx + 1:]
    if level is None or first is None:
        return lines
    delta = level - first
    out = []
    for _, line, fenced in _outside_fences(lines):
        m = None if fenced else HEADING.match(line)
        if m:
            line = "#" * min(6, max(1, len(m.group(1)) + delta)) + " " + m.group(2)
        out.append(line)
    return out


def _rebase(text: str, source: str, page: str, files: Files, config, where: str) -> str:
    """Links of ``text`` (relative to the repository file ``source``) for ``page``."""
    src_dir = posixpath.dirname(source)
    page_dir = posixpath.dirname(page)
    repo_url = (config.get("repo_url") or "").rstrip("/")

    def target(raw: str, is_image: bool):
        if SCHEME.match(raw) or raw.startswith("#") or raw.startswith("/"):
            return raw, True
        path, _, anchor = raw.partition("#")
        rel = posixpath.normpath(posixpath.join(src_dir, path))
        if not (ROOT / rel).exists():
            log.warning(f"{where}: link to {raw!r} ({rel}) names no file of the repository")
            return raw, True
        hit = PAGE_OF.get(rel) or (rel if files.get_file_from_path(rel) is not None else None)
        if hit:
            new = posixpath.relpath(hit, page_dir or ".")
            return new + (f"#{anchor}" if anchor and hit == rel else ""), True
        if repo_url:
            kind = "tree" if (ROOT / rel).is_dir() else "blob"
            return f"{repo_url}/{kind}/HEAD/{rel}" + (f"#{anchor}" if anchor else ""), True
        return rel, False

    def link(m):
        new, keep = target(m.group(2), m.group(1).startswith("!"))
        if keep:
            return m.group(1) + new + m.group(3)
        label = m.group(1)[1:-2]
        return label if "`" in label or label == new else f"{label} (`{new}`)"

    def html(m):
        new, _ = target(m.group(2), True)
        return m.group(1) + new + m.group(3)

    out = []
    for _, line, fenced in _outside_fences(text.split("\n")):
        out.append(line if fenced else HTML_SRC.sub(html, LINK.sub(link, line)))
    return "\n".join(out)


def _expand(markdown: str, page: str, files: Files, config, depth: int = 0) -> str:
    out = []
    for _, line, fenced in _outside_fences(markdown.split("\n")):
        m = None if fenced else INCLUDE.match(line)
        if not m:
            out.append(line)
            continue
        parts = [p.strip() for p in m.group(1).split("|")]
        source, args = parts[0], parts[1:]
        where = f"{page}: @include {source}"
        path = ROOT / source
        if not path.is_file():
            log.warning(f"{where}: no such file")
            continue
        heading = next((a for a in args if a not in ("body", "intro") and not a.startswith("level=")), None)
        level = next((int(a[6:]) for a in args if a.startswith("level=")), None)
        lines = path.read_text().split("\n")
        if heading is not None:
            lines = _section(lines, heading, "intro" in args, where)
        lines = _shift(lines, level, "body" in args)
        text = _rebase("\n".join(lines), source, page, files, config, where)
        out.append(_expand(text, page, files, config, depth + 1) if depth < 3 else text)
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files: Files):
    return _expand(markdown, page.file.src_uri, files, config)
