"""Convex pieces of an object, for simulators that collide convex shapes (MuJoCo).

Shipped pieces (a ``collisions/`` folder beside the mesh, as in the YCB layout) are used as they
are; any other mesh is cut by CoACD (approximate convex decomposition, the tool the field uses)
once and cached by the mesh's content hash.
"""

from __future__ import annotations

import warnings

import numpy as np
import trimesh

from .._io import cached_npz
from ..errors import MeshLoadError
from .loading import read_mesh_file
from .model import ObjectModel

MeshPart = tuple[np.ndarray, np.ndarray]  # (V, 3) m, (F, 3)

#: CoACD concavity threshold (its default); lower cuts more pieces.
COACD_THRESHOLD = 0.05
#: Upper bound on pieces: each costs collision time in every simulation step.
COACD_MAX_PIECES = 32


def _hull(v: np.ndarray) -> MeshPart:
    h = trimesh.convex.convex_hull(np.asarray(v, np.float64))
    return np.asarray(h.vertices), np.asarray(h.faces)


def shipped_pieces(obj: ObjectModel) -> list[MeshPart]:
    """The convex pieces shipped beside the object's mesh, in metres; [] when there are none.

    Pieces are usually in the mesh file's units (scaled like it), but some sets ship millimetre
    meshes with metre pieces (YCB's ``sns_cup``): the scale whose union box matches the object's is
    used. Pieces that match the object at neither scale are ignored with a warning (the caller then
    decomposes the mesh itself). Raises :class:`MeshLoadError` naming a piece that cannot be read.
    """
    raw = []
    for path in obj.convex_pieces:
        v, _ = read_mesh_file(path)
        v = np.asarray(v, np.float64)
        if len(v) < 4 or not np.all(np.isfinite(v)):
            raise MeshLoadError(f"{path}: convex piece of {obj.name!r} has no volume")
        raw.append(v)
    if not raw:
        return []
    allv = np.concatenate(raw)
    extent = float(np.linalg.norm(allv.max(0) - allv.min(0)))
    target = float(np.linalg.norm(obj.vertices.max(0) - obj.vertices.min(0)))
    scales = sorted({obj.scale, 1.0}, key=lambda k: abs(np.log(max(extent * k, 1e-12) / max(target, 1e-12))))
    k = scales[0]
    if not 0.67 < extent * k / max(target, 1e-12) < 1.5:
        warnings.warn(f"{obj.convex_pieces[0].parent}: the convex pieces of {obj.name!r} span {extent * k:.3g} m, the mesh "
                      f"{target:.3g} m: they do not belong to it; decomposing the mesh instead", UserWarning, stacklevel=2)
        return []
    return [_hull(v * k) for v in raw]


def coacd_pieces(obj: ObjectModel, threshold: float = COACD_THRESHOLD, max_pieces: int = COACD_MAX_PIECES, seed: int = 0) -> list[MeshPart]:
    """CoACD decomposition of the object's mesh, cached by content hash and parameters."""
    key = f"coacd-{obj.content_hash[:32]}-{threshold:g}-{max_pieces}-{seed}"

    def build() -> dict[str, np.ndarray]:
        try:  # loaded only when a decomposition is built (cached ones do not need its native library)
            import coacd
        except ImportError as exc:  # pragma: no cover - coacd is a dependency
            raise MeshLoadError("convex decomposition needs the 'coacd' package (pip install coacd)") from exc
        coacd.set_log_level("error")
        try:
            parts = coacd.run_coacd(coacd.Mesh(np.asarray(obj.vertices), np.asarray(obj.faces)),
                                    threshold=threshold, max_convex_hull=max_pieces, seed=seed)
        except Exception as exc:
            raise MeshLoadError(f"{obj.source}: convex decomposition of {obj.name!r} failed: {exc}") from exc
        parts = [(np.asarray(v, np.float64), np.asarray(f, np.int64)) for v, f in parts if len(v) >= 4]
        if not parts:
            raise MeshLoadError(f"{obj.source}: convex decomposition of {obj.name!r} gave no pieces")
        arrays: dict[str, np.ndarray] = {"count": np.array(len(parts))}
        for i, (v, f) in enumerate(parts):
            arrays[f"v{i}"], arrays[f"f{i}"] = v, f
        return arrays

    arrays = cached_npz(key, build, subdir="coacd")
    return [(arrays[f"v{i}"], arrays[f"f{i}"]) for i in range(int(arrays["count"]))]


def collision_pieces(obj: ObjectModel, **coacd_options) -> tuple[list[MeshPart], str]:
    """Convex pieces of ``obj`` and where they came from (``"shipped"``, ``"convex"`` or ``"coacd"``).

    A mesh that is already convex (within 0.1 % of its hull's volume) is its own single piece.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        pieces = shipped_pieces(obj)
    if pieces:
        return pieces, "shipped"
    hull = obj.convex_hull
    vol = float(obj.volume) if obj.is_watertight else 0.0
    if vol > 0 and vol >= 0.999 * float(hull.volume):
        return [(np.asarray(hull.vertices), np.asarray(hull.faces))], "convex"
    return coacd_pieces(obj, **coacd_options), "coacd"
