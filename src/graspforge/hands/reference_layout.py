"""Readers for the reference (GraspQP / DexGraspNet) hand-asset layout, so users of the reference
implementation can bring their hands unchanged:

- ``contact_points.json``: link -> ``[[mesh_path, n_points], ...]`` or explicit ``[x, y, z]`` points.
  Mesh paths are relative to the hand's mesh folder (the reference's ``mesh_path``).
- ``penetration_points.json``: link -> ``[[x, y, z, r], ...]`` self-collision spheres.
- ``eigengrasps.json``: grasp type -> {link: {"n_points": n}}.
All points are in the frame of the link's (last) geometry element, as the reference applies it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HandLoadError

#: reference grasp-type names -> ours
GRASP_TYPE_ALIASES = {"all": "full", "default": "full", "tips": "fingertip", "fingertips": "fingertip"}


@dataclass
class ContactSpec:
    """Where a link may take contacts: sampled from ``meshes`` (path, count) and/or explicit ``points``."""

    meshes: list[tuple[Path, int]] = field(default_factory=list)
    points: list[list[float]] = field(default_factory=list)


def _read_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HandLoadError(f"cannot read {path}: {e}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise HandLoadError(f"{path}: invalid JSON ({e})") from e


def _finite_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


def resolve_asset_path(rel: str, hand_dir: Path) -> Path | None:
    """Resolve a reference asset path: relative to any direct subfolder of the hand folder (the
    reference's mesh folder, e.g. ``meshes/`` or ``urdf_meshes/``), to the hand folder itself,
    or by file name below it."""
    rel = str(rel)
    bases = [d for d in sorted(hand_dir.iterdir()) if d.is_dir()] + [hand_dir]
    for b in bases:
        c = (b / rel).resolve()
        if c.is_file():
            return c
    name = Path(rel).name
    hits = sorted(p for p in hand_dir.rglob(name) if p.is_file())
    return hits[0] if hits else None


def read_contact_points(path: Path, hand_dir: Path) -> dict[str, ContactSpec]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise HandLoadError(f"{path}: expected an object mapping link names to contact specs")
    out: dict[str, ContactSpec] = {}
    for link, entries in data.items():
        spec = ContactSpec()
        if entries in (None, []):
            out[str(link)] = spec
            continue
        if not isinstance(entries, list):
            raise HandLoadError(f"{path}: link {link!r}: expected a list, got {type(entries).__name__}")
        for e in entries:
            if isinstance(e, list) and len(e) == 2 and isinstance(e[0], str):
                n = e[1]
                if not isinstance(n, int) or isinstance(n, bool) or n < 0 or n > 100000:
                    raise HandLoadError(f"{path}: link {link!r}: point count must be a non-negative integer, got {n!r}")
                p = resolve_asset_path(e[0], hand_dir)
                if p is None:
                    raise HandLoadError(f"{path}: link {link!r}: contact mesh {e[0]!r} not found under {hand_dir}")
                spec.meshes.append((p, n))
            elif isinstance(e, list) and len(e) == 3 and all(_finite_number(x) for x in e):
                spec.points.append([float(x) for x in e])
            else:
                raise HandLoadError(f"{path}: link {link!r}: unsupported contact entry {e!r} (expected [mesh, n] or [x, y, z])")
        out[str(link)] = spec
    return out


def read_penetration_points(path: Path) -> dict[str, np.ndarray]:
    """link -> (n, 4) spheres [x, y, z, r] (r defaults to 1 cm for 3-number entries, as in the reference)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise HandLoadError(f"{path}: expected an object mapping link names to sphere lists")
    out = {}
    for link, entries in data.items():
        if entries in (None, []):
            continue
        if not isinstance(entries, list):
            raise HandLoadError(f"{path}: link {link!r}: expected a list of spheres")
        rows = []
        for e in entries:
            if not (isinstance(e, list) and len(e) in (3, 4) and all(_finite_number(x) for x in e)):
                raise HandLoadError(f"{path}: link {link!r}: bad sphere {e!r} (expected [x, y, z] or [x, y, z, r])")
            r = float(e[3]) if len(e) == 4 else 0.01
            if r <= 0:
                raise HandLoadError(f"{path}: link {link!r}: sphere radius must be positive, got {r}")
            rows.append([float(e[0]), float(e[1]), float(e[2]), r])
        out[str(link)] = np.asarray(rows, np.float64)
    return out


def read_eigengrasps(path: Path) -> dict[str, dict[str, int]]:
    """grasp type -> {link: n_points}; reference names mapped to ours (tips -> fingertip, ...)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise HandLoadError(f"{path}: expected an object mapping grasp types to links")
    out: dict[str, dict[str, int]] = {}
    for gtype, links in data.items():
        if not isinstance(links, dict) or not links:
            raise HandLoadError(f"{path}: grasp type {gtype!r}: expected a non-empty object of links")
        spec = {}
        for link, v in links.items():
            n = v.get("n_points") if isinstance(v, dict) else v
            if not isinstance(n, int) or isinstance(n, bool) or n <= 0 or n > 100000:
                raise HandLoadError(f"{path}: grasp type {gtype!r}, link {link!r}: n_points must be a positive integer")
            spec[str(link)] = n
        out[GRASP_TYPE_ALIASES.get(str(gtype), str(gtype))] = spec
    return out
