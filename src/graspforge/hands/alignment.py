"""The same hand in another project's model: frame transform and joint correspondence, found by
forward kinematics of both, never typed in.

Other benchmarks ship their own model of a hand (DexGraspBench's MJCF of the Allegro hand comes from
MuJoCo Menagerie; graspforge's built-in Allegro from GraspQP's URDF). The two place their root frames
differently and name and order their joints differently. Given the other model's MJCF,
:func:`align_to_mjcf` finds, from the joint anchors and axes of both at the zero pose,

- the rigid transform from the other model's frame (the MJCF world frame, which a free joint on the
  hand moves) to graspforge's root link, and
- which actuated joint of ours drives which joint of theirs, and with which sign,

When ours has more joints, all nearer the root (the Shadow hand's two wrist joints, which
DexGraspBench's model lacks), their frame is attached to the link below those joints (the palm)
and the extra joints are folded into the root pose of each target (:meth:`HandAlignment.root_pose`
with the joints),

and checks the result at random poses: every joint anchor must agree within ``tolerance``, else the
models are not the same hand and the alignment is refused with the error it found.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import least_squares, linear_sum_assignment
from scipy.spatial.transform import Rotation

from ..errors import HandLoadError
from .description import HandDescription
from .kinematics import TorchKinematics, link_world_pose
from .mjcf import compile_without_missing_meshes

#: anchors must agree within this (m) after alignment, at the zero pose and at random poses
TOLERANCE = 0.003


@dataclass
class HandAlignment:
    """Our hand expressed in another model (see module docstring).

    ``rotation`` (3, 3) and ``translation`` (3,): their frame in our root frame (p_ours = R p_theirs + t).
    ``joint_names`` (their actuated joints, their order); ``source`` (D_theirs,) our joint index
    driving each; ``sign`` (D_theirs,) +-1; ``lower`` / ``upper`` their joint ranges (rad or m);
    ``error`` the largest anchor mismatch (m) seen in the checks. ``frame_link``: the index of our
    link their frame is attached to (0, our root, unless ours has extra joints above theirs, which
    ``root_pose`` then folds in; ``tree`` is our kinematic tree for that).
    """

    model: str
    joint_names: list[str]
    source: np.ndarray
    sign: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    error: float
    frame_link: int = 0
    frame_name: str = ""
    tree: object = field(default=None, repr=False)

    def joints(self, q: np.ndarray) -> np.ndarray:
        """Their joint vector (..., D_theirs) from ours (..., D)."""
        return np.asarray(q)[..., self.source] * self.sign

    def root_pose(self, position: np.ndarray, quaternion: np.ndarray, joints: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Their frame's pose (N, 3), (N, 4) w-x-y-z from our root link's pose (N, 3), (N, 4) (same
        world) and, when their frame hangs below joints they lack (``frame_link`` > 0), our joints
        (N, D) of the same target."""
        R_ours = Rotation.from_quat(np.asarray(quaternion)[:, [1, 2, 3, 0]])
        position = np.asarray(position, np.float64)
        if self.frame_link:
            if joints is None:
                raise ValueError(f"{self.model}: its frame is our link {self.frame_name!r}, below joints it lacks: give the joints")
            position, R_link = link_world_pose(self.tree, self.frame_link, position, quaternion, joints)
            R_ours = Rotation.from_matrix(R_link)
        R_theirs = R_ours * Rotation.from_matrix(self.rotation)
        pos = position + R_ours.apply(self.translation)
        q = R_theirs.as_quat()[:, [3, 0, 1, 2]]
        return pos, q * np.where(q[:, :1] < 0, -1.0, 1.0)

    def outside_range(self, q_theirs: np.ndarray, slack: float = 1e-6) -> np.ndarray:
        """(N,) bool: rows of their joint vectors (N, D_theirs) with a joint outside its range."""
        q = np.asarray(q_theirs)
        return np.any((q < self.lower - slack) | (q > self.upper + slack), axis=-1)


