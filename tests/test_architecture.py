"""The import rules of ``diffsim/ARCHITECTURE.md``, checked on the source (no imports run).

Every ``import`` / ``from ... import`` statement of ``diffsim/``, ``solvers/`` and ``envs/``
is read with ``ast`` and resolved to an absolute module name (``solvers/`` is
``diffsim.solvers``, ``envs/`` is ``diffsim.envs``). The rules are those that hold today;
the cross-simulator imports that issue 15 still has to remove are listed one by one in
``SIMULATOR_DEBT``: a new one fails the test, and so does an entry that is gone (then delete
it here and in ARCHITECTURE.md, which must describe the code as it is).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"diffsim": "diffsim", "solvers": "diffsim.solvers", "envs": "diffsim.envs"}
SIMULATORS = ("mpm", "fem", "tactile", "eulerian")

# What diffsim.solvers may take from the core: the dispatch of `solve`, the sensitivity
# base, the implicit-function bridge, errors and the runtime. Simulators only lazily (inside
# a function: data generation) and only through the public `diffsim` namespace, except the
# smoke data generator, which uses diffsim.eulerian directly.
SOLVERS_CORE = {"diffsim.dispatch", "diffsim.sensitivity", "diffsim.implicit", "diffsim.errors",
                "diffsim.runtime"}
SOLVERS_LAZY = {"diffsim", "diffsim.eulerian"}

# What diffsim.envs may import from the rest of diffsim: the public namespaces only.
ENVS_PUBLIC = {"diffsim", "diffsim.render", "diffsim.solvers"}
# envs/ modules that still reach below the public names (from the `diffsim solve` work:
# the recipe's option checks, the torch tool SDFs' rotations, the GIF writer). A new one
# fails the test, and so does an entry that is gone (then delete it here).
ENVS_DEBT = {
    ("envs/contact.py", "diffsim.tools"),
    ("envs/recipe.py", "diffsim.solvers.control.basis"),
    ("envs/recipe.py", "diffsim.solvers.control.checks"),
    ("envs/recipe.py", "diffsim.solvers.control.temporal"),
    ("envs/solve.py", "diffsim.render.animate"),
}

# Containment: one simulator holding another as an object (ds.Tactile touching an MPM or
# FEM body), through the couplings.
SIMULATOR_CONTAINS = {
    ("diffsim/tactile/mpm_coupling.py", "diffsim.mpm.simulator"),
    ("diffsim/tactile/fem_coupling.py", "diffsim.fem.simulator"),
}

# Imports between simulator packages (and from shared core modules into a simulator) that
# issue 15 still has to remove: Tactile is a subclass chain over fem/ (simulator, engine,
# kernels).
SIMULATOR_DEBT = {
    ("diffsim/tactile/simulator.py", "diffsim.fem.base"),    # DeformableSimulator
    ("diffsim/tactile/simulator.py", "diffsim.fem.simulator"),  # class Tactile(FEM)
    ("diffsim/tactile/kernels.py", "diffsim.fem.engine"),    # TactileEngine(DeformableEngine)
    ("diffsim/tactile/kernels.py", "diffsim.fem.solid_kernels"),  # TactileKernels(SolidKernels)
}

# Applications over the whole core (they may import any simulator): the package's
# re-exports, the MPM demo, the renderer (it draws every simulator).
CORE_APPS = {"diffsim/__init__.py", "diffsim/demo.py"}


@dataclass(frozen=True)
class Import:
    file: str      # path relative to the repository root
    module: str    # absolute module imported (for `from m import x`: m, and m.x if m.x is a module)
    lazy: bool     # inside a function (runs on first call, not at import)
    line: int


def _module_of(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    top, rest = PACKAGES[parts[0]], parts[1:]
    is_init = rest[-1:] == ["__init__"]
    if is_init:
        rest = rest[:-1]
    return ".".join([top, *rest]), is_init


def _is_module(name: str) -> bool:
    """Whether ``name`` (absolute, ``diffsim...``) is a module or package of this repository."""
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in ("solvers", "envs"):
        base = ROOT.joinpath(*parts[1:])
    else:
        base = ROOT.joinpath("diffsim", *parts[1:])
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _imports() -> list[Import]:
    found = []
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            name, is_init = _module_of(path)
            package = name if is_init else name.rsplit(".", 1)[0]
            tree = ast.parse(path.read_text(), str(path))
            lazy_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                          for n in ast.walk(f)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = package.split(".")[: len(package.split(".")) - node.level + 1]
                        mod = ".".join(base + ([node.module] if node.module else []))
                    else:
                        mod = node.module or ""
                    mods = [mod] + [f"{mod}.{a.name}" for a in node.names if _is_module(f"{mod}.{a.name}")]
                else:
                    continue
                rel = str(path.relative_to(ROOT))
                for m in mods:
                    if m == "diffsim" or m.startswith("diffsim."):
                        found.append(Import(rel, m, id(node) in lazy_nodes, node.lineno))
    return found


IMPORTS = _imports()


def _area(module: str) -> str:
    """``solvers``, ``envs``, a simulator or ``render`` name, or ``core``."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("solvers", "envs", "render", *SIMULATORS):
        return parts[1]
    return "core"


