"""Geometric grasp metrics on the *exact* meshes (not the grids the energy uses).

- contact distance: mean over contacts of |d| at the hand contact points, exact object mesh;
- object-in-hand penetration: deepest object surface sample inside the posed exact hand link meshes;
- hand-in-object penetration: deepest hand surface sample inside the exact object mesh;
- self-overlap: deepest surface sample of one link inside another link's exact mesh (pairs a
  simulator would collide: not rigidly attached, not parent/child, not touching in the open pose).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..geometry.exact import PreparedMesh, exact_signed_distance
from ..geometry.sampling import sample_surface
from ..hands.meshes import LinkMeshes, link_collision_meshes
from ..hands.description import HandDescription
from ..hands.model import HandModel
from ..io.grasp_set import GraspSet
from ..objects import ObjectModel


@dataclass
class ExactHandMeshes:
    """A hand description with its exact link meshes (link frame) and surface samples."""

    description: HandDescription
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]]
    samples: dict[str, np.ndarray]
    origin: str = "source"  # "source" meshes, or "grid" hulls for a built-in hand (hands.meshes)

    @classmethod
    def from_description(cls, desc: HandDescription, samples_per_link: int = 400, seed: int = 0,
                         meshes: LinkMeshes | None = None) -> "ExactHandMeshes":
        """``meshes``: the hand's :func:`link_collision_meshes` when already at hand (read otherwise)."""
        meshes = meshes or link_collision_meshes(desc)
        parts = meshes.parts
        samples = {}
        for name, ps in parts.items():
            V = np.concatenate([p[0] for p in ps])
            offs = np.cumsum([0] + [len(p[0]) for p in ps[:-1]])
            F = np.concatenate([p[1] + o for p, o in zip(ps, offs)])
            samples[name] = sample_surface(V, F, samples_per_link, seed=seed)[0]
        return cls(desc, parts, samples, meshes.origin)


def exact_grasp_metrics(grasps: GraspSet, hand: ExactHandMeshes, obj: ObjectModel, object_samples: int = 2500) -> dict[str, np.ndarray]:
    """Per-grasp exact metrics (N,) in metres: ``contact_distance``, ``penetration_depth`` (object in
    hand), ``hand_in_object_depth``, ``self_penetration_depth``.

    Queries run in each link's own frame (points are moved, meshes are not), so every link mesh is
    prepared once for all grasps.
    """
    desc = hand.description
    if grasps.joint_names != desc.joint_names:
        raise ValueError(f"grasp set joints {grasps.joint_names[:3]}... do not match hand {desc.name!r}")
    model = HandModel(desc, dtype=torch.float64)
    poses = torch.as_tensor(grasps.hand_poses(), dtype=torch.float64)
    with torch.no_grad():
        st = model.forward_kinematics(poses)
    R, t = st.links.rot.numpy(), st.links.pos.numpy()
    names = desc.tree.link_names
    V_obj, F_obj = np.asarray(obj.mesh.vertices), np.asarray(obj.mesh.faces)
    obj_mesh = PreparedMesh(V_obj, F_obj)
    obj_pts = np.asarray(obj.surface_points)[:object_samples]
    links = {n: names.index(n) for n in hand.parts}
    prepared = {n: [PreparedMesh(v, f) for v, f in ps] for n, ps in hand.parts.items()}

    def depth_in_link(points_world: np.ndarray, i: int, n: str) -> np.ndarray:
        l = links[n]
        local = (points_world - t[i, l]) @ R[i, l]  # world -> link frame (R orthonormal)
        return np.max([m.depth(local) for m in prepared[n]], axis=0)

    # pairs a simulator would collide: the model's self-collision filter, on exact meshes
    # (link a of each item's sample, link b): the pairs of the model's self-collision items
    item_a, item_b = model.self_points_link[model.self_pair_point].tolist(), model.self_pair_link.tolist()
    pair_links = sorted(set(zip(item_a, item_b)))
    N = len(grasps)
    out = {k: np.zeros(N) for k in ("contact_distance", "penetration_depth", "hand_in_object_depth", "self_penetration_depth")}
    d_contacts, _, _ = exact_signed_distance(V_obj, F_obj, grasps.contact_points.reshape(-1, 3))
    out["contact_distance"] = np.abs(d_contacts.reshape(N, -1)).mean(1)
    for i in range(N):
        out["penetration_depth"][i] = max(float(depth_in_link(obj_pts, i, n).max()) for n in hand.parts)
        hand_pts = np.concatenate([s @ R[i, links[n]].T + t[i, links[n]] for n, s in hand.samples.items()])
        out["hand_in_object_depth"][i] = float(obj_mesh.depth(hand_pts).max())
        worst = 0.0
        for a, b in pair_links:
            na, nb = names[a], names[b]
            if na not in hand.samples or nb not in prepared:
                continue
            pa = hand.samples[na] @ R[i, a].T + t[i, a]
            worst = max(worst, float(depth_in_link(pa, i, nb).max()))
        out["self_penetration_depth"][i] = worst
    return out
