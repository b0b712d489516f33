"""Kinematic trees and batched, differentiable forward kinematics.

Why not pytorch_kinematics' chain: we need mimic / coupled joints (Ability, Panda, Robotiq 2F),
analytic contact Jacobians w.r.t. the *actuated* joints, a plain-data form that the built-in hands
store as JSON without any URDF, and FK batched over tree levels (one step per depth, not per link).
URDF parsing itself is pytorch_kinematics' (see :mod:`graspforge.hands.urdf`).

Link transform: ``T_link = T_parent @ origin @ motion(q_link) @ post`` where ``motion`` rotates about
(revolute) or slides along (prismatic) ``axis`` (joint frame), and ``q_link = multiplier * q[index] + offset``
for the actuated joint ``index`` that drives it (mimic joints share an index).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import HandLoadError
from ..geometry.rotations import quaternion_to_matrix, rot6d_to_matrix, transform_np

FIXED, REVOLUTE, PRISMATIC = 0, 1, 2
JOINT_TYPES = {"fixed": FIXED, "revolute": REVOLUTE, "continuous": REVOLUTE, "prismatic": PRISMATIC}
JOINT_TYPE_NAMES = {FIXED: "fixed", REVOLUTE: "revolute", PRISMATIC: "prismatic"}


@dataclass
class KinematicTree:
    """A hand's kinematics as plain arrays. Link 0 is the root; parents precede children.

    Per link l: ``parent[l]`` (-1 for the root), ``joint_names[l]`` / ``joint_type[l]`` of the joint
    from its parent, ``origin[l]`` and ``post[l]`` (4, 4), ``axis[l]`` (3,), and the coupling
    ``q_index[l]`` (-1: not moving), ``multiplier[l]``, ``offset[l]``.
    Actuated joints (D): ``actuated_joints``, ``lower``/``upper`` limits (rad or m).
    """

    link_names: list[str]
    parent: np.ndarray
    joint_names: list[str]
    joint_type: np.ndarray
    origin: np.ndarray
    post: np.ndarray
    axis: np.ndarray
    q_index: np.ndarray
    multiplier: np.ndarray
    offset: np.ndarray
    actuated_joints: list[str]
    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        L = len(self.link_names)
        self.parent = np.asarray(self.parent, np.int64).reshape(L)
        self.joint_type = np.asarray(self.joint_type, np.int64).reshape(L)
        self.origin = np.asarray(self.origin, np.float64).reshape(L, 4, 4)
        self.post = np.asarray(self.post, np.float64).reshape(L, 4, 4)
        self.axis = np.asarray(self.axis, np.float64).reshape(L, 3)
        self.q_index = np.asarray(self.q_index, np.int64).reshape(L)
        self.multiplier = np.asarray(self.multiplier, np.float64).reshape(L)
        self.offset = np.asarray(self.offset, np.float64).reshape(L)
        D = len(self.actuated_joints)
        self.lower = np.asarray(self.lower, np.float64).reshape(D)
        self.upper = np.asarray(self.upper, np.float64).reshape(D)
        self.validate()

    # -- checks and derived structure ---------------------------------------------------------
    def validate(self) -> None:
        L, D = len(self.link_names), len(self.actuated_joints)
        if L == 0:
            raise HandLoadError("kinematic tree has no links")
        if len(set(self.link_names)) != L:
            raise HandLoadError("kinematic tree has duplicate link names")
        if len(self.joint_names) != L:
            raise HandLoadError("kinematic tree: one joint name per link expected")
        if self.parent[0] != -1 or np.any(self.parent[1:] < 0) or np.any(self.parent[1:] >= np.arange(1, L)):
            raise HandLoadError("kinematic tree links must be ordered parents-first with a single root")
        if np.any((self.q_index < -1) | (self.q_index >= D)):
            raise HandLoadError("kinematic tree: joint coupling points at a missing actuated joint")
        for arr, name in ((self.origin, "origin"), (self.post, "post"), (self.axis, "axis"), (self.lower, "lower"), (self.upper, "upper")):
            if not np.all(np.isfinite(arr)):
                raise HandLoadError(f"kinematic tree: non-finite values in {name}")
        moving = self.q_index >= 0
        norms = np.linalg.norm(self.axis[moving], axis=1)
        if np.any(norms < 1e-9):
            bad = [self.joint_names[i] for i in np.flatnonzero(moving)[norms < 1e-9]]
            raise HandLoadError(f"joints with a zero axis: {bad}")
        if np.any(self.lower > self.upper):
            bad = [self.actuated_joints[i] for i in np.flatnonzero(self.lower > self.upper)]
            raise HandLoadError(f"joints whose lower limit exceeds the upper limit: {bad}")

    @property
    def num_links(self) -> int:
        return len(self.link_names)

    @property
    def dof(self) -> int:
        return len(self.actuated_joints)

    def link_index(self, name: str) -> int:
        try:
            return self.link_names.index(name)
        except ValueError:
            raise HandLoadError(f"no link named {name!r}; links are {self.link_names}") from None

    def actuated_joint_types(self) -> list[str]:
        """"revolute" or "prismatic" for each actuated joint."""
        out = ["revolute"] * self.dof
        for l in range(self.num_links):
            if self.q_index[l] >= 0 and self.joint_names[l] == self.actuated_joints[self.q_index[l]]:
                out[self.q_index[l]] = JOINT_TYPE_NAMES[int(self.joint_type[l])]
        return out

    def depth(self) -> np.ndarray:
        d = np.zeros(self.num_links, np.int64)
        for l in range(1, self.num_links):
            d[l] = d[self.parent[l]] + 1
        return d

    def ancestors(self, link: int) -> list[int]:
        """Links from ``link`` up to (excluding) the root, ``link`` first."""
        out = []
        while link > 0:
            out.append(link)
            link = int(self.parent[link])
        return out

    def coupling_matrix(self) -> np.ndarray:
        """(L, L, D): entry [l, i, j] = d q_i / d q_j (the multiplier) if joint i moves link l."""
        L, D = self.num_links, self.dof
        M = np.zeros((L, L, D))
        for l in range(L):
            for i in self.ancestors(l):
                if self.q_index[i] >= 0:
                    M[l, i, self.q_index[i]] += self.multiplier[i]
        return M

    def joint_values(self, q: np.ndarray) -> np.ndarray:
        """Per-link joint values (..., L) from actuated joint positions (..., D)."""
        q = np.asarray(q, np.float64)
        qp = np.concatenate([q, np.zeros(q.shape[:-1] + (1,))], -1)
        return qp[..., self.q_index] * self.multiplier + self.offset * (self.q_index >= 0)

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "link_names": list(self.link_names),
            "parent": self.parent.tolist(),
            "joint_names": list(self.joint_names),
            "joint_type": [JOINT_TYPE_NAMES[int(t)] for t in self.joint_type],
            "origin": self.origin.tolist(),
            "post": self.post.tolist(),
            "axis": self.axis.tolist(),
            "q_index": self.q_index.tolist(),
            "multiplier": self.multiplier.tolist(),
            "offset": self.offset.tolist(),
            "actuated_joints": list(self.actuated_joints),
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "KinematicTree":
        try:
            jt = [JOINT_TYPES[t] if isinstance(t, str) else int(t) for t in d["joint_type"]]
            return cls(
                link_names=[str(x) for x in d["link_names"]],
                parent=d["parent"],
                joint_names=[str(x) for x in d["joint_names"]],
                joint_type=jt,
                origin=d["origin"],
                post=d["post"],
                axis=d["axis"],
                q_index=d["q_index"],
                multiplier=d["multiplier"],
                offset=d["offset"],
                actuated_joints=[str(x) for x in d["actuated_joints"]],
                lower=d["lower"],
                upper=d["upper"],
            )
        except HandLoadError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise HandLoadError(f"malformed kinematic tree data: {e!r}") from e

    def forward_numpy(self, q: np.ndarray) -> np.ndarray:
        """Reference FK in float64 numpy, one configuration: (D,) -> (L, 4, 4) link poses in the root frame.

        Deliberately a plain per-link loop (an independent check of the batched torch code).
        """
        qv = self.joint_values(np.asarray(q, np.float64))
        T = np.zeros((self.num_links, 4, 4))
        T[0] = np.eye(4)
        for l in range(1, self.num_links):
            M = np.eye(4)
            if self.joint_type[l] == REVOLUTE:
                a = self.axis[l] / np.linalg.norm(self.axis[l])
                K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
                th = qv[l]
                M[:3, :3] = np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * K @ K
            elif self.joint_type[l] == PRISMATIC:
                M = transform_np(self.axis[l] / np.linalg.norm(self.axis[l]) * qv[l])
            T[l] = T[self.parent[l]] @ self.origin[l] @ M @ self.post[l]
        return T


def driver_links(tree: KinematicTree) -> dict[int, int]:
    """Actuated joint index -> the link whose joint it drives (where a simulator puts its servo):
    the link whose joint carries the actuated name, else (a coupled joint without a joint of its own
    name) its first follower."""
    driver = {}
    for l in range(tree.num_links):
        if tree.q_index[l] >= 0 and tree.joint_names[l] in tree.actuated_joints:
            driver[tree.actuated_joints.index(tree.joint_names[l])] = l
    for j in range(len(tree.actuated_joints)):
        if j not in driver:
            driver[j] = int(np.flatnonzero(tree.q_index == j)[0])
    return driver


def narrow_to_followers(lower: np.ndarray, upper: np.ndarray, followers) -> tuple[list[str], list[str]]:
    """Narrow driver ranges ``lower`` / ``upper`` (D,) in place so that each coupled follower stays
    in its own range. ``followers``: (follower name, driver index, driver name, multiplier, offset,
    follower lower, follower upper) with follower = multiplier * driver + offset. A simulator stops
    the follower at its limit and, through the coupling, the driver with it; synthesis must not plan
    past that. A follower that would leave no motion (the coupling contradicts its range) is left
    alone: a frozen finger is worse. Returns (narrowed, contradicting) as readable lines (the
    caller says what it does about a contradiction)."""
    narrowed, contradicting = [], []
    for name, i, driver, mm, oo, lo_f, hi_f in followers:
        if mm == 0 or not (np.isfinite(lo_f) and np.isfinite(hi_f)):
            continue
        a, b = sorted(((lo_f - oo) / mm, (hi_f - oo) / mm))
        lo, hi = max(lower[i], a), min(upper[i], b)
        if hi - lo < 1e-6:
            contradicting.append(f"joint {name!r} leaves its range for every value of its driver {driver!r} (all, or all but one)")
        elif lo > lower[i] + 1e-9 or hi < upper[i] - 1e-9:
            narrowed.append(f"{driver} [{lower[i]:.4g}, {upper[i]:.4g}] -> [{lo:.4g}, {hi:.4g}] (follower {name})")
            lower[i], upper[i] = lo, hi
    return narrowed, contradicting


@dataclass
class LinkPoses:
    """Batched FK result: world rotation ``rot`` (B, L, 3, 3) and position ``pos`` (B, L, 3) of every
    link, plus each link's joint frame origin ``joint_pos`` (B, L, 3) and world axis ``joint_axis``
    (B, L, 3) for Jacobians."""

    rot: torch.Tensor
    pos: torch.Tensor
    joint_pos: torch.Tensor
    joint_axis: torch.Tensor


class TorchKinematics:
    """Batched FK on one device/dtype, built from a :class:`KinematicTree`."""

    def __init__(self, tree: KinematicTree, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.tree = tree
        self.device = torch.device(device)
        self.dtype = dtype
        kw = dict(device=self.device, dtype=dtype)
        L = tree.num_links
        axis = tree.axis / np.maximum(np.linalg.norm(tree.axis, axis=1, keepdims=True), 1e-12)
        self.R0 = torch.as_tensor(tree.origin[:, :3, :3], **kw)
        self.t0 = torch.as_tensor(tree.origin[:, :3, 3], **kw)
        self.R1 = torch.as_tensor(tree.post[:, :3, :3], **kw)
        self.t1 = torch.as_tensor(tree.post[:, :3, 3], **kw)
        self.has_post = not np.allclose(tree.post, np.eye(4))
        self.axis = torch.as_tensor(axis, **kw)
        self.revolute = torch.as_tensor(tree.joint_type == REVOLUTE, device=self.device)
        self.prismatic = torch.as_tensor(tree.joint_type == PRISMATIC, **kw)
        qi = tree.q_index.copy()
        qi[qi < 0] = tree.dof  # points at an extra zero column
        self.q_index = torch.as_tensor(qi, device=self.device)
        self.multiplier = torch.as_tensor(np.where(tree.q_index >= 0, tree.multiplier, 0.0), **kw)
        self.offset = torch.as_tensor(np.where(tree.q_index >= 0, tree.offset, 0.0), **kw)
        # levels: links grouped by depth; parents of a level all sit in earlier levels. FK runs in
        # "level order" (root, then each level's links): a level's local transforms are then one
        # slice, its parents one index_select of the rows made so far, and the link order is restored
        # by one index_select at the end (GPU-friendly: a gather's backward is one index_add, not
        # the sort-based index_put of advanced indexing).
        depth = tree.depth()
        self.levels = []
        order = [0]
        for dlev in range(1, int(depth.max()) + 1 if L > 1 else 1):
            links = np.flatnonzero(depth == dlev)
            if len(links):
                self.levels.append(
                    (
                        torch.as_tensor(links, device=self.device),
                        torch.as_tensor(tree.parent[links], device=self.device),
                    )
                )
                order.extend(links.tolist())
        # row of link l in the concatenated per-level output
        inv = np.empty(L, np.int64)
        inv[np.asarray(order)] = np.arange(L)
        self.order_inv = torch.as_tensor(inv, device=self.device)
        o = np.asarray(order)
        self._order = torch.as_tensor(o, device=self.device)
        self._spans = []  # (start, end, parent rows) of each level in level order
        start = 1
        for links, parents in self.levels:
            n = len(links)
            self._spans.append((start, start + n, torch.as_tensor(inv[parents.cpu().numpy()], device=self.device)))
            start += n
        self._R0o, self._t0o = self.R0[self._order], self.t0[self._order]
        self._R1o, self._t1o = self.R1[self._order], self.t1[self._order]
        self._axis_o = self.axis[self._order]
        self._rev_o, self._pri_o = self.revolute[self._order], self.prismatic[self._order]
        self._qi_o, self._mul_o, self._off_o = self.q_index[self._order], self.multiplier[self._order], self.offset[self._order]
        self._jaxis_o = (self._R0o @ self._axis_o[..., None]).squeeze(-1)  # joint axis in the parent frame
        self.lower = torch.as_tensor(tree.lower, **kw)
        self.upper = torch.as_tensor(tree.upper, **kw)

    def _axis_angle(self, theta: torch.Tensor, axis: torch.Tensor | None = None) -> torch.Tensor:
        # Rodrigues for every link at once: theta (B, L) about axis (L, 3) -> (B, L, 3, 3)
        a = self.axis if axis is None else axis
        x, y, z = a[:, 0], a[:, 1], a[:, 2]
        c, s = torch.cos(theta), torch.sin(theta)
        C = 1 - c
        return torch.stack(
            [
                c + x * x * C, x * y * C - z * s, x * z * C + y * s,
                y * x * C + z * s, c + y * y * C, y * z * C - x * s,
                z * x * C - y * s, z * y * C + x * s, c + z * z * C,
            ],
            -1,
        ).reshape(*theta.shape, 3, 3)

    def link_joint_values(self, q: torch.Tensor) -> torch.Tensor:
        """(B, D) actuated joint positions -> (B, L) per-link joint values (mimic applied)."""
        qp = torch.cat([q, q.new_zeros(q.shape[0], 1)], 1)
        return qp[:, self.q_index] * self.multiplier + self.offset

    def forward(self, root_pos: torch.Tensor, root_rot: torch.Tensor, q: torch.Tensor) -> LinkPoses:
        """Link poses for root position (B, 3) m, root rotation (B, 3, 3) and joints q (B, D)."""
        qp = torch.cat([q, q.new_zeros(q.shape[0], 1)], 1)
        qv = qp.index_select(1, self._qi_o) * self._mul_o + self._off_o  # (B, L) joint values, level order
        Rj = self._axis_angle(torch.where(self._rev_o, qv, torch.zeros_like(qv)), self._axis_o)
        tj = (qv * self._pri_o)[..., None] * self._axis_o  # (B, L, 3)
        if self.has_post:
            Rloc = self._R0o @ Rj @ self._R1o
            tloc = (self._R0o @ ((Rj @ self._t1o[..., None]).squeeze(-1) + tj)[..., None]).squeeze(-1) + self._t0o
        else:
            Rloc = self._R0o @ Rj
            tloc = (self._R0o @ tj[..., None]).squeeze(-1) + self._t0o
        all_rot, all_pos = root_rot[:, None], root_pos[:, None]
        jpos = [root_pos[:, None]]
        jax = [torch.zeros_like(root_pos)[:, None]]
        # one split per array (its backward is one cat) instead of a slice per level
        sizes = [1] + [end - start for start, end, _ in self._spans]
        R_lev, t_lev = Rloc.split(sizes, 1)[1:], tloc.split(sizes, 1)[1:]
        for (start, end, prow), Rl, tl in zip(self._spans, R_lev, t_lev):
            Rp = all_rot.index_select(1, prow)  # parents' rows (B, n, 3, 3)
            tp = all_pos.index_select(1, prow)
            R = Rp @ Rl
            t = (Rp @ tl[..., None]).squeeze(-1) + tp
            jpos.append((Rp @ self._t0o[start:end, :, None]).squeeze(-1) + tp)
            jax.append((Rp @ self._jaxis_o[start:end, :, None]).squeeze(-1))
            all_rot = torch.cat([all_rot, R], 1)
            all_pos = torch.cat([all_pos, t], 1)
        inv = self.order_inv
        return LinkPoses(
            rot=all_rot.index_select(1, inv),
            pos=all_pos.index_select(1, inv),
            joint_pos=torch.cat(jpos, 1).index_select(1, inv),
            joint_axis=torch.cat(jax, 1).index_select(1, inv),
        )

    def forward_pose(self, pose: torch.Tensor) -> LinkPoses:
        """FK from a hand pose vector (B, 3 + 6 + D): root translation, 6D rotation, joints."""
        if pose.shape[-1] != 9 + self.tree.dof:
            raise ValueError(f"hand pose needs 9 + {self.tree.dof} numbers, got {pose.shape[-1]}")
        return self.forward(pose[:, :3], rot6d_to_matrix(pose[:, 3:9]), pose[:, 9:])


def link_world_pose(tree: KinematicTree, link: int, position: np.ndarray, quaternion: np.ndarray,
                    q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World position (N, 3) m and rotation (N, 3, 3) of link ``link`` for root positions (N, 3) m,
    root quaternions (N, 4) w-x-y-z and joints (N, D), in float64 (exports, model alignment)."""
    R = quaternion_to_matrix(torch.as_tensor(np.asarray(quaternion, np.float64)).reshape(-1, 4))
    lp = TorchKinematics(tree, dtype=torch.float64).forward(torch.as_tensor(np.asarray(position, np.float64)).reshape(-1, 3), R,
                                                            torch.as_tensor(np.asarray(q, np.float64)).reshape(len(R), -1))
    return lp.pos[:, link].numpy(), lp.rot[:, link].numpy()


