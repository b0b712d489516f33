"""Initial grasps (METHOD.md s. 5): the hand faces a point of the object's convex hull from
outside, jittered; joints near the canonical pose (truncated normal); contacts drawn uniformly from
the grasp type's candidates.

Random numbers come in as tensors of uniforms / normals (see :mod:`graspforge.optimize.rng`), so a
fresh grasp is drawn on the device, with fixed shapes, inside an optimiser step if need be.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..config import InitConfig
from ..geometry.rotations import axis_angle_to_matrix, matrix_to_rot6d
from ..geometry.sampling import farthest_point_sampling, sample_surface
from ..hands.model import HandModel


def _rotation_about(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    return axis_angle_to_matrix(torch.nn.functional.normalize(axis, dim=-1), angle)


def _perpendicular(n: torch.Tensor) -> torch.Tensor:
    # a unit vector orthogonal to each n (N, 3), continuous away from the switch
    ex = n.new_tensor([1.0, 0.0, 0.0])
    ey = n.new_tensor([0.0, 1.0, 0.0])
    ref = torch.where(n[:, :1].abs() < 0.9, ex, ey)
    return torch.nn.functional.normalize(torch.cross(n, ref, dim=-1), dim=-1)


class HullSampler:
    """Points on an object's convex hull pushed ``offset`` metres outward, with outward normals.

    ``pick_spread(n, start)`` chooses ``n`` far-apart points (farthest-point sampling from pool
    index ``start``); ``pick(u)`` the pool points at uniforms ``u`` (for re-initialising grasps).
    """

    def __init__(self, hull_vertices: np.ndarray, hull_faces: np.ndarray, offset: float, pool: int = 2048, seed: int = 0):
        pts, nrm = sample_surface(hull_vertices, hull_faces, pool, seed=seed)
        self.points = pts + offset * nrm
        self.normals = nrm

    def __len__(self) -> int:
        return len(self.points)

    def pick_spread(self, n: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` pool points by farthest-point sampling from pool index ``start`` (cycled when n > pool)."""
        m = min(n, len(self.points))
        idx = farthest_point_sampling(self.points, m, start=int(start) % len(self.points))
        idx = np.resize(idx, n)
        return self.points[idx], self.normals[idx]


#: How far (m) ahead of its root, along the approach axis, the reference hands' geometry reaches in
#: the open pose (Allegro 0.08, Shadow 0.07, Robotiq 3-finger 0.09, ...): the init distances were
#: tuned for hands like these. A hand that reaches further - a gripper whose root is a wrist flange
#: 0.2-0.28 m behind its pads (robosuite's Jaco, Robotiq 2F-140) - is set back by the excess, or
#: its fingers start 10-20 cm inside the object and the optimiser rarely gets them out.
REFERENCE_REACH = 0.10


