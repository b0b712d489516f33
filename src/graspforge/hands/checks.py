"""Checks of a hand description against its source geometry (needs the URDF/MJCF and meshes)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import HandLoadError
from ..geometry.atlas import GridAtlas
from ..geometry.exact import exact_signed_distance_union
from ..geometry.sampling import sample_surface
from .description import HandDescription, _link_parts
from .loading import _parse

#: link-name fragments that mark finger links in the seven reference hands (others count as palm/base)
FINGER_WORDS = ("link_1", "link_2", "link_3", "proximal", "middle", "distal", "knuckle", "_L1", "_L2", "finger", "RIQ_link")


def source_link_parts(desc: HandDescription) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The exact collision meshes of each link (link frame), re-read from the description's source."""
    if desc.source is None:
        raise HandLoadError(f"hand {desc.name!r} has no source URDF/MJCF to check against (a built-in hand)")

    parsed = _parse(desc.source)
    out = {}
    for l, name in enumerate(desc.tree.link_names):
        if desc.link_grid[l] >= 0:
            out[name] = _link_parts(parsed.collisions.get(name) or parsed.visuals.get(name))
    return out


def collision_grid_errors(desc: HandDescription, samples_per_link: int = 2000, seed: int = 0) -> dict[str, np.ndarray]:
    """Per link, |grid distance - exact distance| (m) at points near the link: surface samples moved
    along the normal by U(-10 mm, +5 mm), kept where the exact distance is > -5 mm (inside, or within
    5 mm outside, where penetration depths are read)."""
    atlas = GridAtlas(desc.grids, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    out = {}
    for name, parts in source_link_parts(desc).items():
        g = int(desc.link_grid[desc.tree.link_names.index(name)])
        V = np.concatenate([p[0] for p in parts])
        offs = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
        F = np.concatenate([p[1] + o for p, o in zip(parts, offs)])
        pts, nrm = sample_surface(V, F, samples_per_link, seed=seed)
        q = pts + nrm * rng.uniform(-0.01, 0.005, (len(pts), 1))
        exact, _, _ = exact_signed_distance_union(parts, q)
        near = exact > -0.005
        got = atlas.query(torch.as_tensor(q[near]), torch.full((int(near.sum()),), g)).numpy()
        out[name] = np.abs(got - exact[near])
    return out


def summarize_errors(errors: dict[str, np.ndarray]) -> dict[str, float]:
    """Max and 95th percentile (mm) over finger links, palm/base links and all links."""
    def stats(arrs):
        if not arrs:
            return float("nan"), float("nan")
        a = np.concatenate(arrs)
        return float(a.max() * 1e3), float(np.percentile(a, 95) * 1e3)

    finger = [e for n, e in errors.items() if any(w in n for w in FINGER_WORDS)]
    palm = [e for n, e in errors.items() if not any(w in n for w in FINGER_WORDS)]
    fm, fp = stats(finger)
    pm, pp = stats(palm)
    am, ap = stats(list(errors.values()))
    return {"finger_max_mm": fm, "finger_p95_mm": fp, "palm_max_mm": pm, "palm_p95_mm": pp, "all_max_mm": am, "all_p95_mm": ap}
