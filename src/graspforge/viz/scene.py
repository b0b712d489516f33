"""Display geometry of grasps: the posed hand and the object as light triangle meshes (m, object frame)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import GraspforgeError
from ..geometry.rotations import quaternion_to_matrix
from ..hands.description import HandDescription
from ..hands.meshes import link_collision_meshes
from ..io.grasp_set import GraspSet

#: vertex-clustering cell for display meshes (m): 2 mm keeps fingers round at a tenth of the triangles
DISPLAY_CELL = 0.002


class VizError(GraspforgeError, ValueError):
    """A picture that cannot be made as asked (bad grasp index, nothing to draw)."""


def decimate(V: np.ndarray, F: np.ndarray, cell: float = DISPLAY_CELL) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: vertices in one ``cell``-sized voxel merge into their mean; faces that
    collapse are dropped. For pictures only (not watertight-preserving).

    Written here because trimesh's decimation needs ``fast_simplification``, whose binary wheel
    rejects numpy 2 arrays, and a picture needs nothing better than clustering.
    """
    V = np.asarray(V, np.float64)
    F = np.asarray(F, np.int64)
    if cell <= 0 or len(V) == 0:
        return V, F
    keys = np.floor(V / cell).astype(np.int64)
    _, cluster, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    cluster = cluster.reshape(-1)
    Vn = np.zeros((len(counts), 3))
    np.add.at(Vn, cluster, V)
    Vn /= counts[:, None]
    Fn = cluster[F]
    ok = (Fn[:, 0] != Fn[:, 1]) & (Fn[:, 1] != Fn[:, 2]) & (Fn[:, 0] != Fn[:, 2])
    Fn = Fn[ok]
    if len(Fn):
        Fn = np.unique(Fn, axis=0)
    return Vn, Fn


@dataclass
class HandDisplay:
    """A hand's display meshes per link (link frame), decimated once, posed many times."""

    description: HandDescription
    links: list[tuple[int, np.ndarray, np.ndarray]]  # (link index, V (n, 3), F (m, 3))

    @classmethod
    def from_description(cls, desc: HandDescription, cell: float = DISPLAY_CELL) -> "HandDisplay":
        idx = {n: i for i, n in enumerate(desc.tree.link_names)}
        links = []
        for name, parts in link_collision_meshes(desc).parts.items():
            for V, F in parts:
                v, f = decimate(V, F, cell)
                if len(f):
                    links.append((idx[name], v, f))
        return cls(desc, links)

    def posed(self, q: np.ndarray, root_position: np.ndarray | None = None, root_quaternion: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One mesh of the hand at joints ``q`` (D,), root placed at ``root_position`` (3,) /
        ``root_quaternion`` (4,) w-x-y-z (default: identity): V (n, 3) m, F (m, 3), and each
        vertex's link index (n,)."""
        T = self.description.tree.forward_numpy(np.asarray(q, np.float64))
        R0 = np.eye(3) if root_quaternion is None else quaternion_to_matrix(torch.as_tensor(root_quaternion, dtype=torch.float64)).numpy()
        t0 = np.zeros(3) if root_position is None else np.asarray(root_position, np.float64)
        Vs, Fs, Ls, off = [], [], [], 0
        for l, v, f in self.links:
            Vs.append((v @ T[l, :3, :3].T + T[l, :3, 3]) @ R0.T + t0)
            Fs.append(f + off)
            Ls.append(np.full(len(v), l))
            off += len(v)
        if not Vs:
            return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros(0, np.int64)
        return np.concatenate(Vs), np.concatenate(Fs), np.concatenate(Ls)


def grasp_hand_mesh(display: HandDisplay, gs: GraspSet, i: int, which: str = "grasp") -> tuple[np.ndarray, np.ndarray]:
    """Hand mesh (V, F) of grasp ``i`` in the object frame at its ``which`` joints:
    "grasp", "pregrasp" or "squeeze"."""
    q = {"grasp": gs.joint_positions, "pregrasp": gs.pregrasp_joint_positions, "squeeze": gs.squeeze_joint_positions}[which][i]
    V, F, _ = display.posed(q, gs.root_position[i], gs.root_quaternion[i])
    return V, F


def check_indices(gs: GraspSet, indices, where: str = "grasp set") -> list[int]:
    """Validated grasp indices (all when ``indices`` is None); negative ones count from the end."""
    n = len(gs)
    if indices is None:
        return list(range(n))
    out = []
    for i in indices:
        if not -n <= int(i) < n:
            raise VizError(f"{where}: grasp index {i} out of range (it holds {n} grasps)")
        out.append(int(i) % n)
    return out
