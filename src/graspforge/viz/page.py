"""A self-contained interactive HTML page of grasps (plotly, its JavaScript inlined: works offline).

One page: the object, and per grasp the posed hand, its contact points and object normals; a
slider steps through the grasps and the title shows each one's energy terms and evaluation result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import atomic_write_text
from ..io.grasp_set import GraspSet
from ..objects import ObjectModel
from .scene import DISPLAY_CELL, HandDisplay, VizError, check_indices, decimate, grasp_hand_mesh

NORMAL_LENGTH = 0.01  # m, drawn contact normals
HAND_COLOUR = "#4a7ab5"
OBJECT_COLOUR = "#d9c9a3"
CONTACT_COLOUR = "#d62728"
#: pages hold at most this many grasps unless asked otherwise (each adds ~0.25 MB)
DEFAULT_MAX_GRASPS = 32


def grasp_summary(gs: GraspSet, i: int) -> str:
    """One line about grasp ``i``: energy, its terms, and evaluation results when present."""
    parts = [f"grasp {i}", f"E {gs.energy[i]:.3g}"]
    parts += [f"{k.removeprefix('energy_')} {v[i]:.3g}" for k, v in gs.terms.items()]
    for proto in ("strict", "reference"):
        key = f"eval_{proto}_success"
        if key in gs.extra:
            parts.append(f"{proto}: {'held' if bool(gs.extra[key][i]) else 'failed'}")
    if "eval_penetration_depth" in gs.extra:
        parts.append(f"D {1000 * float(gs.extra['eval_penetration_depth'][i]):.1f} mm")
    return ", ".join(parts)


def grasp_figure(gs: GraspSet, display: HandDisplay, obj: ObjectModel, indices: list[int] | None = None):
    """A plotly Figure of grasps ``indices`` (default all) of ``gs`` on ``obj``."""
    import plotly.graph_objects as go

    idx = check_indices(gs, indices)
    if not idx:
        raise VizError("the grasp set is empty: nothing to show")
    Vo, Fo = decimate(np.asarray(obj.mesh.vertices), np.asarray(obj.mesh.faces), DISPLAY_CELL / 2)
    Vo, Fo = Vo.astype(np.float32), Fo.astype(np.int32)  # plotly stores typed arrays: half the bytes of float64
    traces = [go.Mesh3d(x=Vo[:, 0], y=Vo[:, 1], z=Vo[:, 2], i=Fo[:, 0], j=Fo[:, 1], k=Fo[:, 2], color=OBJECT_COLOUR,
                        opacity=1.0, name=obj.name, flatshading=False, hoverinfo="name")]
    per = 3
    for n, i in enumerate(idx):
        V, F = grasp_hand_mesh(display, gs, i)
        V, F = V.astype(np.float32), F.astype(np.int32)
        p, nrm = np.asarray(gs.contact_points[i]), np.asarray(gs.contact_normals[i])
        seg = np.full((3 * len(p), 3), np.nan)  # nan rows break the line between segments
        seg[0::3], seg[1::3] = p, p + NORMAL_LENGTH * nrm
        vis = n == 0
        traces += [
            go.Mesh3d(x=V[:, 0], y=V[:, 1], z=V[:, 2], i=F[:, 0], j=F[:, 1], k=F[:, 2], color=HAND_COLOUR, opacity=0.85,
                      name=f"hand {i}", visible=vis, hoverinfo="name"),
            go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers", marker=dict(size=4, color=CONTACT_COLOUR),
                         name=f"contacts {i}", visible=vis, text=list(map(str, gs.contact_links[i])), hoverinfo="text"),
            go.Scatter3d(x=seg[:, 0], y=seg[:, 1], z=seg[:, 2], mode="lines", line=dict(color="#7f1010", width=4),
                         name=f"normals {i}", visible=vis, hoverinfo="skip"),
        ]
    titles = [f"{gs.object_name} / {gs.hand} / {gs.grasp_type}: {grasp_summary(gs, i)}" for i in idx]
    steps = []
    for n, i in enumerate(idx):
        visible = [True] + [False] * (per * len(idx))
        visible[1 + per * n: 1 + per * (n + 1)] = [True] * per
        steps.append(dict(method="update", label=str(i), args=[{"visible": visible}, {"title.text": titles[n]}]))
    fig = go.Figure(traces)
    fig.update_layout(
        title=dict(text=titles[0], font=dict(size=13)), showlegend=False, margin=dict(l=0, r=0, t=40, b=0),
        scene=dict(aspectmode="data", xaxis_title="x (m)", yaxis_title="y (m)", zaxis_title="z (m)"),
        sliders=[dict(active=0, currentvalue=dict(prefix="grasp "), steps=steps, pad=dict(t=10))] if len(idx) > 1 else [],
    )
    return fig


def write_grasp_page(gs: GraspSet, display: HandDisplay, obj: ObjectModel, path: str | Path, indices: list[int] | None = None,
                     max_grasps: int = DEFAULT_MAX_GRASPS) -> Path:
    """Write the page of :func:`grasp_figure` to ``path`` (atomically; plotly.js inlined)."""
    idx = check_indices(gs, indices)[:max_grasps] if indices is None else check_indices(gs, indices)
    fig = grasp_figure(gs, display, obj, idx)
    html = fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
    out = Path(path)
    atomic_write_text(out, html)
    return out
