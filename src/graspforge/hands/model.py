"""The batched, differentiable hand: FK, contact points/normals, Jacobians, collision distance.

A hand pose is (B, 3 + 6 + D): root-link translation (m) and 6D rotation in the object frame,
then the actuated joint positions in ``joint_names`` order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..geometry.atlas import GridAtlas
from .description import HandDescription
from .kinematics import LinkPoses, TorchKinematics, point_jacobian


@dataclass
class HandState:
    """FK of a batch of hand poses: link rotations (B, L, 3, 3) and positions (B, L, 3)."""

    pose: torch.Tensor
    links: LinkPoses

    @property
    def batch_size(self) -> int:
        return self.pose.shape[0]


class HandModel:
    """Torch view of a :class:`HandDescription` on one device and dtype (float32 by default)."""

    def __init__(self, description: HandDescription, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.description = d = description
        self.device = torch.device(device)
        self.dtype = dtype
        kw = dict(device=self.device, dtype=dtype)
        self.kinematics = TorchKinematics(d.tree, self.device, dtype)
        self.contact_points_local = torch.as_tensor(d.contact_points, **kw)
        self.contact_normals_local = torch.as_tensor(d.contact_normals, **kw)
        self.contact_links = torch.as_tensor(d.contact_links, device=self.device)
        self.surface_points_local = torch.as_tensor(d.surface_points, **kw)
        self.surface_links = torch.as_tensor(d.surface_links, device=self.device)
        self.lower = self.kinematics.lower
        self.upper = self.kinematics.upper
        self.canonical_q = torch.as_tensor(d.canonical_q, **kw)
        self.atlas = GridAtlas(d.grids, self.device, dtype)
        self.collision_links = torch.as_tensor(np.flatnonzero(d.link_grid >= 0), device=self.device)
        self.collision_grid = torch.as_tensor(d.link_grid[d.link_grid >= 0], device=self.device)

    # -- basic facts ------------------------------------------------------------------------
    @property
    def dof(self) -> int:
        return self.description.dof

    @property
    def pose_dim(self) -> int:
        return 9 + self.dof

    @property
    def num_candidates(self) -> int:
        return self.contact_points_local.shape[0]

    # -- kinematics -------------------------------------------------------------------------
    def forward_kinematics(self, pose: torch.Tensor) -> HandState:
        """(B, 9 + D) hand poses -> :class:`HandState`."""
        return HandState(pose, self.kinematics.forward_pose(pose))

    @staticmethod
    def _to_world(state: HandState, local: torch.Tensor, links: torch.Tensor, vectors: bool = False) -> torch.Tensor:
        # local (K, 3) or (B, K, 3) attached to links (K,) or (B, K) -> world (B, K, 3)
        B = state.batch_size
        if links.dim() == 1:
            R = state.links.rot[:, links]
            t = state.links.pos[:, links]
        else:
            bi = torch.arange(B, device=links.device)[:, None]
            R, t = state.links.rot[bi, links], state.links.pos[bi, links]
        if local.dim() == 2:
            local = local.expand(B, *local.shape) if links.dim() == 2 else local[None].expand(B, *local.shape)
        out = (R @ local[..., None]).squeeze(-1)
        return out if vectors else out + t

    def contact_points(self, state: HandState, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World contact points and outward normals (B, K, 3) for candidate ``indices`` (B, K)."""
        links = self.contact_links[indices]
        bi = torch.arange(state.batch_size, device=indices.device)[:, None]
        p = self._to_world(state, self.contact_points_local[indices], links)
        n = self._to_world(state, self.contact_normals_local[indices], links, vectors=True)
        del bi
        return p, n

    def all_contact_candidates(self, state: HandState) -> tuple[torch.Tensor, torch.Tensor]:
        """World positions and normals of every candidate, (B, C, 3) each."""
        p = self._to_world(state, self.contact_points_local, self.contact_links)
        n = self._to_world(state, self.contact_normals_local, self.contact_links, vectors=True)
        return p, n

    def contact_jacobian(self, state: HandState, indices: torch.Tensor) -> torch.Tensor:
        """Analytic d(contact point)/d(actuated joints), (B, K, 3, D), for candidate ``indices`` (B, K)."""
        p, _ = self.contact_points(state, indices)
        return point_jacobian(self.kinematics, state.links, p, self.contact_links[indices])

    def surface_points(self, state: HandState) -> torch.Tensor:
        """World positions (B, S, 3) of the collision-surface samples (self-collision, display)."""
        return self._to_world(state, self.surface_points_local, self.surface_links)

    # -- collision ----------------------------------------------------------------------------
    def signed_distance(self, state: HandState, points: torch.Tensor, outside: float = -0.01) -> torch.Tensor:
        """Signed distance (B, P) of world ``points`` (B, P, 3) to the hand's collision geometry
        (positive inside, m), the max over links. Points farther than a link grid's margin from
        every link read ``outside`` or less; only the inside (penetration) values are exact-ish.

        Broad phase: a point is looked up in a link's grid only if it lies in that grid's box.
        """
        B, P, _ = points.shape
        links = self.collision_links
        R = state.links.rot[:, links]  # (B, G, 3, 3)
        t = state.links.pos[:, links]
        # into every link frame: R^T (p - t)
        local = torch.einsum("bgji,bgpj->bgpi", R, points[:, None] - t[:, :, None])  # (B, G, P, 3)
        lo = self.atlas.lower[self.collision_grid][None, :, None]
        hi = self.atlas.upper[self.collision_grid][None, :, None]
        inside_box = ((local > lo) & (local < hi)).all(-1)  # (B, G, P)
        sel = inside_box.nonzero(as_tuple=True)
        out = points.new_full((B, len(links), P), outside)
        if sel[0].numel():
            d = self.atlas.query(local[sel], self.collision_grid[sel[1]])
            out = out.index_put(sel, torch.maximum(d, out.new_tensor(outside)))
        return out.amax(1)

    def penetration_depth(self, state: HandState, points: torch.Tensor) -> torch.Tensor:
        """max(0, depth) (B, P) of ``points`` (B, P, 3) inside the hand, m."""
        return self.signed_distance(state, points).clamp_min(0)

    # -- poses ---------------------------------------------------------------------------------
    def canonical_pose(self, batch: int = 1) -> torch.Tensor:
        """(batch, 9 + D): identity root at the origin, canonical joints."""
        pose = torch.zeros(batch, self.pose_dim, device=self.device, dtype=self.dtype)
        pose[:, 3] = 1.0
        pose[:, 7] = 1.0
        pose[:, 9:] = self.canonical_q
        return pose
