"""Contact heatmaps: how often each region of the hand's surface touches the object over a grasp
set, drawn on the hand in its open pose (the paper's power / precision / pinch pictures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

from ..evaluate.checks import check_hand
from ..hands.description import HandDescription
from ..hands.model import HandModel
from ..hands.structure import to_root
from ..io.grasp_set import GraspSet
from ..objects import ObjectModel
from .scene import HandDisplay, VizError
from .figure import pyplot, save_figure

#: a surface sample touches the object when it is closer than this to (or inside) the surface, m
CONTACT_DISTANCE = 0.003


def contact_frequency(desc: HandDescription, grasp_sets: list[tuple[GraspSet, ObjectModel]], distance: float = CONTACT_DISTANCE,
                      model: HandModel | None = None) -> tuple[np.ndarray, int]:
    """Per hand surface sample (S,) the fraction of grasps in which it lies within ``distance`` m
    of its object's surface (or inside it), over every grasp of every (grasp set, object) pair;
    and the number of grasps counted."""
    model = model or HandModel(desc, dtype=torch.float64)
    hits = np.zeros(len(desc.surface_points))
    n = 0
    for gs, obj in grasp_sets:
        check_hand(gs, desc, where=f"grasp set of {gs.object_name!r}")
        if not len(gs):
            continue
        with torch.no_grad():
            state = model.forward_kinematics(torch.as_tensor(gs.hand_poses(), dtype=torch.float64))
            pts = model.to_world(state, model.surface_points_local, model.surface_links)  # (N, S, 3), object frame
            d, _ = obj.signed_distance(pts)
        hits += (d.numpy() > -distance).sum(0)
        n += len(gs)
    if n == 0:
        raise VizError("no grasps to count contacts over")
    return hits / n, n


def _finger_direction(desc: HandDescription, pts: np.ndarray) -> np.ndarray:
    """Unit vector along the fingers (root frame): orthogonal to approach and up, pointing to the
    side where most of the hand's surface lies."""
    a, u = np.asarray(desc.approach_axis, np.float64), np.asarray(desc.up_axis, np.float64)
    f = np.cross(a, u)
    f /= np.linalg.norm(f)
    return f if float(np.mean(pts @ f)) >= 0 else -f


def render_contact_heatmap(desc: HandDescription, frequency: np.ndarray, path: str | Path, title: str = "",
                           display: HandDisplay | None = None, size: tuple[float, float] = (11.0, 5.5), dpi: int = 100) -> Path:
    """Write a PNG of the hand in its open pose with each surface sample coloured by ``frequency``
    (S,) in [0, 1]: seen from the palm side and from the side, fingers up."""
    plt = pyplot()
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    freq = np.asarray(frequency, np.float64)
    if freq.shape != (len(desc.surface_points),):
        raise VizError(f"frequency must have one value per surface sample ({len(desc.surface_points)}), got shape {freq.shape}")
    display = display or HandDisplay.from_description(desc, cell=0.004)
    q = desc.canonical_q
    V, F, _ = display.posed(q)
    T = desc.tree.forward_numpy(q)
    pts = to_root(T, desc.surface_links, desc.surface_points)
    # outward normal of each sample from the nearest display-mesh vertex: samples facing away
    # from the camera are hidden, as a renderer would
    normals = trimesh.Trimesh(V, F, process=False).vertex_normals[cKDTree(V).query(pts)[1]]
    approach = np.asarray(desc.approach_axis, np.float64)
    fingers = _finger_direction(desc, pts)
    vmax = max(1e-6, float(freq.max()))
    fig = plt.figure(figsize=size, dpi=dpi)
    for k, (name, toward) in enumerate((("palm side", approach), ("side", np.cross(fingers, approach)))):
        right = np.cross(fingers, toward)
        # camera frame -> matplotlib's (elev 0, azim -90) view: x right, z up, -y towards the viewer
        M = np.stack([right, -toward, fingers])
        Vc, pc = V @ M.T, pts @ M.T
        seen = normals @ toward > -0.1
        order = np.argsort(freq[seen])
        ax = fig.add_subplot(1, 2, k + 1, projection="3d")
        ax.add_collection3d(Poly3DCollection(Vc[F], facecolors=(0.8, 0.8, 0.82, 0.2), edgecolors="none"))
        sc = ax.scatter(*pc[seen][order].T, c=freq[seen][order], cmap="inferno", vmin=0.0, vmax=vmax, s=9, depthshade=False)
        lo, hi = Vc.min(0), Vc.max(0)
        centre, half = (lo + hi) / 2, float((hi - lo).max()) / 2
        for a, c in enumerate("xyz"):
            getattr(ax, f"set_{c}lim")(centre[a] - half, centre[a] + half)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=0.0, azim=-90.0)
        ax.set_axis_off()
        ax.set_title(name, fontsize=9)
    fig.colorbar(sc, ax=fig.axes, shrink=0.6, label="fraction of grasps in contact")
    fig.suptitle(title or f"{desc.name}: contact frequency", fontsize=10)
    return save_figure(fig, path)


def contact_heatmaps(desc: HandDescription, grasp_sets: list[tuple[GraspSet, ObjectModel]], out_dir: str | Path,
                     distance: float = CONTACT_DISTANCE) -> dict[str, Path]:
    """One heatmap PNG per grasp type found in ``grasp_sets``: ``OUT/HAND_contacts_TYPE.png``."""
    by_type: dict[str, list[tuple[GraspSet, ObjectModel]]] = {}
    for gs, obj in grasp_sets:
        by_type.setdefault(gs.grasp_type, []).append((gs, obj))
    model = HandModel(desc, dtype=torch.float64)
    display = HandDisplay.from_description(desc, cell=0.004)
    out = {}
    for gtype, sets in sorted(by_type.items()):
        freq, n = contact_frequency(desc, sets, distance, model)
        title = f"{desc.name}, {gtype}: contact frequency over {n} grasps on {len(sets)} object(s) (within {distance * 1000:.0f} mm)"
        out[gtype] = render_contact_heatmap(desc, freq, Path(out_dir) / f"{desc.name}_contacts_{gtype}.png", title, display)
    return out
