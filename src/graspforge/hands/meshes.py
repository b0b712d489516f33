"""Collision meshes of a hand's links, for simulation and exact checks.

A hand built from a URDF/MJCF re-reads its real collision meshes. A built-in hand carries no meshes
(only its own distance grids and samples), so each link's geometry is recovered from its grid: nodes
near the zero level are projected onto the surface along the grid gradient and wrapped in their
convex hull. That is what a simulator such as MuJoCo collides with anyway (it replaces every mesh
geom by its convex hull); the grid is within 1 mm of the source meshes (``bench/bench_hands.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from ..errors import HandLoadError
from ..geometry.atlas import LinkGrid
from .checks import source_link_parts
from .description import HandDescription

MeshPart = tuple[np.ndarray, np.ndarray]  # (V, 3) vertices in the link frame, m; (F, 3) faces


@dataclass
class LinkMeshes:
    """Per link name, its collision parts in the link frame; ``origin`` says where they came from:
    ``"source"`` (the URDF/MJCF meshes and primitives) or ``"grid"`` (hulls recovered from the
    built-in distance grids)."""

    parts: dict[str, list[MeshPart]]
    origin: str


def grid_surface_points(grid: LinkGrid, band: float = 1.0) -> np.ndarray:
    """Points on the zero level of a distance grid (link frame, m): nodes within ``band`` grid
    spacings of the surface, moved onto it along the normalised finite-difference gradient."""
    d = np.asarray(grid.values, np.float64)
    g = np.stack(np.gradient(d, grid.spacing), axis=-1)
    near = np.abs(d) <= band * grid.spacing
    idx = np.argwhere(near)
    if len(idx) == 0:
        return np.zeros((0, 3))
    n = g[near]
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    p = grid.origin + grid.spacing * idx
    return p - d[near][:, None] * n


def grid_hull(grid: LinkGrid) -> MeshPart | None:
    """Convex hull (V, F) of a link's grid surface, or None when the grid holds no surface."""
    pts = grid_surface_points(grid)
    if len(pts) < 4:
        return None
    try:
        hull = trimesh.convex.convex_hull(pts)
    except Exception:  # degenerate (flat) point sets
        return None
    return np.asarray(hull.vertices), np.asarray(hull.faces)


def link_collision_meshes(desc: HandDescription) -> LinkMeshes:
    """Collision parts of every link that has collision geometry.

    Uses the source URDF/MJCF meshes when the description has a source, else the built-in grids.
    Raises :class:`HandLoadError` (naming the file) when the source meshes cannot be read.
    """
    if desc.source is not None:
        return LinkMeshes(source_link_parts(desc), "source")
    parts: dict[str, list[MeshPart]] = {}
    for l, name in enumerate(desc.tree.link_names):
        g = int(desc.link_grid[l])
        if g < 0:
            continue
        hull = grid_hull(desc.grids[g])
        if hull is None:
            raise HandLoadError(f"hand {desc.name!r}: link {name!r} has a collision grid without a surface")
        parts[name] = [hull]
    return LinkMeshes(parts, "grid")
