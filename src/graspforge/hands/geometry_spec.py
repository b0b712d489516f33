"""Link geometry as described by a URDF/MJCF: primitives and meshes placed in the link frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from ..errors import HandLoadError


@dataclass
class GeometryElement:
    """One collision or visual element of a link.

    ``kind``: "mesh", "box", "cylinder", "sphere" or "capsule". ``params``: box full sizes (3,),
    cylinder/capsule (radius, length), sphere (radius,). ``path``: resolved mesh file for meshes.
    ``scale`` (3,) mesh scale. ``origin`` (4, 4): element frame in the link frame.
    """

    kind: str
    origin: np.ndarray
    params: tuple = ()
    path: Path | None = None
    scale: np.ndarray = field(default_factory=lambda: np.ones(3))
    vertices: np.ndarray | None = None  # inline mesh data (MJCF meshes compiled by MuJoCo)
    faces: np.ndarray | None = None

    def to_trimesh(self) -> trimesh.Trimesh:
        """The element as a mesh in the *link* frame (metres)."""
        if self.kind == "mesh":
            if self.vertices is not None:
                m = trimesh.Trimesh(self.vertices, self.faces, process=True)
            else:
                m = load_link_mesh(self.path)
            m = m.copy()
            m.apply_scale(1.0) if np.allclose(self.scale, 1) else m.apply_transform(np.diag([*self.scale, 1.0]))
        elif self.kind == "box":
            m = trimesh.creation.box(extents=np.asarray(self.params, float))
        elif self.kind == "cylinder":
            m = trimesh.creation.cylinder(radius=float(self.params[0]), height=float(self.params[1]), sections=48)
        elif self.kind == "capsule":
            m = trimesh.creation.capsule(radius=float(self.params[0]), height=float(self.params[1]), count=[24, 24])
        elif self.kind == "sphere":
            m = trimesh.creation.icosphere(subdivisions=3, radius=float(self.params[0]))
        else:
            raise HandLoadError(f"unsupported geometry kind {self.kind!r}")
        m.apply_transform(self.origin)
        return m


_MESH_CACHE: dict[str, trimesh.Trimesh] = {}


def load_link_mesh(path: Path | str) -> trimesh.Trimesh:
    """Load a link mesh file (any format trimesh reads), merged into one mesh; errors name the file."""
    path = Path(path)
    key = str(path.resolve())
    if key in _MESH_CACHE:
        return _MESH_CACHE[key]
    if not path.is_file():
        raise HandLoadError(f"mesh file not found: {path}")
    try:
        loaded = trimesh.load(str(path), force="mesh", process=True)
    except Exception as e:  # trimesh raises many types on corrupt files
        raise HandLoadError(f"cannot read mesh {path}: {e}") from e
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise HandLoadError(f"mesh {path} has no triangles")
    if not np.all(np.isfinite(loaded.vertices)):
        raise HandLoadError(f"mesh {path} has non-finite vertices")
    _MESH_CACHE[key] = loaded
    return loaded
