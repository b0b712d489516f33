"""Reading object meshes from files and making them usable: units, cleaning, inside/outside.

A mesh file becomes ``(vertices (V, 3) float64 metres, faces (F, 3) int64)`` that a signed
distance can be built on. Scanned meshes are rarely watertight, so "usable" does not mean closed:
the sign of the distance comes from the generalised winding number (see
:mod:`graspforge.geometry.exact`), which tolerates holes. What it cannot fix is a mesh with no
clear inside, e.g. an open sheet; :func:`check_inside_outside` rejects those.

Every problem is raised as :class:`~graspforge.errors.MeshLoadError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..errors import MeshLoadError
from ..geometry.exact import winding_number
from ..geometry.sampling import sample_surface

#: File suffixes read as meshes (anything else is sniffed from its first bytes).
MESH_SUFFIXES = (".obj", ".stl", ".ply", ".off", ".glb", ".gltf")

#: Without an explicit scale, a mesh larger than this (metres) is taken to be in millimetres.
MILLIMETRE_GUESS_EXTENT = 3.0

#: Largest vertex coordinate accepted after scaling (metres); beyond it the units are surely wrong,
#: and float32 queries would lose sub-millimetre resolution.
MAX_COORDINATE = 100.0

#: Largest file read (bytes): a guard against feeding a random huge file to a parser.
MAX_FILE_BYTES = 1 << 30

#: Probe points whose winding number lies strictly between these count as neither in nor out.
AMBIGUOUS_WINDING = (0.2, 0.8)

#: A mesh is rejected when more than this fraction of its probe points is ambiguous. Measured:
#: closed meshes and all 25 YCB scans 0%; a sphere with a 20% cap cut off 3.5%, with 30% (a bowl)
#: 7%; a zero-thickness open cup 9%; an open box 16%; a disc 50%.
MAX_AMBIGUOUS_FRACTION = 0.05


@dataclass(frozen=True)
class LoadedMesh:
    """A cleaned mesh read from ``path``: ``vertices`` (V, 3) float64 metres, ``faces`` (F, 3) int64.

    ``scale`` is the factor applied to the file's coordinates; ``repairs`` lists what cleaning changed.
    """

    path: Path
    vertices: np.ndarray
    faces: np.ndarray
    scale: float
    repairs: tuple[str, ...] = ()


# -- reading ----------------------------------------------------------------------------------

def _sniff_file_type(head: bytes, size: int) -> str | None:
    """Guess a mesh format from a file's first bytes and size (for missing or wrong suffixes)."""
    if head.startswith(b"glTF"):
        return "glb"
    text = head.lstrip()
    if text.startswith(b"ply"):
        return "ply"
    if text[:3] in (b"OFF", b"COF", b"NOF"):
        return "off"
    if text.startswith(b"solid"):
        return "stl"
    if text.startswith(b"{"):
        return "gltf"
    for line in text.splitlines():
        line = line.strip()
        if line.startswith((b"v ", b"f ", b"vt ", b"vn ", b"o ", b"g ", b"mtllib")):
            return "obj"
        if line and not line.startswith(b"#"):
            break
    # binary STL has no magic number, only a length that must match its triangle count
    if size >= 84 and size == 84 + 50 * int.from_bytes(head[80:84], "little"):
        return "stl"
    return None


def _read_with_trimesh(path: Path, file_type: str) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        # parsers warn about textures, materials and odd lines; the checks below are what count
        warnings.simplefilter("ignore")
        geom = trimesh.load(str(path), file_type=file_type, force="mesh", process=False, allow_remote=False)
    if not isinstance(geom, trimesh.Trimesh):
        raise MeshLoadError(f"{path}: holds no triangles (read as {type(geom).__name__})")
    return np.asarray(geom.vertices), np.asarray(geom.faces)


