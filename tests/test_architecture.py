"""The package's layers, checked on its import graph (read with ``ast``, nothing imported):

    foundation  errors, _io, backend, config
    core        geometry -> hands, objects -> energy, optimize
    io          io (grasp-set files, dataset index, exports)
    measure     evaluate (MuJoCo physics, exact-mesh geometry, metrics) -> viz (pictures)
    pipelines   pipelines (synthesis, evaluation, dataset build, the paper's comparison)
    aliases     synthesis.py, dataset/, report/ (and evaluate/run.py): old import paths of moved modules, for users' code
    cli         cli
    api         graspforge/__init__.py (lazy re-exports)

A module may import from its own package or from a package of lower rank, never upwards or
sideways (the exceptions, ``UPWARD_IMPORTS_ALLOWED``, keep the old names of ``graspforge.evaluate``
working); no module imports an alias (``ALIASES``: they exist for code outside the package); and
graspforge modules are imported at module level, never inside a function (a
function-local import hides a cycle), except the few listed in ``LOCAL_IMPORTS_ALLOWED`` with why.
Other libraries are imported inside a function only when they are optional or heavy and needed by
few paths: ``LOCAL_LIBRARIES`` says which and why.
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
    "evaluate": 6, "viz": 7,                                               # measure (simulation, metrics) and draw
    "pipelines": 8,                                                        # synthesis, evaluation, dataset build, paper
    "synthesis": 9, "dataset": 9, "report": 9,                             # aliases: old import paths (ALIASES)
    "cli": 10,
    "": 11,                                                                # graspforge/__init__: the public API
}

#: old import path -> the module that moved there; an alias re-exports it and nothing in the package imports it
ALIASES: dict[str, str] = {
    "graspforge.synthesis": "graspforge.pipelines.synthesis",
    "graspforge.evaluate.run": "graspforge.pipelines.evaluation",
    "graspforge.dataset.build": "graspforge.pipelines.dataset_build",
    "graspforge.report.paper": "graspforge.pipelines.paper",
    "graspforge.dataset.grasp_set": "graspforge.io.grasp_set",
    "graspforge.dataset.export": "graspforge.io.export",
}

#: (importing module, imported module) -> why this import may go to a higher rank
UPWARD_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {
    ("graspforge.evaluate", "graspforge.pipelines"):
        "gf.evaluate(grasp_set) and the names of evaluate/run.py, moved to pipelines/evaluation.py, stay reachable "
        "from the evaluate package: looked up on first use, since the pipeline imports the package",
    ("graspforge.evaluate.run", "graspforge.pipelines.evaluation"): "alias of the module that moved (ALIASES)",
}

#: (importing module, imported module) -> why the import sits inside a function
LOCAL_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {
    ("graspforge.evaluate", "graspforge.pipelines"):
        "the evaluation pipeline imports the evaluate package, so the package reaches it on first use (UPWARD_IMPORTS_ALLOWED)",
    ("graspforge.io.grasp_set", "graspforge.geometry.rotations"):
        "GraspSet reads and writes its files with numpy alone; only hand_poses() needs torch (through the rotations)",
}


#: libraries that may be imported inside a function, and why (import times on this 2-core CPU)
LOCAL_LIBRARIES: dict[str, str] = {
    "ray": "optional (pip install graspforge[ray]): imported only for --backend ray",
    "matplotlib": "pictures only (pyplot 0.65 s); the Agg backend is selected before pyplot loads",
    "mpl_toolkits": "pictures only (matplotlib's 3-D toolkit)",
    "plotly": "the HTML grasp viewer only",
    "mujoco": "native library (0.3 s), needed where a model is compiled: MJCF hands, alignment, reports",
    "igl": "native library (0.3 s), needed by the exact-distance functions only",
    "coacd": "native library, needed only to decompose an object that ships no convex pieces",
    "pytorch_kinematics": "its URDF parser (3 s to import), needed only when a URDF is parsed",
}
#: (module, library) pairs allowed besides LOCAL_LIBRARIES
LOCAL_LIBRARY_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("graspforge.io.grasp_set", "torch"): "GraspSet reads and writes its files with numpy alone; hand_poses() needs torch",
}


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, e.g. graspforge.pipelines.synthesis
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


def local_library_imports(root: Path) -> list[tuple[str, str, int]]:
    """(module, top-level library, line) of every import of a non-graspforge module inside a function."""
    out = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        seen = set()
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            for node in ast.walk(fn):
                if id(node) in seen or not isinstance(node, (ast.Import, ast.ImportFrom)) or getattr(node, "level", 0):
                    continue
                seen.add(id(node))
                for name in ([node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]):
                    top = name.split(".")[0]
                    if top != root.name:
                        out.append((module_name(path, root), top, node.lineno))
    return out


def top_package(module: str) -> str:
    """``graspforge.hands.model`` -> ``hands``; ``graspforge`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(edges: list[Edge], ranks: dict[str, int], allowed: dict[tuple[str, str], str] | None = None) -> list[str]:
    out = []
    for e in edges:
        src, dst = top_package(e.source), top_package(e.target)
        if src == dst or (e.source, e.target) in (allowed or {}):
            continue
        if dst == "" and set(e.names) <= {"__version__"}:
            continue  # the version string: defined first in __init__, which imports nothing eagerly
        if src not in ranks or dst not in ranks:
            out.append(f"{e.source}:{e.line} imports {e.target}: a package missing from RANKS (give it a layer)")
        elif ranks[dst] >= ranks[src]:
            out.append(f"{e.source}:{e.line} imports {e.target} ({dst!r}, rank {ranks[dst]} >= {src!r}, rank {ranks[src]})")
    return out


def alias_violations(edges: list[Edge], aliases: dict[str, str]) -> list[str]:
    """Imports of an alias by any module, and alias modules that import more than the module they stand for."""
    out = [f"{e.source}:{e.line} imports {e.target}, an old path kept for users: import {aliases[e.target]}"
           for e in edges if e.target in aliases]
    out += [f"{e.source}:{e.line} is an alias of {aliases[e.source]} but imports {e.target}"
            for e in edges if e.source in aliases and e.target != aliases[e.source]]
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
    assert {("pipelines", "optimize"), ("energy", "hands"), ("pipelines", "evaluate"), ("cli", "pipelines")} <= pairs
    assert len(edges) > 200
    packages = {p.name if p.is_dir() else p.stem for p in SRC.iterdir() if p.name != "__pycache__" and
                (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert packages - {"__init__"} == set(RANKS) - {""}, "every package has a layer"


def test_no_upward_or_sideways_imports(edges):
    assert layer_violations(edges, RANKS, UPWARD_IMPORTS_ALLOWED) == []
    assert set(UPWARD_IMPORTS_ALLOWED) <= {(e.source, e.target) for e in edges}, "stale entries in UPWARD_IMPORTS_ALLOWED"


def test_aliases_only_re_export_and_nothing_imports_them(edges):
    assert alias_violations(edges, ALIASES) == []
    modules = {module_name(p, SRC) for p in SRC.rglob("*.py")}
    assert set(ALIASES) <= modules and set(ALIASES.values()) <= modules, "ALIASES names a module that does not exist"
    alias_layer = {p for p, r in RANKS.items() if r == RANKS["dataset"]}
    in_layer = {module_name(p, SRC) for p in SRC.rglob("*.py") if p.name != "__init__.py"
                and top_package(module_name(p, SRC)) in alias_layer}
    assert in_layer == {a for a in ALIASES if top_package(a) in alias_layer}, \
        "the aliases' layer holds aliases only (a package's __init__ may re-export)"


def test_no_function_local_imports_of_graspforge_modules(edges):
    assert local_import_violations(edges, LOCAL_IMPORTS_ALLOWED) == []
    used = {(e.source, e.target) for e in edges if e.local}
    assert set(LOCAL_IMPORTS_ALLOWED) <= used, "stale entries in LOCAL_IMPORTS_ALLOWED"


def test_other_libraries_are_imported_inside_functions_only_when_listed():
    found = local_library_imports(SRC)
    bad = [f"{m}:{line} imports {lib} inside a function" for m, lib, line in found
           if lib not in LOCAL_LIBRARIES and (m, lib) not in LOCAL_LIBRARY_EXCEPTIONS]
    assert bad == []
    used = {lib for _, lib, _ in found}
    assert set(LOCAL_LIBRARIES) <= used, "stale entries in LOCAL_LIBRARIES"
    assert set(LOCAL_LIBRARY_EXCEPTIONS) <= {(m, lib) for m, lib, _ in found}


def test_the_checks_catch_an_upward_and_a_local_import(tmp_path):
    """The same checks on a tiny package with one upward import (core -> pipeline) and one import
    hidden in a function report exactly those two; the allowed upward import excuses only its own
    pair; an import of an alias is reported."""
    pkg = tmp_path / "graspforge"
    for sub in ("geometry", "pipelines", "evaluate", "dataset", "cli"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text('__version__ = "0"\n')
    (pkg / "geometry" / "grid.py").write_text("from ..pipelines.dataset_build import run\n")
    (pkg / "pipelines" / "dataset_build.py").write_text("from .. import __version__\n\ndef run():\n    from ..geometry import grid\n"
                                                        "    import numpy\n")
    (pkg / "evaluate" / "__init__.py").write_text("def _pipeline():\n    from ..pipelines import evaluation\n")
    (pkg / "dataset" / "grasp_set.py").write_text("from ..io.grasp_set import *\n")
    (pkg / "cli" / "main.py").write_text("from ..dataset.grasp_set import GraspSet\n")
    found = import_edges(pkg)
    assert local_library_imports(pkg) == [("graspforge.pipelines.dataset_build", "numpy", 5)]
    upward = ["graspforge.geometry.grid:1 imports graspforge.pipelines.dataset_build ('pipelines', rank 8 >= 'geometry', rank 2)"]
    assert layer_violations(found, RANKS, UPWARD_IMPORTS_ALLOWED) == upward
    assert layer_violations(found, RANKS) == [
        "graspforge.evaluate:2 imports graspforge.pipelines ('pipelines', rank 8 >= 'evaluate', rank 6)", *upward]
    assert local_import_violations(found, LOCAL_IMPORTS_ALLOWED) == [
        "graspforge.pipelines.dataset_build:4 imports graspforge.geometry inside a function"]
    assert alias_violations(found, ALIASES) == [
        "graspforge.cli.main:1 imports graspforge.dataset.grasp_set, an old path kept for users: import graspforge.io.grasp_set"]
