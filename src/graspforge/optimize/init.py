"""Initial grasps (METHOD.md s. 5): the hand faces a point of the object's convex hull from
outside, jittered; joints near the canonical pose; contacts drawn uniformly from the grasp type's
candidates."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..config import InitConfig
from ..geometry.rotations import matrix_to_rot6d
from ..geometry.sampling import farthest_point_sampling, sample_surface
from ..hands.model import HandModel


def _rotation_about(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    from ..geometry.rotations import axis_angle_to_matrix

    return axis_angle_to_matrix(torch.nn.functional.normalize(axis, dim=-1), angle)


def _perpendicular(n: torch.Tensor) -> torch.Tensor:
    # a unit vector orthogonal to each n (N, 3), continuous away from the switch
    ref = torch.where((n[:, :1].abs() < 0.9), torch.tensor([1.0, 0, 0], dtype=n.dtype, device=n.device), torch.tensor([0, 1.0, 0], dtype=n.dtype, device=n.device))
    return torch.nn.functional.normalize(torch.cross(n, ref, dim=-1), dim=-1)


class HullSampler:
    """Points on an object's convex hull pushed ``offset`` metres outward, with outward normals.

    ``pick_spread(n)`` chooses ``n`` far-apart points (farthest-point sampling from a random start),
    ``pick_random(n)`` uniform ones (for re-initialising a few grasps).
    """

    def __init__(self, hull_vertices: np.ndarray, hull_faces: np.ndarray, offset: float, pool: int = 2048, seed: int = 0):
        pts, nrm = sample_surface(hull_vertices, hull_faces, pool, seed=seed)
        self.points = pts + offset * nrm
        self.normals = nrm

    def pick_spread(self, n: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        start = int(torch.randint(len(self.points), (1,), generator=generator))
        if n <= len(self.points):
            idx = farthest_point_sampling(self.points, n, start=start)
        else:
            idx = torch.randint(len(self.points), (n,), generator=generator).numpy()
        return self.points[idx], self.normals[idx]

    def pick_random(self, n: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        idx = torch.randint(len(self.points), (n,), generator=generator).numpy()
        return self.points[idx], self.normals[idx]


def initial_root_poses(hand: HandModel, points: np.ndarray, normals: np.ndarray, cfg: InitConfig, generator: torch.Generator) -> torch.Tensor:
    """(N, 9) root translation + 6D rotation: the hand's approach axis along the inward normal at
    ``points`` (N, 3), the root ``U(distance_lower, distance_upper)`` out along the normal, then
    tilt / pitch / roll jitter. Proper rotations (det +1) by construction."""
    dt, dev = hand.dtype, hand.device
    N = len(points)
    p = torch.as_tensor(points, dtype=dt, device=dev)
    n = torch.nn.functional.normalize(torch.as_tensor(normals, dtype=dt, device=dev), dim=-1)
    a = torch.as_tensor(hand.description.approach_axis, dtype=dt, device=dev)
    u = torch.as_tensor(hand.description.up_axis, dtype=dt, device=dev)
    hand_frame = torch.stack([a, u, torch.cross(a, u, dim=0)], 1)  # columns: hand axes in root frame
    approach_w = -n
    up_w = _perpendicular(approach_w)
    world_frame = torch.stack([approach_w, up_w, torch.cross(approach_w, up_w, dim=-1)], 2)  # (N, 3, 3)
    R = world_frame @ hand_frame.T  # maps a -> approach_w, u -> up_w

    def uni(lim_deg):
        return (torch.rand(N, generator=generator, dtype=torch.float64) * 2 - 1).to(dt) * math.radians(lim_deg)

    roll, tilt, pitch = uni(cfg.roll_deg), uni(cfg.tilt_deg), uni(cfg.pitch_deg)
    side = torch.cross(approach_w, up_w, dim=-1)
    J = _rotation_about(approach_w, roll) @ _rotation_about(up_w, tilt) @ _rotation_about(side, pitch)
    R = J @ R
    dist = cfg.distance_lower + (cfg.distance_upper - cfg.distance_lower) * torch.rand(N, generator=generator, dtype=torch.float64).to(dt)
    t = p + n * dist[:, None]
    return torch.cat([t, matrix_to_rot6d(R)], 1)


def initial_joints(hand: HandModel, n: int, curl_joints: list[str], cfg: InitConfig, generator: torch.Generator) -> torch.Tensor:
    """(n, D): canonical pose + N(0, (sigma (upper - lower))^2), clipped to the limits; joints of
    fingers the grasp type does not use are curled ``curl`` of the way to their upper limit."""
    lo, hi, c = hand.lower, hand.upper, hand.canonical_q
    noise = torch.randn(n, hand.dof, generator=generator, dtype=torch.float64).to(hand.dtype)
    q = c + cfg.joint_sigma * (hi - lo) * noise
    if curl_joints:
        idx = torch.as_tensor([hand.description.joint_names.index(j) for j in curl_joints], device=hand.device)
        q[:, idx] = (c + cfg.curl * (hi - c))[idx]
    return torch.minimum(torch.maximum(q, lo), hi)


def sample_contacts(allowed: torch.Tensor, n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(n, k) candidate indices drawn uniformly (with replacement) from ``allowed`` (C_t,)."""
    pick = torch.randint(len(allowed), (n, k), generator=generator)
    return allowed[pick.to(allowed.device)]
