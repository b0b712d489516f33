"""The package's layers, checked on its import graph (read with ``ast``, nothing imported):

    foundation  errors, _io, backend, config
    core        geometry -> hands, objects -> energy, optimize
    io          io (grasp-set files, dataset index, exports)
    pipelines   synthesis, evaluate -> viz -> dataset (build) -> report
    cli         cli
    api         graspforge/__init__.py (lazy re-exports)

A module may import from its own package or from a package of lower rank, never upwards or
sideways; and graspforge modules are imported at module level, never inside a function (a
function-local import hides a cycle), except the few listed in ``LOCAL_IMPORTS_ALLOWED`` with why.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "graspforge"

#: rank of each top-level package or module of graspforge; imports go to strictly lower ranks
RANKS: dict[str, int] = {
    "errors": 0, "_io": 1, "backend": 1, "config": 1,                      # foundation
    "geometry": 2, "hands": 3, "objects": 3, "energy": 4, "optimize": 4,  # core
    "io": 5,                                                               # file formats
    "synthesis": 6, "evaluate": 6, "viz": 7, "dataset": 8, "report": 9,    # pipelines
    "cli": 10,
    "": 11,                                                                # graspforge/__init__: the public API
}

#: (importing module, imported module) -> why the import sits inside a function
LOCAL_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {
    ("graspforge.io.grasp_set", "graspforge.geometry.rotations"):
        "GraspSet reads and writes its files with numpy alone; only hand_poses() needs torch (through the rotations)",
}


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, e.g. graspforge.synthesis
    target: str  # imported module, e.g. graspforge.optimize.mala
    names: tuple[str, ...]  # names imported from it (empty for `import x`)
    local: bool  # inside a function body
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_edges(root: Path) -> list[Edge]:
    """Every import of a ``root.name`` module by a module under ``root`` (relative imports resolved)."""
    edges = []
    for path in sorted(root.rglob("*.py")):
        mod = module_name(path, root)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        in_function = {id(sub) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                       for sub in ast.walk(fn) if isinstance(sub, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                found = [(target, tuple(a.name for a in node.names))]
            elif isinstance(node, ast.Import):
                found = [(a.name, ()) for a in node.names]
            else:
                continue
            for target, names in found:
                if target == root.name or target.startswith(root.name + "."):
                    edges.append(Edge(mod, target, names, id(node) in in_function, node.lineno))
    return edges


def top_package(module: str) -> str:
    """``graspforge.hands.model`` -> ``hands``; ``graspforge`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(edges: list[Edge], ranks: dict[str, int]) -> list[str]:
    out = []
    for e in edges:
        src, dst = top_package(e.source), top_package(e.target)
        if src == dst:
            continue
        if dst == "" and set(e.names) <= {"__version__"}:
            continue  # the version string: defined first in __init__, which imports nothing eagerly
        if src not in ranks or dst not in ranks:
            out.append(f"{e.source}:{e.line} imports {e.target}: a package missing from RANKS (give it a layer)")
        elif ranks[dst] >= ranks[src]:
            out.append(f"{e.source}:{e.line} imports {e.target} ({dst!r}, rank {ranks[dst]} >= {src!r}, rank {ranks[src]})")
    return out


def local_import_violations(edges: list[Edge], allowed: dict[tuple[str, str], str]) -> list[str]:
    return [f"{e.source}:{e.line} imports {e.target} inside a function" for e in edges
            if e.local and (e.source, e.target) not in allowed]


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_edges(SRC)


def test_the_graph_is_read(edges):
    """The parser sees the imports it must judge (an empty graph would pass everything)."""
    pairs = {(top_package(e.source), top_package(e.target)) for e in edges}
    assert {("synthesis", "optimize"), ("energy", "hands"), ("dataset", "synthesis"), ("cli", "dataset")} <= pairs
    assert len(edges) > 200
    packages = {p.name if p.is_dir() else p.stem for p in SRC.iterdir() if p.name != "__pycache__" and
                (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert packages - {"__init__"} == set(RANKS) - {""}, "every package has a layer"


def test_no_upward_or_sideways_imports(edges):
    assert layer_violations(edges, RANKS) == []


def test_no_function_local_imports_of_graspforge_modules(edges):
    assert local_import_violations(edges, LOCAL_IMPORTS_ALLOWED) == []
    used = {(e.source, e.target) for e in edges if e.local}
    assert set(LOCAL_IMPORTS_ALLOWED) <= used, "stale entries in LOCAL_IMPORTS_ALLOWED"


def test_the_checks_catch_an_upward_and_a_local_import(tmp_path):
    """The same checks on a tiny package with one upward import (core -> pipeline) and one import
    hidden in a function report exactly those two."""
    pkg = tmp_path / "graspforge"
    for sub in ("geometry", "dataset"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text('__version__ = "0"\n')
    (pkg / "geometry" / "grid.py").write_text("from ..dataset.build import run\n")
    (pkg / "dataset" / "build.py").write_text("from .. import __version__\n\ndef run():\n    from ..geometry import grid\n")
    found = import_edges(pkg)
    assert layer_violations(found, RANKS) == [
        "graspforge.geometry.grid:1 imports graspforge.dataset.build ('dataset', rank 8 >= 'geometry', rank 2)"]
    assert local_import_violations(found, {}) == ["graspforge.dataset.build:4 imports graspforge.geometry inside a function"]