def _open_pose_surface(hand: HandModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The hand's surface samples (S, 3) in the root frame in the canonical (open) pose, and its
    unit approach axis (3,)."""
    with torch.no_grad():
        pts = hand.surface_points(hand.forward_kinematics(hand.canonical_pose(1)))[0]
        return pts, torch.nn.functional.normalize(hand.approach_axis, dim=0)


def init_setback(hand: HandModel) -> float:
    """Extra distance (m) between the root and the object at initialisation: how much further than
    :data:`REFERENCE_REACH` the hand's surface samples reach along its approach axis in the
    canonical pose (0 for the reference hands)."""
    pts, a = _open_pose_surface(hand)
    reach = float((pts @ a).max()) if len(pts) else 0.0
    return max(0.0, reach - REFERENCE_REACH)


#: How far (m) the reference hands' geometry lies off the approach line through their root, in the
#: open pose (centroid of the surface samples: Allegro 0.057, Shadow 0.035, Ability 0.023, grippers
#: < 0.021): the init places the root on the line through the object point, and was tuned for
#: hands like these. A hand rooted at the heel of its palm (gymnasium's Shadow, robosuite's Inspire
#: and Fourier: 0.10-0.11 m) would start with the object at its wrist; it is shifted by the excess.
REFERENCE_OFFSET = 0.06


def init_offset(hand: HandModel) -> torch.Tensor:
    """(3,) root frame, m: the point the init puts on the line through the object point instead of the
    root origin. Zero unless the centroid of the hand's surface samples (canonical pose) lies more
    than :data:`REFERENCE_OFFSET` off the approach line through the root; then the part of its
    offset beyond that (0 for the reference hands)."""
    pts, a = _open_pose_surface(hand)
    c = pts.mean(0) if len(pts) else torch.zeros_like(a)
    lateral = c - a * (c @ a)
    r = float(torch.linalg.norm(lateral))
    return lateral * (1.0 - REFERENCE_OFFSET / r) if r > REFERENCE_OFFSET else torch.zeros_like(lateral)


def initial_root_poses(hand: HandModel, points: torch.Tensor, normals: torch.Tensor, cfg: InitConfig, u: torch.Tensor,
                       setback: float = 0.0, offset: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 9) root translation + 6D rotation: the hand's approach axis along the inward normal at
    ``points`` (N, 3), the root ``U(distance_lower, distance_upper)`` + ``setback`` (m, see
    :func:`init_setback`) out along the normal, then roll / tilt / pitch jitter; with ``offset`` (3,)
    (root frame, m, see :func:`init_offset`) that point of the hand on the line instead of the root.
    ``u`` (N, 4) uniforms in [0, 1). Proper rotations (det +1) by construction."""
    dt, dev = hand.dtype, hand.device
    p = torch.as_tensor(points, device=dev).to(dt)
    n = torch.nn.functional.normalize(torch.as_tensor(normals, device=dev).to(dt), dim=-1)
    u = torch.as_tensor(u, device=dev).to(dt)
    a = hand.approach_axis
    up = hand.up_axis
    hand_frame = torch.stack([a, up, torch.cross(a, up, dim=0)], 1)  # columns: hand axes in root frame
    approach_w = -n
    up_w = _perpendicular(approach_w)
    side = torch.cross(approach_w, up_w, dim=-1)
    world_frame = torch.stack([approach_w, up_w, side], 2)  # (N, 3, 3)
    R = world_frame @ hand_frame.T  # maps a -> approach_w, u -> up_w
    lim = u.new_tensor([math.radians(cfg.roll_deg), math.radians(cfg.tilt_deg), math.radians(cfg.pitch_deg)])
    ang = (u[:, :3] * 2 - 1) * lim
    J = _rotation_about(approach_w, ang[:, 0]) @ _rotation_about(up_w, ang[:, 1]) @ _rotation_about(side, ang[:, 2])
    R = J @ R
    dist = cfg.distance_lower + (cfg.distance_upper - cfg.distance_lower) * u[:, 3] + setback
    t = p + n * dist[:, None]
    if offset is not None:
        t = t - R @ offset.to(dt)
    return torch.cat([t, matrix_to_rot6d(R)], 1)


def initial_joints(hand: HandModel, curl_joints: list[str], cfg: InitConfig, u: torch.Tensor,
                   curl_signs: list[int] | None = None) -> torch.Tensor:
    """(N, D) joints from uniforms ``u`` (N, D): the canonical pose plus a normal of standard
    deviation sigma = ``joint_sigma`` (upper - lower) truncated to the joint limits (inverse-CDF
    sampling, so no draw piles up on a limit); joints of fingers the grasp type does not use are
    curled ``curl`` of the way to their upper limit, or their lower one where ``curl_signs`` (one
    +-1 per curl joint; None or empty: all +1) says the joint closes that way."""
    lo, hi, c = hand.lower, hand.upper, hand.canonical_q
    u = torch.as_tensor(u, device=hand.device).to(torch.float64)
    lo64, hi64, c64 = lo.to(torch.float64), hi.to(torch.float64), c.to(torch.float64)
    sigma = (cfg.joint_sigma * (hi64 - lo64)).clamp_min(1e-12)
    ndtr = torch.special.ndtr
    fa, fb = ndtr((lo64 - c64) / sigma), ndtr((hi64 - c64) / sigma)
    p = (fa + u * (fb - fa)).clamp(1e-12, 1 - 1e-12)
    q = c64 + sigma * torch.special.ndtri(p)
    q = torch.minimum(torch.maximum(q, lo64), hi64).to(hand.dtype)
    if cfg.joint_sigma == 0:
        q = c.expand_as(q).clone()
    if curl_joints:
        idx = [hand.description.joint_names.index(j) for j in curl_joints]
        mask = torch.zeros(hand.dof, dtype=torch.bool, device=hand.device)
        mask[idx] = True
        toward = hi.clone()
        if curl_signs:
            low = [i for i, s in zip(idx, curl_signs) if s < 0]
            toward[low] = lo[low]
        q = torch.where(mask, c + cfg.curl * (toward - c), q)
    return q


def sample_contacts(allowed: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Candidate indices (N, k), uniform over ``allowed`` (C_t,) (with replacement), from uniforms ``u`` (N, k)."""
    n = allowed.shape[0]
    pick = (u * n).to(torch.int64).clamp(0, n - 1)
    return allowed[pick]


#: random-number streams of :class:`GraspInitializer` (the counter tells draws apart)
_S_POOL, _S_ROOT, _S_JOINTS, _S_CONTACTS = 20, 21, 22, 23


class GraspInitializer:
    """Fresh grasps for a batch of ``objects`` x ``grasps_per_object`` rows (object-major).

    ``spread()`` gives the first grasps (hull points by farthest-point sampling, per object);
    ``fresh(counter)`` a fresh grasp for every row at once on the hand's device (random hull points),
    for the optimiser to keep where it re-initialises; ``contacts(u)`` maps uniforms (B, K) to
    allowed candidates, the first ``thumb_slots`` columns from ``thumb`` candidates.

    ``object_keys`` (one int per object) seed each object's hull pool and its farthest-point start,
    so that an object's grasps do not depend on the other objects of its batch.
    """

    def __init__(self, hand: HandModel, hulls: list, grasps_per_object: int, curl_joints: list[str], cfg: InitConfig,
                 allowed: torch.Tensor, thumb: torch.Tensor, thumb_slots: int, num_contacts: int, rng,
                 object_keys: list[int], pool: int = 2048, curl_signs: list[int] | None = None):
        if len(allowed) == 0:
            raise ValueError("no allowed contact candidates")
        self.hand, self.cfg, self.rng = hand, cfg, rng
        self.G, self.K = int(grasps_per_object), int(num_contacts)
        self.curl_joints = list(curl_joints)
        self.curl_signs = list(curl_signs or [])
        self.allowed, self.thumb = allowed, thumb
        self.thumb_slots = min(int(thumb_slots), self.K) if len(thumb) else 0
        self.samplers = [HullSampler(np.asarray(h.vertices), np.asarray(h.faces), cfg.hull_offset, pool=pool, seed=int(k))
                         for h, k in zip(hulls, object_keys)]
        self.object_keys = [int(k) for k in object_keys]
        dev, dt = hand.device, hand.dtype
        self.pool_points = torch.as_tensor(np.stack([s.points for s in self.samplers]), device=dev, dtype=dt)
        self.pool_normals = torch.as_tensor(np.stack([s.normals for s in self.samplers]), device=dev, dtype=dt)
        self.object_index = torch.arange(len(self.samplers), device=dev).repeat_interleave(self.G)
        self.setback = init_setback(hand)
        off = init_offset(hand)
        self.offset = off if bool(off.any()) else None

    def contacts(self, u: torch.Tensor) -> torch.Tensor:
        """Candidate indices (B, K) from uniforms ``u`` (B, K)."""
        c = sample_contacts(self.allowed, u)
        if self.thumb_slots:
            c = torch.cat([sample_contacts(self.thumb, u[:, :self.thumb_slots]), c[:, self.thumb_slots:]], 1)
        return c

    def _grasps(self, points: torch.Tensor, normals: torch.Tensor, counter) -> tuple[torch.Tensor, torch.Tensor]:
        rng = self.rng
        root = initial_root_poses(self.hand, points, normals, self.cfg, rng.uniform(counter, _S_ROOT, 4), self.setback, self.offset)
        q = initial_joints(self.hand, self.curl_joints, self.cfg, rng.uniform(counter, _S_JOINTS, self.hand.dof), self.curl_signs)
        return torch.cat([root, q], 1), self.contacts(rng.uniform(counter, _S_CONTACTS, self.K))

    def spread(self) -> tuple[torch.Tensor, torch.Tensor]:
        """First grasps (B, 9 + D) and contacts (B, K): far-apart hull points per object (random counter 0)."""
        pts, nrm = [], []
        for s, key in zip(self.samplers, self.object_keys):
            p, n = s.pick_spread(self.G, start=key % len(s))
            pts.append(p)
            nrm.append(n)
        dev, dt = self.hand.device, self.hand.dtype
        points = torch.as_tensor(np.concatenate(pts), device=dev, dtype=dt)
        normals = torch.as_tensor(np.concatenate(nrm), device=dev, dtype=dt)
        return self._grasps(points, normals, 0)

    def fresh(self, counter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A fresh grasp for every row (B, 9 + D), (B, K), at random hull points; fixed shapes, on the device."""
        n = self.pool_points.shape[1]
        pick = (self.rng.uniform(counter, _S_POOL) * n).to(torch.int64).clamp(0, n - 1)
        return self._grasps(self.pool_points[self.object_index, pick], self.pool_normals[self.object_index, pick], counter)
