"""PNG pictures of grasps without a display (matplotlib's Agg backend): several views per grasp."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.grasp_set import GraspSet
from ..objects import ObjectModel
from .page import grasp_summary
from .scene import HandDisplay, check_indices, decimate, grasp_hand_mesh
from .figure import pyplot, save_figure

#: (elevation, azimuth) in degrees of the views drawn side by side
GRASP_VIEWS = ((25.0, -60.0), (25.0, 120.0), (80.0, -90.0))
RENDER_CELL = 0.004  # m; coarser than the page: matplotlib sorts every triangle


def _shade(V: np.ndarray, F: np.ndarray, rgb, light=(0.3, -0.5, 0.8)) -> np.ndarray:
    """Per-face RGBA with Lambert shading, so shapes read without a real renderer."""
    n = np.cross(V[F[:, 1]] - V[F[:, 0]], V[F[:, 2]] - V[F[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True).clip(1e-12)
    L = np.asarray(light, np.float64) / np.linalg.norm(light)
    k = 0.45 + 0.55 * np.abs(n @ L)
    c = np.clip(np.asarray(rgb, np.float64)[None, :] * k[:, None], 0, 1)
    return np.concatenate([c, np.ones((len(F), 1))], 1)


def render_grasp(gs: GraspSet, display: HandDisplay, obj: ObjectModel, i: int, path: str | Path,
                 views=GRASP_VIEWS, size: tuple[float, float] = (15.0, 5.4), dpi: int = 90,
                 object_mesh: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Write a PNG of grasp ``i``: object (sand), hand (blue), contacts (red), one panel per view."""
    plt = pyplot()
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    (i,) = check_indices(gs, [i])
    Vo, Fo = object_mesh if object_mesh is not None else decimate(np.asarray(obj.mesh.vertices), np.asarray(obj.mesh.faces), RENDER_CELL)
    Vh, Fh = grasp_hand_mesh(display, gs, i)
    p = np.asarray(gs.contact_points[i])
    tris = np.concatenate([Vo[Fo], Vh[Fh]])
    colours = np.concatenate([_shade(Vo, Fo, (0.85, 0.76, 0.55)), _shade(Vh, Fh, (0.29, 0.48, 0.71))])
    allv = np.concatenate([Vo, Vh])
    lo, hi = allv.min(0), allv.max(0)
    centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2
    fig = plt.figure(figsize=size, dpi=dpi)
    for k, (elev, azim) in enumerate(views):
        ax = fig.add_subplot(1, len(views), k + 1, projection="3d")
        ax.add_collection3d(Poly3DCollection(tris, facecolors=colours, edgecolors="none"))
        ax.scatter(*p.T, s=14, c="red", depthshade=False)
        for a, c in enumerate("xyz"):
            getattr(ax, f"set_{c}lim")(centre[a] - half, centre[a] + half)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=elev, azim=azim)
        ax.set_axis_off()
    fig.suptitle(f"{gs.object_name} / {gs.hand} / {gs.grasp_type}\n{grasp_summary(gs, i)}", fontsize=9)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.88, wspace=0)
    return save_figure(fig, path)


def render_grasps(gs: GraspSet, display: HandDisplay, obj: ObjectModel, out_dir: str | Path, indices: list[int] | None = None,
                  prefix: str | None = None) -> list[Path]:
    """One PNG per grasp in ``indices`` (default all): ``OUT/PREFIX_0007.png``."""
    out_dir = Path(out_dir)
    stem = prefix or f"{gs.object_name}__{gs.hand}__{gs.grasp_type}"
    mesh = decimate(np.asarray(obj.mesh.vertices), np.asarray(obj.mesh.faces), RENDER_CELL)
    return [render_grasp(gs, display, obj, i, out_dir / f"{stem}_{i:04d}.png", object_mesh=mesh) for i in check_indices(gs, indices)]