def _file_area(file: str) -> str:
    parts = Path(file).parts
    if parts[0] in ("solvers", "envs"):
        return parts[0]
    return parts[1] if len(parts) > 2 and parts[1] in ("render", *SIMULATORS) else "core"


def _fmt(imps) -> str:
    return "\n".join(f"  {i.file}:{i.line}: {i.module}{' (lazy)' if i.lazy else ''}" for i in imps)


def test_the_scan_sees_the_imports_it_checks():
    """Guards the scanner itself: known imports of each kind are found and resolved."""
    pairs = {(i.file, i.module, i.lazy) for i in IMPORTS}
    assert ("solvers/ode/solve.py", "diffsim.dispatch", False) in pairs            # absolute
    assert ("diffsim/mpm/simulator.py", "diffsim.adjoint", False) in pairs         # relative ..
    assert ("diffsim/render/drawing.py", "diffsim.tools", True) in pairs            # lazy
    assert ("diffsim/__init__.py", "diffsim.render", False) in pairs               # from . import render
    assert len(IMPORTS) > 300


def test_the_core_never_imports_solvers_or_envs():
    bad = [i for i in IMPORTS if _file_area(i.file) not in ("solvers", "envs")
           and _area(i.module) in ("solvers", "envs")]
    assert not bad, "diffsim's core imports diffsim.solvers / diffsim.envs:\n" + _fmt(bad)


def test_solvers_import_no_simulator_and_only_the_shared_core():
    mine = [i for i in IMPORTS if _file_area(i.file) == "solvers" and _area(i.module) != "solvers"]
    bad = [i for i in mine if not (i.module in SOLVERS_CORE or (i.lazy and i.module in SOLVERS_LAZY))]
    assert not bad, ("diffsim.solvers may import only " + ", ".join(sorted(SOLVERS_CORE))
                     + " from the core, and simulators lazily through `diffsim`:\n" + _fmt(bad))


def test_envs_use_public_apis_only():
    mine = [i for i in IMPORTS if _file_area(i.file) == "envs" and _area(i.module) != "envs"]
    bad = [i for i in mine if i.module not in ENVS_PUBLIC and (i.file, i.module) not in ENVS_DEBT]
    assert not bad, "diffsim.envs imports beyond the public diffsim / ds.render / dss:\n" + _fmt(bad)
    gone = ENVS_DEBT - {(i.file, i.module) for i in mine}
    assert not gone, f"ENVS_DEBT entries no longer imported (delete them): {sorted(gone)}"
    # and names that are public there (no `from diffsim import _private`)
    private = []
    for path in sorted((ROOT / "envs").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("diffsim") \
                    and not (node.module or "").startswith("diffsim.envs"):
                private += [f"{path.relative_to(ROOT)}:{node.lineno}: {a.name}" for a in node.names
                            if a.name.startswith("_")]
    assert not private, "diffsim.envs imports private names:\n" + "\n".join(private)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_simulators_import_each_other_only_by_containment_or_listed_debt(simulator):
    cross = {(i.file, i.module) for i in IMPORTS
             if _file_area(i.file) == simulator and _area(i.module) in SIMULATORS
             and _area(i.module) != simulator}
    new = sorted(cross - SIMULATOR_CONTAINS - SIMULATOR_DEBT)
    assert not new, (f"diffsim.{simulator} imports another simulator package; use the shared layer "
                     f"(ARCHITECTURE.md) or a coupling:\n" + "\n".join(f"  {f}: {m}" for f, m in new))
    if simulator in ("mpm", "eulerian"):
        assert not cross, f"diffsim.{simulator} must stand alone, imports {sorted(cross)}"


def test_shared_core_modules_import_no_simulator_except_listed_debt():
    cross = {(i.file, i.module) for i in IMPORTS
             if _file_area(i.file) == "core" and not i.file.startswith(("solvers", "envs"))
             and i.file not in CORE_APPS and _area(i.module) in (*SIMULATORS, "render")}
    new = sorted(cross - SIMULATOR_DEBT)
    assert not new, ("a shared core module imports a simulator (the shared layer stands below "
                     "them):\n" + "\n".join(f"  {f}: {m}" for f, m in new))


def test_listed_debt_still_exists():
    """An entry of SIMULATOR_DEBT that no longer holds: remove it here and from
    ARCHITECTURE.md's list of what issue 15 still has to do."""
    pairs = {(i.file, i.module) for i in IMPORTS}
    gone = sorted((SIMULATOR_DEBT | SIMULATOR_CONTAINS) - pairs)
    assert not gone, "no longer imported (update the lists and ARCHITECTURE.md):\n" + "\n".join(
        f"  {f}: {m}" for f, m in gone)