def _theirs_at(model, q: np.ndarray | None = None):
    """Anchors (J, 3), axes (J, 3) of the hinge/slide joints of ``model`` at joint vector ``q``
    (their qpos order for those joints; zero when None), in the model's world frame."""
    import mujoco

    data = mujoco.MjData(model)
    kinds = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    jids = [j for j in range(model.njnt) if int(model.jnt_type[j]) in kinds]
    if q is not None:
        for k, j in enumerate(jids):
            data.qpos[model.jnt_qposadr[j]] = q[k]
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)
    return np.array(data.xanchor[jids]), np.array(data.xaxis[jids]), jids


def mjcf_body_pose(mjcf: str | Path, body: str) -> tuple[np.ndarray, np.ndarray]:
    """Position (3,) m and rotation (3, 3) of ``body`` in the world frame of the MJCF (the frame
    :class:`HandAlignment` maps to), at zero joints. graspforge's import of that file poses the hand
    by its root body instead; this is the link between the two."""
    import mujoco

    model = compile_without_missing_meshes(mjcf)
    bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
    if bid < 0:
        raise HandLoadError(f"{mjcf}: no body {body!r}")
    data = mujoco.MjData(model)
    data.qpos[:] = 0.0
    mujoco.mj_kinematics(model, data)
    return np.array(data.xpos[bid]), np.array(data.xmat[bid]).reshape(3, 3)


def _ours_at(desc: HandDescription, q: np.ndarray, frame_link: int = 0):
    """Anchors (D, 3) and axes (D, 3) of our actuated joints at ``q`` (D,) (the first link each joint
    moves), in the frame of our link ``frame_link`` (0: the root)."""
    tree = desc.tree
    kin = TorchKinematics(tree, dtype=torch.float64)
    lp = kin.forward(torch.zeros(1, 3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)[None], torch.as_tensor(q, dtype=torch.float64)[None])
    first = [int(np.flatnonzero((tree.q_index == j) & (tree.multiplier != 0))[0]) for j in range(tree.dof)]
    a, u = lp.joint_pos[0, first].numpy(), lp.joint_axis[0, first].numpy()
    R, t = lp.rot[0, frame_link].numpy(), lp.pos[0, frame_link].numpy()
    return (a - t) @ R, u @ R


def _frame_link(desc: HandDescription, n_theirs: int) -> tuple[int, np.ndarray]:
    """Our link their frame attaches to, and our joints (indices) below it, when their model has
    ``n_theirs`` joints: the link nearest the root below which exactly ``n_theirs`` of our joints
    move, every other joint lying between it and the root. (0, all joints) when the counts match."""
    tree = desc.tree
    moving = [int(tree.q_index[l]) if tree.q_index[l] >= 0 and tree.multiplier[l] != 0 else -1 for l in range(tree.num_links)]
    if n_theirs == tree.dof:
        return 0, np.arange(tree.dof)
    for l in range(1, tree.num_links):
        path, p = set(), l
        while p > 0:  # joints from the root down to l, l's own included
            if moving[p] >= 0:
                path.add(moving[p])
            p = int(tree.parent[p])
        below = set()
        for c in range(l + 1, tree.num_links):
            a = c
            while a > l:
                a = int(tree.parent[a])
            if a == l and moving[c] >= 0:
                below.add(moving[c])
        if len(below) == n_theirs and not (below & path) and len(below | path) == tree.dof:
            return l, np.array(sorted(below))
    raise HandLoadError(f"{desc.name!r} has {tree.dof} joints; no link of it has {n_theirs} below it and the rest above")


