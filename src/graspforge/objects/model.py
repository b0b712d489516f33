"""The object to grasp: :class:`ObjectModel`, and the entry points that make one.

An :class:`ObjectModel` holds a clean mesh in metres and answers what grasp synthesis asks about
it: signed distance and outward normal at any points (from a cached SDF grid, differentiable),
reference surface points with normals, convex hull, centre of mass, bounds.

Slow derived data (SDF grid: seconds; surface points: about a second) is built on first use and
cached on disk under :func:`graspforge._io.cache_dir`, keyed by the mesh's content hash and the
parameters, with atomic writes: a killed process leaves no partial entry, and an unreadable or
inconsistent entry is rebuilt.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import trimesh

from .._io import cache_dir, cached_npz, sha256_arrays
from ..errors import MeshLoadError, ObjectMismatchError, UnknownNameError
from ..geometry import SDFGrid, build_sdf_grid, farthest_point_sampling, sample_surface
from ..geometry.exact import winding_number
from .loading import (
    MESH_SUFFIXES,
    convex_pieces_beside,
    find_mesh_files,
    load_mesh,
    prepare_mesh,
    validate_arrays,
)
from .procedural import BUILTIN_OBJECTS, make_mesh

#: Subfolder of the cache folder for object data.
CACHE_SUBDIR = "objects"

#: Bump when the layout or the meaning of cached object data changes.
CACHE_VERSION = 1


def _cached(key: str, build: Callable[[], dict[str, np.ndarray]], check: Callable[[dict], Any]) -> Any:
    """``check(arrays)`` of the cache entry ``key``, built with ``build`` when absent or bad.

    :func:`cached_npz` already rebuilds unreadable files; ``check`` catches readable ones that
    do not hold what they should (another layout, another mesh), which are then replaced.
    """
    arrays = cached_npz(key, build, subdir=CACHE_SUBDIR)
    try:
        return check(arrays)
    except (KeyError, ValueError, TypeError, IndexError):
        (cache_dir() / CACHE_SUBDIR / f"{key}.npz").unlink(missing_ok=True)
        return check(cached_npz(key, build, subdir=CACHE_SUBDIR))


def _expect_hash(arrays: dict[str, np.ndarray], content_hash: str) -> None:
    if str(arrays["content_hash"]) != content_hash:
        raise ValueError("cache entry belongs to another mesh")


def occupancy_mass_properties(grid: SDFGrid) -> tuple[float, np.ndarray]:
    """Volume (m^3) and centroid (3,) of the solid described by an SDF grid (uniform density).

    Each node owns the cube of side h around it, taken as filled by ``clip(d / h + 1/2, 0, 1)``:
    exact for a plane through the cube parallel to a face, sub-voxel accurate elsewhere. It relies
    only on the inside/outside of the grid, so it holds for meshes with holes.
    """
    h = grid.spacing
    occupancy = np.clip(grid.values.astype(np.float64) / h + 0.5, 0.0, 1.0)
    total = float(occupancy.sum())
    if total <= 0:
        raise ValueError("the SDF grid has no inside")
    nx, ny, nz = grid.shape
    # separable sums: no (N, 3) array of node positions needed
    cx = (occupancy.sum((1, 2)) * np.arange(nx)).sum() / total
    cy = (occupancy.sum((0, 2)) * np.arange(ny)).sum() / total
    cz = (occupancy.sum((0, 1)) * np.arange(nz)).sum() / total
    return total * h**3, grid.origin + h * np.array([cx, cy, cz])


class ObjectModel:
    """A rigid object: a clean triangle mesh in metres, plus cached queries for grasp synthesis.

    Make one with :func:`load_object` (file or built-in), :func:`make_object` (built-in) or
    :meth:`from_arrays` (any arrays, cleaned and checked). The constructor trusts its arrays to
    be clean (as those functions leave them).

    Attributes
    ----------
    name : str
        Short name: the file's stem (``"003_cracker_box"``) or the built-in name (``"mug"``).
    source : str
        Where it came from: an absolute file path, or ``"builtin:<spec>"``.
    scale : float
        Factor applied to the source coordinates to get metres.
    vertices : ndarray (V, 3) float64, metres; faces : ndarray (F, 3) int64.
    content_hash : str
        sha256 of (vertices, faces) after scaling and cleaning: the cache key and dataset identity.
    convex_pieces : tuple of Path
        Convex pieces shipped beside the mesh file (``collisions/*``), else empty.
    repairs : tuple of str
        What cleaning changed (merged vertices, flipped parts, ...), for logs.
    sdf_spacing, sdf_margin : float
        SDF grid node spacing and the margin it extends beyond the mesh bounds (m).
    """

    #: Default SDF node spacing (m). Within 2 cm of the 25 YCB surfaces: p95 error 0.07-0.42 mm
    #: (thin walls are the worst), max <= 1.2 mm; see bench/bench_sdf.py.
    DEFAULT_SDF_SPACING = 0.002
    #: Default SDF margin (m): queries up to 3 cm from the bounding box are interpolated, not
    #: extrapolated, so every point within 2 cm of the surface is inside the grid.
    DEFAULT_SDF_MARGIN = 0.03
    #: Number of reference surface points.
    DEFAULT_SURFACE_POINTS = 2500
    #: The farthest-point subset is chosen from this many times more area-uniform samples.
    SURFACE_OVERSAMPLING = 10

    def __init__(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        *,
        name: str,
        source: str,
        scale: float = 1.0,
        convex_pieces: Iterable[str | os.PathLike] = (),
        repairs: Iterable[str] = (),
        sdf_spacing: float = DEFAULT_SDF_SPACING,
        sdf_margin: float = DEFAULT_SDF_MARGIN,
        sdf_max_nodes_per_axis: int = 256,
    ) -> None:
        vertices, faces = validate_arrays(vertices, faces, name)
        if not (np.isfinite(sdf_spacing) and sdf_spacing > 0 and np.isfinite(sdf_margin) and sdf_margin >= 0):
            raise ValueError(f"{name}: sdf_spacing must be > 0 and sdf_margin >= 0 (metres)")
        self.name = str(name)
        self.source = str(source)
        self.scale = float(scale)
        # own read-only copies: the content hash must keep describing them
        self.vertices = np.array(vertices, dtype=np.float64, order="C")
        self.faces = np.array(faces, dtype=np.int64, order="C")
        self.vertices.flags.writeable = False
        self.faces.flags.writeable = False
        self.content_hash = sha256_arrays(self.vertices, self.faces)
        self.convex_pieces = tuple(Path(p) for p in convex_pieces)
        self.repairs = tuple(repairs)
        self.sdf_spacing = float(sdf_spacing)
        self.sdf_margin = float(sdf_margin)
        self.sdf_max_nodes_per_axis = int(sdf_max_nodes_per_axis)
        self._lazy: dict[str, Any] = {}

    @classmethod
    def from_arrays(
        cls, vertices: np.ndarray, faces: np.ndarray, name: str = "object", source: str | None = None, **kwargs: Any
    ) -> "ObjectModel":
        """Clean and check arbitrary ``vertices`` (V, 3) metres and ``faces`` (F, 3), then wrap them.

        Raises :class:`MeshLoadError` for arrays that make no usable solid.
        """
        v, f, repairs = prepare_mesh(vertices, faces, name)
        return cls(v, f, name=name, source=source or f"arrays:{name}", repairs=repairs, **kwargs)

    def __repr__(self) -> str:
        ext = " x ".join(f"{e * 100:.1f}" for e in self.extents)
        return (
            f"ObjectModel(name={self.name!r}, source={self.source!r}, {len(self.vertices)} vertices, "
            f"{len(self.faces)} faces, extents {ext} cm, hash {self.content_hash[:12]})"
        )

    def _get(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._lazy:
            self._lazy[key] = make()
        return self._lazy[key]

    # -- geometry ---------------------------------------------------------------------------
    @property
    def mesh(self):
        """The mesh as a :class:`trimesh.Trimesh` (built once; do not modify it)."""
        return self._get("mesh", lambda: trimesh.Trimesh(self.vertices, self.faces, process=False, validate=False))

    @property
    def bounds(self) -> np.ndarray:
        """(2, 3) lower and upper corners of the axis-aligned bounding box (m)."""
        return np.stack([self.vertices.min(0), self.vertices.max(0)])

    @property
    def extents(self) -> np.ndarray:
        """(3,) side lengths of the axis-aligned bounding box (m)."""
        b = self.bounds
        return b[1] - b[0]

    @property
    def is_watertight(self) -> bool:
        """True when every edge has exactly two faces (so volume and centre are exact)."""
        return bool(self._get("watertight", lambda: self.mesh.is_watertight and self.mesh.is_winding_consistent))

    @property
    def convex_hull(self):
        """Convex hull of the mesh (:class:`trimesh.Trimesh`, outward, watertight)."""
        return self._get("hull", lambda: self.mesh.convex_hull)

    def _mass(self) -> tuple[float, np.ndarray]:
        if self.is_watertight and self.mesh.volume > 0:
            return float(self.mesh.volume), np.asarray(self.mesh.center_mass, dtype=np.float64)
        # holes make the divergence theorem unreliable; the grid's inside/outside is robust
        return occupancy_mass_properties(self.sdf)

    @property
    def volume(self) -> float:
        """Enclosed volume (m^3): exact for watertight meshes, from the SDF grid otherwise."""
        return self._get("mass", self._mass)[0]

    @property
    def center_of_mass(self) -> np.ndarray:
        """(3,) centre of mass at uniform density (m); see :attr:`volume` for how it is found."""
        return self._get("mass", self._mass)[1].copy()

    # -- signed distance --------------------------------------------------------------------
    @property
    def sdf(self) -> SDFGrid:
        """The signed-distance grid (positive inside), built on first use or read from the cache."""
        return self._get("sdf", self._load_sdf)

    def _load_sdf(self) -> SDFGrid:
        key = (
            f"sdf-v{CACHE_VERSION}-{self.content_hash}-h{self.sdf_spacing:.6g}-m{self.sdf_margin:.6g}"
            f"-n{self.sdf_max_nodes_per_axis}"
        )

        def build() -> dict[str, np.ndarray]:
            grid = build_sdf_grid(
                [(self.vertices, self.faces)], self.sdf_spacing, self.sdf_margin, self.sdf_max_nodes_per_axis
            )
            return {**grid.to_arrays(), "content_hash": np.array(self.content_hash)}

        def check(arrays: dict[str, np.ndarray]) -> SDFGrid:
            _expect_hash(arrays, self.content_hash)
            grid = SDFGrid.from_arrays(arrays)
            lo, hi = self.bounds
            if np.any(grid.lower > lo - self.sdf_margin + 1e-9) or np.any(grid.upper < hi + self.sdf_margin - 1e-9):
                raise ValueError("cached grid does not cover the mesh")
            return grid

        return _cached(key, build, check)

    def signed_distance(self, points: torch.Tensor | np.ndarray, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
        """Signed distance ``d`` (...,) in metres, positive inside, and outward unit normal ``n``
        (..., 3) at ``points`` (..., 3) metres in the object frame.

        Differentiable w.r.t. ``points`` (both outputs). Inside the grid (3 cm beyond the bounding
        box by default) ``d`` is within ~0.1 mm of the exact distance for most points, worse (up
        to ~h/2) across thin walls and sharp edges; farther out it is a lower bound.
        ``backend``: "auto" (numba on CPU, ``grid_sample`` elsewhere), "numba" or "torch".
        """
        if not isinstance(points, torch.Tensor):
            points = torch.tensor(np.asarray(points, dtype=np.float64))  # a copy: inputs may be read-only
        if points.shape[-1] != 3:
            raise ValueError(f"points must have shape (..., 3), got {tuple(points.shape)}")
        return self.sdf.query(points, backend=backend)

    # -- surface samples --------------------------------------------------------------------
    def _load_surface(self) -> tuple[np.ndarray, np.ndarray]:
        count = self.DEFAULT_SURFACE_POINTS
        dense = count * self.SURFACE_OVERSAMPLING
        key = f"surface-v{CACHE_VERSION}-{self.content_hash}-{count}-{dense}"

        def build() -> dict[str, np.ndarray]:
            pts, normals = sample_surface(self.vertices, self.faces, dense, seed=0)
            # keep samples on the boundary of the solid: not on faces buried inside it (parts
            # that overlap without a union) where a step outward stays inside
            eps = 1e-4 * float(np.linalg.norm(self.extents))
            exposed = winding_number(self.vertices, self.faces, pts + eps * normals) < 0.5
            if exposed.sum() >= count:
                pts, normals = pts[exposed], normals[exposed]
            idx = farthest_point_sampling(pts, count)
            return {"points": pts[idx], "normals": normals[idx], "content_hash": np.array(self.content_hash)}

        def check(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            _expect_hash(arrays, self.content_hash)
            pts = np.asarray(arrays["points"], dtype=np.float64)
            normals = np.asarray(arrays["normals"], dtype=np.float64)
            if pts.shape != (count, 3) or normals.shape != (count, 3) or not np.all(np.isfinite(pts)):
                raise ValueError("cached surface points have the wrong shape")
            pts.flags.writeable = False
            normals.flags.writeable = False
            return pts, normals

        return _cached(key, build, check)

    @property
    def surface_points(self) -> np.ndarray:
        """(2500, 3) reference surface points (m), spread out by farthest-point sampling.

        Any prefix ``[:k]`` is itself a farthest-point subset, so fewer points are a slice away.
        Read-only (shared with the cache of this object).
        """
        return self._get("surface", self._load_surface)[0]

    @property
    def surface_normals(self) -> np.ndarray:
        """(2500, 3) outward unit normals at :attr:`surface_points`."""
        return self._get("surface", self._load_surface)[1]


# -- entry points -----------------------------------------------------------------------------

def make_object(spec: str, scale: float | None = None, **params: Any) -> ObjectModel:
    """A built-in object by name or spec string, e.g. ``make_object("box", extents=(0.05, 0.08, 0.1))``
    or ``make_object("sphere:radius=0.03")``; ``scale`` multiplies its size.

    Raises :class:`UnknownNameError` (listing the built-ins) for unknown names or parameters.
    """
    sdf_kwargs = {k: params.pop(k) for k in ("sdf_spacing", "sdf_margin", "sdf_max_nodes_per_axis") if k in params}
    vertices, faces, canonical = make_mesh(spec, **params)
    scale = 1.0 if scale is None else float(scale)
    if not (np.isfinite(scale) and scale > 0):
        raise MeshLoadError(f"built-in object {canonical!r}: scale must be positive and finite, got {scale!r}")
    name = canonical.split(":", 1)[0]
    v, f, repairs = prepare_mesh(vertices * scale, faces, f"builtin:{canonical}")
    source = f"builtin:{canonical}" + (f"@scale={scale:g}" if scale != 1.0 else "")
    return ObjectModel(v, f, name=name, source=source, scale=scale, repairs=repairs, **sdf_kwargs)


def _looks_like_path(spec: str) -> bool:
    return (
        os.sep in spec or "/" in spec or spec.startswith((".", "~"))
        or Path(spec).suffix.lower() in MESH_SUFFIXES
    )


def load_object(spec: str | os.PathLike | ObjectModel, scale: float | None = None, **kwargs: Any) -> ObjectModel:
    """An object from a mesh file, a YCB-style folder (``NAME/NAME.obj``), or a built-in spec.

    ``spec``: a path (obj, stl, ply, off, glb, gltf), a folder holding exactly one object, or a
    built-in name/spec string (``"mug"``, ``"sphere:radius=0.03"``). ``scale`` multiplies the
    coordinates to give metres (files: ``None`` guesses millimetres for meshes over 3 m, with a
    warning). ``kwargs`` go to :class:`ObjectModel` (``sdf_spacing``, ``sdf_margin``).

    Raises :class:`MeshLoadError` for missing or unusable files, :class:`UnknownNameError` for a
    name that is neither a built-in nor an existing file.
    """
    if isinstance(spec, ObjectModel):
        return spec
    text = os.fspath(spec)
    if not text.strip():  # Path("") would be the current folder
        raise UnknownNameError(f"empty object spec; built-in objects are: {', '.join(sorted(BUILTIN_OBJECTS))}")
    path = Path(text).expanduser()
    if not path.exists():
        if isinstance(spec, os.PathLike) or _looks_like_path(text):
            raise MeshLoadError(f"{path}: file not found")
        name = text.partition(":")[0].strip().lower()
        if name not in BUILTIN_OBJECTS:
            raise UnknownNameError(
                f"unknown object {text!r}: not an existing file nor a built-in object "
                f"({', '.join(sorted(BUILTIN_OBJECTS))})"
            )
        return make_object(text, scale=scale, **kwargs)
    if path.is_dir():
        # NAME/NAME.<ext> (YCB layout) first, else the folder's only mesh
        named = [path / f"{path.name}{s}" for s in MESH_SUFFIXES if (path / f"{path.name}{s}").is_file()]
        files = named[:1] or find_mesh_files(path)
        if len(files) != 1:
            raise MeshLoadError(
                f"{path}: folder holds {len(files)} objects; load_object needs exactly one (use load_objects)"
            )
        path = files[0]
    loaded = load_mesh(path, scale=scale)
    return ObjectModel(
        loaded.vertices,
        loaded.faces,
        name=path.stem,
        source=str(path.resolve()),
        scale=loaded.scale,
        convex_pieces=convex_pieces_beside(path),
        repairs=loaded.repairs,
        **kwargs,
    )


def load_objects(
    spec: str | os.PathLike | Iterable[str | os.PathLike],
    scale: float | None = None,
    skip_unloadable: bool = False,
    **kwargs: Any,
) -> list[ObjectModel]:
    """Several objects: every object in a folder, or one per item of a list of specs.

    A folder is expanded by :func:`~graspforge.objects.loading.find_mesh_files` (a YCB-style
    ``NAME/NAME.obj`` subfolder is one object; ``collisions/`` pieces are ignored). Anything else
    is one :func:`load_object` spec. With ``skip_unloadable``, files that raise
    :class:`MeshLoadError` are skipped with a warning instead of stopping the whole load.
    """
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    items: list[Any] = []
    for one in specs:
        path = Path(one).expanduser() if isinstance(one, (str, os.PathLike)) else None
        if path is not None and path.is_dir() and not any((path / f"{path.name}{x}").is_file() for x in MESH_SUFFIXES):
            found = list(find_mesh_files(path))
            if not found:
                raise MeshLoadError(f"{path}: folder holds no mesh files ({', '.join(MESH_SUFFIXES)})")
            items += found
        else:
            items.append(one)
    objects = []
    for item in items:
        try:
            objects.append(load_object(item, scale=scale, **kwargs))
        except MeshLoadError as exc:
            if not skip_unloadable:
                raise
            warnings.warn(f"skipping {item}: {exc}", UserWarning, stacklevel=2)
    return objects


def load_recorded_object(source: str, scale: float | None, content_hash: str | None = None, where: str = "grasp set") -> ObjectModel:
    """The object a grasp file was made for, from its recorded ``source`` (a mesh path or
    ``builtin:SPEC``) and ``scale`` (None: the spec's own); with ``content_hash``, checked to be the same mesh
    (:class:`ObjectMismatchError` naming both hashes otherwise)."""
    spec = source[len("builtin:"):] if source.startswith("builtin:") else source
    obj = load_object(spec, scale=scale)
    if content_hash and obj.content_hash != content_hash:
        raise ObjectMismatchError(f"{where}: object {obj.name!r} at {obj.source} is not the mesh the grasps were made for "
                            f"(content hash {obj.content_hash[:12]} != {content_hash[:12]})")
    return obj