def point_jacobian(
    kin: TorchKinematics, poses: LinkPoses, points: torch.Tensor, link_index: torch.Tensor
) -> torch.Tensor:
    """Analytic Jacobian d p / d q of world points fixed to links.

    ``points`` (B, K, 3) world positions, ``link_index`` (K,) or (B, K) the link each point rides on.
    Returns (B, K, 3, D): revolute joints contribute ``m * axis x (p - joint_origin)``, prismatic
    joints ``m * axis`` (m the mimic multiplier), summed over every joint between the link and the root.
    """
    tree = kin.tree
    key = ("coupling", str(kin.device), kin.dtype)
    cache = kin.__dict__.setdefault("_cache", {})
    if key not in cache:
        cache[key] = torch.as_tensor(tree.coupling_matrix(), device=kin.device, dtype=kin.dtype)  # (L, L, D)
    M = cache[key]
    B, K = points.shape[:2]
    if link_index.dim() == 1:
        link_index = link_index[None].expand(B, K)
    W = M[link_index]  # (B, K, L, D)
    rev = kin.revolute.to(points.dtype)
    lever = points[:, :, None, :] - poses.joint_pos[:, None]  # (B, K, L, 3)
    ax = poses.joint_axis[:, None].expand_as(lever)
    col = torch.cross(ax, lever, dim=-1) * rev[:, None] + ax * kin.prismatic[:, None]  # (B, K, L, 3)
    return torch.einsum("bkli,bkld->bkid", col, W)