def read_mesh_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Raw ``(vertices (V, 3), faces (F, 3))`` of a mesh file, as written (no scaling or cleaning).

    The type comes from the suffix; if that fails (or the suffix is unknown) the first bytes decide.
    Scenes (glb/gltf) are flattened with their transforms applied.
    """
    path = Path(path)
    if not path.exists():
        raise MeshLoadError(f"{path}: file not found")
    if not path.is_file():
        raise MeshLoadError(f"{path}: not a file")
    size = path.stat().st_size
    if size == 0:
        raise MeshLoadError(f"{path}: file is empty")
    if size > MAX_FILE_BYTES:
        raise MeshLoadError(f"{path}: file is {size} bytes, more than the {MAX_FILE_BYTES} accepted")
    with open(path, "rb") as fh:
        head = fh.read(4096)

    suffix = path.suffix.lower().lstrip(".")
    candidates = []
    if "." + suffix in MESH_SUFFIXES:
        candidates.append(suffix)
    sniffed = _sniff_file_type(head, size)
    if sniffed and sniffed not in candidates:
        candidates.append(sniffed)
    if not candidates:
        raise MeshLoadError(
            f"{path}: unsupported mesh format (suffix {path.suffix!r}, content not recognised); "
            f"use one of {', '.join(MESH_SUFFIXES)}"
        )
    problems = []
    for file_type in candidates:
        try:
            vertices, faces = _read_with_trimesh(path, file_type)
            if len(faces) and len(vertices):
                return vertices, faces
            problems.append(f"as {file_type}: no triangles")
        except MeshLoadError as exc:
            problems.append(f"as {file_type}: {str(exc).split(': ', 1)[-1]}")
        except Exception as exc:  # parsers raise anything on garbage (IndexError, struct.error, ...)
            problems.append(f"as {file_type}: {type(exc).__name__}: {exc}")
    raise MeshLoadError(f"{path}: cannot read mesh ({'; '.join(p[:200] for p in problems)})")


# -- checks and cleaning ----------------------------------------------------------------------

def validate_arrays(vertices: np.ndarray, faces: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Check raw arrays: (V, 3) finite vertices, (F, 3) in-range integer faces, F > 0.

    Returns them as float64 / int64 with unreferenced vertices kept (cleaning drops them).
    """
    try:
        v = np.asarray(vertices, dtype=np.float64)
        f = np.asarray(faces)
    except (TypeError, ValueError, OverflowError) as exc:
        raise MeshLoadError(f"{name}: vertices/faces are not numeric arrays ({exc})") from None
    if v.ndim != 2 or v.shape[1] != 3:
        raise MeshLoadError(f"{name}: vertices must be (V, 3), got shape {v.shape}")
    if f.size == 0 or len(v) == 0:
        raise MeshLoadError(f"{name}: mesh has no triangles")
    if f.ndim != 2 or f.shape[1] != 3:
        raise MeshLoadError(f"{name}: faces must be triangles (F, 3), got shape {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        if not (np.issubdtype(f.dtype, np.floating) and np.all(np.isfinite(f)) and np.all(f == np.round(f))):
            raise MeshLoadError(f"{name}: face indices are not integers")
    f = f.astype(np.int64)
    if f.min() < 0 or f.max() >= len(v):
        raise MeshLoadError(
            f"{name}: face indices out of range (min {f.min()}, max {f.max()}, {len(v)} vertices)"
        )
    used = np.unique(f)
    bad = ~np.all(np.isfinite(v[used]), axis=1)
    if bad.any():
        raise MeshLoadError(f"{name}: {int(bad.sum())} vertices have NaN or infinite coordinates (e.g. vertex {used[bad][0]})")
    return v, f


def guess_scale(vertices: np.ndarray, faces: np.ndarray, name: str) -> float:
    """1.0 for a mesh in metres, 0.001 (with a warning) for one whose largest extent exceeds 3 m."""
    used = vertices[np.unique(faces)]
    extent = float(np.max(used.max(0) - used.min(0)))
    if extent > MILLIMETRE_GUESS_EXTENT:
        warnings.warn(
            f"{name}: largest extent is {extent:.4g} units, too large for metres; assuming millimetres "
            f"(scale 0.001). Pass scale= to override.",
            UserWarning,
            stacklevel=3,
        )
        return 0.001
    return 1.0


def merge_vertices(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices at the same position (to 1e-10 of the mesh size) and drop unreferenced ones.

    Triangle soups (every face with its own vertices, as written by many exporters) become a
    connected mesh; texture seams and per-face normals no longer split it.
    """
    used = np.unique(faces)
    v = vertices[used]
    size = max(float(np.max(v.max(0) - v.min(0))), 1e-12)
    key = np.round((v - v.min(0)) / (size * 1e-10)).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    remap = np.empty(len(vertices), dtype=np.int64)
    remap[used] = inverse.reshape(-1)
    return v[first], remap[faces]


def signed_volumes(vertices: np.ndarray, faces: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Divergence-theorem volume (m^3) of each of ``count`` face groups (exact for closed groups)."""
    tri = vertices[faces]
    tri = tri - vertices.mean(0)  # smaller round-off, and open groups depend less on the origin
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0
    return np.bincount(labels, weights=vol, minlength=count)


def clean_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Make a validated mesh consistent: merged vertices, no degenerate or duplicate faces, outward.

    Steps, each recorded in the returned ``repairs`` when it changed something:

    1. merge coincident vertices (:func:`merge_vertices`);
    2. drop faces with a repeated vertex or zero area;
    3. drop duplicate faces. A face present with both orientations is a "double-sided" surface
       (a graphics trick): its winding numbers cancel to 0 everywhere, so one copy is kept and
       the orientation is decided in step 4;
    4. per connected part: make the winding consistent, then flip parts with a negative volume
       unless they sit inside another part (then they are a cavity).

    Returns ``(vertices (V, 3), faces (F, 3), repairs)``; faces may be empty if nothing remains.
    """
    repairs: list[str] = []
    n_in = len(vertices)
    v, f = merge_vertices(vertices, faces)
    if len(v) < n_in:
        repairs.append(f"merged {n_in - len(v)} duplicate or unused vertices")

    tri = v[f]
    area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2]) & (area2 > 0)
    if not keep.all():
        repairs.append(f"dropped {int((~keep).sum())} degenerate faces")
        f = f[keep]
    if len(f) == 0:
        return v, f, tuple(repairs)

    key = np.sort(f, axis=1)
    _, first, inverse, counts = np.unique(key, axis=0, return_index=True, return_inverse=True, return_counts=True)
    if len(first) < len(f):
        # a duplicate is "opposite" when its cyclic order differs from the kept copy's
        inverse = inverse.reshape(-1)
        kept = f[first][inverse]
        same = np.zeros(len(f), bool)
        for shift in range(3):
            same |= np.all(np.roll(f, shift, axis=1) == kept, axis=1)
        n_opposite = int((~same).sum())
        f = f[np.sort(first)]
        repairs.append(
            f"dropped {int((counts - 1).sum())} duplicate faces"
            + (f" ({n_opposite} double-sided)" if n_opposite else "")
        )
    v, f = v[np.unique(f)], np.unique(f, return_inverse=True)[1].reshape(-1, 3)

    f, flipped = _orient_parts(v, f)
    if flipped:
        repairs.append(flipped)
    v, f, merged = _union_overlapping_parts(v, f)
    if merged:
        repairs.append(merged)
    return v, f, tuple(repairs)


def _union_overlapping_parts(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Replace closed parts that overlap (a handle pushed into a cup, an assembly exported as
    one file) by their exact boolean union.

    Why: faces buried inside another part are still faces to a distance query, so the signed
    distance would drop to ~0 deep inside the solid, and surface samples would land inside it.
    Done only when every part is closed and outward (the union is then well defined); anything
    else is left as it is.
    """
    mesh = trimesh.Trimesh(v, f, process=False, validate=False)
    if mesh.body_count < 2 or mesh.body_count > 256:
        return v, f, ""
    # a face is buried when the point just outside its centre is inside the solid
    tri = v[f]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    eps = 1e-4 * float(np.linalg.norm(v.max(0) - v.min(0)))
    outside = tri.mean(1) + eps * cross / np.linalg.norm(cross, axis=1, keepdims=True)
    buried = winding_number(v, f, outside) > 0.5
    if not buried.any():
        return v, f, ""
    parts = mesh.split(only_watertight=False)
    if not all(p.is_watertight and p.is_winding_consistent and p.volume > 0 for p in parts):
        return v, f, ""
    try:
        union = trimesh.boolean.union(parts, engine="manifold")
    except Exception:  # manifold3d refuses some inputs; the mesh stays usable without the union
        return v, f, ""
    if not (union.is_watertight and union.volume > 0 and len(union.faces)):
        return v, f, ""
    note = f"merged {len(parts)} overlapping parts ({int(buried.sum())} buried faces) by boolean union"
    return np.asarray(union.vertices, np.float64), np.asarray(union.faces, np.int64), note


def _orient_parts(v: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, str]:
    mesh = trimesh.Trimesh(v, f, process=False, validate=False)
    note = []
    if not mesh.is_winding_consistent:
        trimesh.repair.fix_winding(mesh)
        note.append("made face winding consistent")
        f = np.asarray(mesh.faces, dtype=np.int64)
    adj = mesh.face_adjacency
    graph = coo_matrix((np.ones(len(adj)), (adj[:, 0], adj[:, 1])), shape=(len(f), len(f)))
    count, labels = connected_components(graph, directed=False)
    vol = signed_volumes(v, f, labels, count)
    negative = np.flatnonzero(vol < 0)
    if len(negative) == 0:
        return f, "; ".join(note)
    flip = negative
    if count > 1:
        # A part with negative volume is inside-out, unless it lines a cavity of another part
        # (a hollow ball's inner wall). Probe just behind up to 16 of its largest faces, along
        # their stored normals: inside an inside-out solid the winding number is -1, in a cavity 0.
        tri = v[f]
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        area2 = np.linalg.norm(cross, axis=1)
        is_negative = np.zeros(count, bool)
        is_negative[negative] = True
        order = np.lexsort((-area2, labels))  # by part, largest face first
        sorted_labels = labels[order]
        rank = np.arange(len(order)) - np.searchsorted(sorted_labels, sorted_labels, side="left")
        pf = order[(rank < 16) & is_negative[sorted_labels]]
        eps = 1e-4 * float(np.linalg.norm(v.max(0) - v.min(0)))
        probes = tri[pf].mean(1) + eps * cross[pf] / area2[pf, None]
        inverted = winding_number(v, f, probes) < -0.5
        votes = np.bincount(labels[pf], weights=inverted, minlength=count) / np.maximum(
            np.bincount(labels[pf], minlength=count), 1)
        flip = negative[votes[negative] > 0.5]
    if len(flip):
        rows = np.isin(labels, flip)
        f = f.copy()
        f[rows] = f[rows][:, ::-1]
        note.append(f"flipped {len(flip)} inside-out part{'s' if len(flip) > 1 else ''}")
    return f, "; ".join(note)


def inside_outside_probes(vertices: np.ndarray, faces: np.ndarray, seed: int = 0) -> np.ndarray:
    """(4000, 3) probe points: 1000 surface samples pushed 1% of the diagonal out and 1000 in
    along their normals, and 2000 uniform in the bounding box grown by 5%."""
    pts, normals = sample_surface(vertices, faces, 1000, seed=seed)
    lo, hi = vertices.min(0), vertices.max(0)
    diag = float(np.linalg.norm(hi - lo))
    off = 0.01 * diag
    rng = np.random.default_rng(seed + 1)
    pad = 0.05 * (hi - lo)
    box = rng.uniform(lo - pad, hi + pad, size=(2000, 3))
    return np.concatenate([pts + off * normals, pts - off * normals, box])


def check_inside_outside(vertices: np.ndarray, faces: np.ndarray, name: str) -> float:
    """Raise :class:`MeshLoadError` unless the mesh has a clear inside; return that inside's volume (m^3).

    Probes points around and in the mesh (:func:`inside_outside_probes`) and evaluates the
    winding number: rejected if more than 5% fall between 0.2 and 0.8 or below -0.2 (an open
    sheet, a mesh with a large hole), or if none is inside (a flat mesh). The returned volume is
    a rough estimate (2000 probes), for messages and sanity checks.
    """
    lo, hi = vertices.min(0), vertices.max(0)
    centred = vertices - (lo + hi) / 2
    sv = np.linalg.svd(centred, compute_uv=False)
    if len(vertices) < 4 or sv[-1] <= 1e-9 * sv[0]:
        raise MeshLoadError(f"{name}: mesh is flat (all vertices in one plane), so it encloses no volume")
    probes = inside_outside_probes(vertices, faces)
    w = winding_number(vertices, faces, probes)
    # w < -0.2 is as contradictory as 0.2 < w < 0.8: the back side of a sheet, an inside-out part
    ambiguous = float(np.mean((w < -AMBIGUOUS_WINDING[0]) | ((w > AMBIGUOUS_WINDING[0]) & (w < AMBIGUOUS_WINDING[1]))))
    if ambiguous > MAX_AMBIGUOUS_FRACTION:
        raise MeshLoadError(
            f"{name}: inside and outside are ambiguous: {ambiguous:.0%} of probe points around the mesh "
            f"have a winding number between {AMBIGUOUS_WINDING[0]} and {AMBIGUOUS_WINDING[1]} "
            "(an open surface or large holes?). Close the mesh or give it wall thickness."
        )
    if not np.any(w > 0.5):
        raise MeshLoadError(f"{name}: mesh encloses no volume (no probe point is inside; inside-out or flat?)")
    box_volume = float(np.prod(1.1 * (hi - lo)))
    return float(np.mean(w[-2000:] > 0.5)) * box_volume


# -- the whole pipeline -----------------------------------------------------------------------

def prepare_mesh(
    vertices: np.ndarray, faces: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Validate, clean and check arrays already in metres; ``(vertices, faces, repairs)``."""
    v, f = validate_arrays(vertices, faces, name)
    big = float(np.max(np.abs(v[np.unique(f)])))
    if big > MAX_COORDINATE:
        raise MeshLoadError(
            f"{name}: coordinates reach {big:.4g} m, beyond the {MAX_COORDINATE:g} m accepted for a "
            "graspable object; wrong units? pass scale="
        )
    v, f, repairs = clean_mesh(v, f)
    if len(f) == 0:
        raise MeshLoadError(f"{name}: no usable triangles (all degenerate)")
    check_inside_outside(v, f, name)
    return v, f, repairs


def load_mesh(path: str | os.PathLike, scale: float | None = None) -> LoadedMesh:
    """Read, scale, clean and check one mesh file (obj, stl, ply, off, glb, gltf).

    ``scale`` multiplies the file's coordinates to give metres; ``None`` means metres unless the
    mesh is larger than 3 m, in which case millimetres are assumed (with a ``UserWarning``).
    Raises :class:`MeshLoadError` naming the file and the problem.
    """
    path = Path(path)
    raw_v, raw_f = read_mesh_file(path)
    v, f = validate_arrays(raw_v, raw_f, str(path))
    if scale is None:
        scale = guess_scale(v, f, str(path))
    else:
        try:
            scale = float(scale)
        except (TypeError, ValueError):
            raise MeshLoadError(f"{path}: scale must be a number, got {scale!r}") from None
        if not (np.isfinite(scale) and scale > 0):
            raise MeshLoadError(f"{path}: scale must be positive and finite, got {scale!r}")
    with np.errstate(over="ignore", invalid="ignore"):
        v = v * scale
    v, f, repairs = prepare_mesh(v, f, str(path))
    return LoadedMesh(path=path, vertices=v, faces=f, scale=scale, repairs=repairs)


def find_mesh_files(folder: str | os.PathLike) -> list[Path]:
    """Mesh files of a folder of objects, one per object, sorted by path.

    A subfolder ``NAME/`` holding ``NAME.<ext>`` (the YCB layout, with convex pieces in
    ``NAME/collisions/``) counts as one object; otherwise every mesh file directly in a subfolder
    or in ``folder`` is one. Anything under a ``collisions`` folder is ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MeshLoadError(f"{folder}: not a folder")
    found: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in MESH_SUFFIXES:
            found.append(entry)
        elif entry.is_dir() and entry.name != "collisions":
            same_name = [entry / f"{entry.name}{s}" for s in MESH_SUFFIXES]
            named = [p for p in same_name if p.is_file()]
            if named:
                found.append(named[0])
            else:
                found.extend(
                    p for p in sorted(entry.iterdir())
                    if p.is_file() and p.suffix.lower() in MESH_SUFFIXES and not p.name.startswith(".")
                )
    return found


def convex_pieces_beside(path: str | os.PathLike) -> tuple[Path, ...]:
    """Shipped convex pieces of a mesh: the mesh files in a ``collisions/`` folder beside it."""
    folder = Path(path).parent / "collisions"
    if not folder.is_dir():
        return ()
    pieces = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES]
    # natural order: NAME_col_2 before NAME_col_10
    def key(p: Path):
        stem = p.stem
        digits = stem[len(stem.rstrip("0123456789")):]
        return (stem[: len(stem) - len(digits)], int(digits) if digits else -1, p.name)

    return tuple(sorted(pieces, key=key))