def _kabsch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R, t minimising |R a + t - b| over matched rows."""
    ca, cb = a.mean(0), b.mean(0)
    U, _, Vt = np.linalg.svd((a - ca).T @ (b - cb))
    d = np.sign(np.linalg.det(Vt.T @ U.T))
    R = Vt.T @ np.diag([1.0, 1.0, d]) @ U.T
    return R, cb - R @ ca


#: metres of matching cost per unit of axis misalignment (1 - |cos|)
_AXIS_WEIGHT = 0.05
#: lever (m) of the points placed along matched axes so that the fit aligns the axes too
_AXIS_LEVER = 0.02


def _line_costs(a: np.ndarray, b: np.ndarray, v: np.ndarray, R: np.ndarray, t: np.ndarray, u: np.ndarray | None = None):
    """Distance (K, D) from our anchors a (D, 3) to their joint lines (anchor b, axis v, (K, 3) each,
    their frame) mapped by (R, t), and the points of their lines nearest each of ours, in their
    frame, (K, D, 3). With our axes ``u`` (D, 3), the matching cost adds an axis-misalignment term."""
    a_in_theirs = (a - t) @ R  # R^T (a - t)
    s = np.einsum("kdi,ki->kd", a_in_theirs[None] - b[:, None], v)
    slid = b[:, None] + s[..., None] * v[:, None]
    dist = np.linalg.norm(slid - a_in_theirs[None], axis=-1)
    if u is not None:
        dist = dist + _AXIS_WEIGHT * (1 - np.abs((v @ R.T) @ u.T))
    return dist, slid


#: weight of the plain anchor-to-anchor distance in the matching only: it breaks ties between joints
#: whose lines coincide (the Shadow's first- and ring-finger flexion axes are one line at zero pose)
_TIE_WEIGHT = 1e-3


def _match(a: np.ndarray, u: np.ndarray, b: np.ndarray, v: np.ndarray, R: np.ndarray, t: np.ndarray):
    """Optimal joint correspondence (rows: theirs, cols: ours) under the line costs, ties broken by
    anchor distance; also returns the line costs (K, D) and slid points (K, D, 3)."""
    cost, slid = _line_costs(a, b, v, R, t, u)
    near = np.linalg.norm(((a - t) @ R)[None] - b[:, None], axis=-1)
    rows, cols = linear_sum_assignment(cost + _TIE_WEIGHT * near)
    return rows, cols, cost, slid


def _fit(a, u, slid, v, rows, cols, R):
    """Kabsch on matched anchors plus points a lever along each matched pair of axes."""
    sgn = np.sign(np.einsum("ki,ki->k", v[rows] @ R.T, u[cols]))
    sgn[sgn == 0] = 1
    src = np.concatenate([slid[rows, cols], slid[rows, cols] + _AXIS_LEVER * v[rows] * sgn[:, None]])
    dst = np.concatenate([a[cols], a[cols] + _AXIS_LEVER * u[cols]])
    return _kabsch(src, dst)


def _refine(a, u, b, v, rows, cols, R, t):
    """Least-squares polish of (R, t) for a fixed correspondence: each of our anchors on its matched
    line, each matched axis parallel (ICP with lines converges slowly along them)."""
    sgn = np.sign(np.einsum("ki,ki->k", v[rows] @ R.T, u[cols]))
    sgn[sgn == 0] = 1

    def residuals(x):
        Rx = Rotation.from_rotvec(x[:3]).as_matrix() @ R
        tx = t + x[3:]
        _, slid = _line_costs(a[cols], b[rows], v[rows], Rx, tx)
        k = np.arange(len(rows))
        off = slid[k, k] @ Rx.T + tx - a[cols]  # our anchor to the nearest point of its line
        ax = _AXIS_LEVER * ((v[rows] * sgn[:, None]) @ Rx.T - u[cols])
        return np.concatenate([off.ravel(), ax.ravel()])

    sol = least_squares(residuals, np.zeros(6), xtol=1e-15, ftol=1e-15, gtol=1e-15)
    return Rotation.from_rotvec(sol.x[:3]).as_matrix() @ R, t + sol.x[3:]


def _rotations24() -> list[np.ndarray]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            M = np.zeros((3, 3))
            for i, (p, s) in enumerate(zip(perm, signs)):
                M[i, p] = s
            if np.linalg.det(M) > 0:
                out.append(M)
    return out


def align_to_mjcf(desc: HandDescription, mjcf: str | Path, tolerance: float = TOLERANCE, seed: int = 0) -> HandAlignment:
    """Align ``desc`` to the hand in the MJCF file ``mjcf`` (see module docstring).

    Raises :class:`HandLoadError` when the models do not have the same number of joints, when no
    rigid transform and joint correspondence bring the anchors within ``tolerance``, or when the
    correspondence fails at random poses (different zero positions or couplings).
    """
    path = Path(mjcf)
    if not path.is_file():
        raise HandLoadError(f"MJCF file not found: {path}")
    model = compile_without_missing_meshes(path)
    b0, v0, jids = _theirs_at(model)
    if len(jids) > desc.dof:
        raise HandLoadError(f"{path}: {len(jids)} hinge/slide joints, {desc.name!r} has {desc.dof}: not the same hand")
    try:
        frame, subset = _frame_link(desc, len(jids))
    except HandLoadError as e:
        raise HandLoadError(f"{path}: {len(jids)} hinge/slide joints: {e}: not the same hand") from e
    a0, u0 = (x[subset] for x in _ours_at(desc, np.zeros(desc.dof), frame))
    best = None
    # A revolute joint's anchor may sit anywhere on its axis (models place them differently), so the
    # joints are matched as lines: point-to-line ICP from the 24 axis-aligned orientations, with
    # optimal matching. Their anchors slide along their axes to the points nearest ours.
    for R in _rotations24():
        t = a0.mean(0) - R @ b0.mean(0)
        for _ in range(30):
            rows, cols, cost, slid = _match(a0, u0, b0, v0, R, t)
            R_new, t_new = _fit(a0, u0, slid, v0, rows, cols, R)
            if np.allclose(R_new, R, atol=1e-10) and np.allclose(t_new, t, atol=1e-12):
                break
            R, t = R_new, t_new
        rows, cols, cost, _ = _match(a0, u0, b0, v0, R, t)
        err = float(cost[rows, cols].max())
        if best is None or err < best[0]:
            best = (err, R, t, cols)
    err, R, t, cols = best
    R, t = _refine(a0, u0, b0, v0, np.arange(len(cols)), cols, R, t)
    cost, _ = _line_costs(a0, b0, v0, R, t, u0)
    err = float(cost[np.arange(len(cols)), cols].max())
    if err > tolerance:
        raise HandLoadError(f"{path}: no rigid transform brings its joint axes onto {desc.name!r}'s (best mismatch {err * 1000:.1f} mm): "
                            "not the same hand, or different zero poses")
    local = np.asarray(cols, np.int64)  # their joint k is driven by our joint subset[local[k]]
    source = subset[local]
    dots = np.einsum("ki,ki->k", v0 @ R.T, u0[local])
    if np.any(np.abs(dots) < 0.99):
        k = int(np.argmin(np.abs(dots)))
        raise HandLoadError(f"{path}: joint axes do not match after alignment ({model.joint(jids[k]).name}: cos {dots[k]:.2f})")
    sign = np.sign(dots)
    # check at random poses inside our limits
    rng = np.random.default_rng(seed)
    lo, hi = desc.tree.lower, desc.tree.upper
    worst = err
    for _ in range(8):
        q = lo + (hi - lo) * rng.random(desc.dof)
        a, _ = _ours_at(desc, q, frame)
        b, v, _ = _theirs_at(model, q[source] * sign)
        dist, _ = _line_costs(a[source], b, v, R, t)
        worst = max(worst, float(np.diag(dist).max()))
    if worst > tolerance:
        raise HandLoadError(f"{path}: joints agree at the zero pose but not at random poses ({worst * 1000:.1f} mm): "
                            "different couplings or joint zero positions")
    names = [model.joint(j).name for j in jids]
    rng_lo = np.array([model.jnt_range[j][0] if model.jnt_limited[j] else -np.inf for j in jids])
    rng_hi = np.array([model.jnt_range[j][1] if model.jnt_limited[j] else np.inf for j in jids])
    return HandAlignment(path.stem, names, source, sign, R, t, rng_lo, rng_hi, worst, frame, desc.tree.link_names[frame] if frame else "",
                         desc.tree)
