"""A hand's contact candidates, their normals and its collision geometry, drawn to a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..hands.description import HandDescription
from ..hands.structure import to_root
from .figure import pyplot, save_figure
from .scene import HandDisplay

#: (elevation, azimuth) in degrees of the views drawn side by side.
VIEWS = ((20.0, -60.0), (0.0, 0.0), (90.0, -90.0))
NORMAL_LENGTH = 0.01  # m


def hand_geometry_world(desc: HandDescription, q: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """At joint positions ``q`` (D,) (default: the canonical open pose), in the root frame (m):
    the collision triangles (F, 3, 3), candidate points and normals (C, 3), and the candidates'
    link indices (C,)."""
    q = desc.canonical_q if q is None else np.asarray(q, np.float64)
    V, F, _ = HandDisplay.from_description(desc, cell=0.0).posed(q)
    T = desc.tree.forward_numpy(q)
    L = desc.contact_links
    pts = to_root(T, L, desc.contact_points)
    nrm = np.einsum("cij,cj->ci", T[L, :3, :3], desc.contact_normals)
    return V[F], pts, nrm, L


def render_hand(desc: HandDescription, path: str | Path, q: np.ndarray | None = None, grasp_type: str | None = None,
                size: tuple[float, float] = (15.0, 5.0), dpi: int = 100) -> Path:
    """Write a PNG of the hand in pose ``q`` from three views: collision geometry (grey), contact
    candidates (red; those of ``grasp_type`` only, when given) with 1 cm normals, the approach
    axis (blue) and the up axis (green) from the root. Returns the path (written atomically)."""
    plt = pyplot()
    from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection


    tris, pts, nrm, _ = hand_geometry_world(desc, q)
    if grasp_type is not None:
        keep = desc.candidate_mask(grasp_type)
        pts, nrm = pts[keep], nrm[keep]
    allv = np.concatenate([tris.reshape(-1, 3), pts])
    lo, hi = allv.min(0), allv.max(0)
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2 + 0.01
    fig = plt.figure(figsize=size, dpi=dpi)
    for k, (elev, azim) in enumerate(VIEWS):
        ax = fig.add_subplot(1, len(VIEWS), k + 1, projection="3d")
        if len(tris):
            ax.add_collection3d(Poly3DCollection(tris, facecolor=(0.75, 0.75, 0.78, 0.35), edgecolor=(0.4, 0.4, 0.45, 0.15), linewidths=0.2))
        ax.scatter(*pts.T, s=6, c="red", depthshade=False)
        ax.add_collection3d(Line3DCollection(np.stack([pts, pts + NORMAL_LENGTH * nrm], 1), colors="darkred", linewidths=0.6))
        for axis, colour in ((desc.approach_axis, "blue"), (desc.up_axis, "green")):
            ax.quiver(0, 0, 0, *(np.asarray(axis) * 0.05), color=colour, linewidth=1.5)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=elev, azim=azim)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_zlabel("z")
    title = f"{desc.name}: {len(pts)} contact candidates{f' ({grasp_type})' if grasp_type else ''}; approach blue, up green"
    fig.suptitle(title)
    return save_figure(fig, path)
