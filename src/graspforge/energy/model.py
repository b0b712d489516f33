"""The full grasp energy (METHOD.md s. 2-3) for a hand and a batch of objects.

E = w_dis E_dis + w_fc E_fc + w_pen E_pen + w_hpen E_hpen + w_spen E_spen + w_joints E_joints, one value per grasp.
"""

from __future__ import annotations

import torch

from ..config import EnergyConfig
from ..hands.model import HandModel, HandState
from . import force_closure as fc
from .scene import ObjectBatch
from .terms import contact_distance_energy, dexgraspnet_force_closure, joint_limit_energy, random_unit_wrenches, tdg_force_closure

TERMS = ("E_dis", "E_fc", "E_pen", "E_hpen", "E_spen", "E_joints")


class GraspEnergy:
    """Callable ``(pose (B, 9 + D), contacts (B, K)) -> (total (B,), {term: (B,)})``, differentiable
    w.r.t. the pose. Holds the QP warm starts of its B grasps (``reset(mask)`` drops some)."""

    def __init__(self, hand: HandModel, objects: ObjectBatch, config: EnergyConfig | None = None):
        self.hand, self.objects = hand, objects
        self.cfg = config or EnergyConfig()
        self.cfg.validate()
        self.variant = self.cfg.distance_variant
        c = self.cfg
        self.fc_config = fc.ForceClosureConfig(
            mu=c.friction, num_edges=c.cone_edges, torque_weight=c.torque_weight, lower=c.qp_lower,
            upper=c.qp_upper, eps=c.qp_eps, value_offset=c.svd_offset, sv_weight=c.svd_weight,
        )
        self.qp = fc.ForceClosureQP(self.fc_config) if c.method == "graspqp" else None
        self.directions = random_unit_wrenches(c.tdg_directions, device=hand.device, dtype=hand.dtype) if c.method == "tdg" else None
        self.object_points = objects.points_per_grasp()
        # E_hpen samples: the first hand_points of each link's farthest-point-ordered surface samples
        # grouped per link, (L, S, 3): a link with fewer samples repeats its last one at weight 0
        links = hand.surface_links
        ids = torch.unique(links)
        counts = [min(int((links == l).sum()), c.hand_points) for l in ids]
        S = max(counts + [1])
        local = hand.surface_points_local.new_zeros(len(ids), S, 3)
        weight = hand.surface_points_local.new_zeros(len(ids), S)
        for g, (l, n) in enumerate(zip(ids, counts)):
            pts = hand.surface_points_local[links == l]
            local[g], weight[g, :n] = pts[torch.arange(S, device=pts.device).clamp(max=len(pts) - 1)], 1.0
        self._hpen_local, self._hpen_links, self._hpen_weight = local, ids, weight.reshape(-1)
        self.last: dict[str, torch.Tensor] = {}

    def reset(self, mask: torch.Tensor) -> None:
        """Grasps in ``mask`` (B,) were re-initialised: drop their QP warm starts."""
        if self.qp is not None:
            self.qp.reset(mask)

    def accept(self, mask: torch.Tensor) -> None:
        """After a Metropolis step: rows in ``mask`` moved to the last evaluated state; the others
        keep the warm start of the state they stayed at."""
        if self.qp is not None:
            self.qp.accept(mask)

    def contact_geometry(self, state: HandState, contacts: torch.Tensor):
        """Hand contact points/normals (B, K, 3) and the object's signed distance (B, K) and outward
        normals (B, K, 3) there."""
        p, n_h = self.hand.contact_points(state, contacts)
        d, n_o = self.objects.signed_distance(p)
        return p, n_h, d, n_o

    def force_closure(self, p: torch.Tensor, n_o: torch.Tensor) -> torch.Tensor:
        """E_fc (B,) of the configured method at contacts ``p`` with object normals ``n_o`` (B, K, 3)."""
        c, center = self.cfg, self.objects.center
        if c.method == "graspqp":
            return self.qp.energy(p, n_o, center)
        if c.method in ("dexgraspnet", "gendexgrasp"):
            return dexgraspnet_force_closure(p, n_o, center)
        wrenches = fc.grasp_matrix(p, n_o, center, c.friction, c.torque_weight, c.cone_edges)  # (B, 6, m K)
        return c.tdg_weight * tdg_force_closure(wrenches, self.directions)

    def qp_value(self, p: torch.Tensor, n_o: torch.Tensor) -> torch.Tensor:
        """V(W) (B,) of the force-closure QP at these contacts (a fresh solve, whatever the method)."""
        return self.qp_solution(p, n_o)[0]

    def qp_solution(self, p: torch.Tensor, n_o: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """V(W) (B,) and the contact forces (B, K, 3) of the force-closure QP's minimiser at contacts
        ``p`` with outward object normals ``n_o`` (B, K, 3): each force is the sum of its cone edges
        weighted by l*, pointing into the object (dimensionless; every edge weight is >= 1)."""
        f = self.fc_config
        with torch.no_grad():
            res = fc.ForceClosureQP(f, step_iterations=None).solve(  # cold: solved to convergence
                fc.grasp_matrix(p, n_o, self.objects.center, f.mu, f.torque_weight, f.num_edges))
            edges = fc.friction_cone_edges(n_o, f.mu, f.num_edges)  # (B, K, m, 3)
            forces = (res.l.reshape(*edges.shape[:3], 1) * edges).sum(2)
        return res.value, forces

    def hand_in_object(self, state: HandState) -> torch.Tensor:
        """E_hpen (B,): sum of the depths (m) of the hand's surface samples inside the object.

        Not in the reference. Its E_pen (object samples inside the hand) is bounded by a link's
        radius: a finger sunk under a large face, the face cutting through it, costs ~1 cm per
        nearby sample, which the force-closure gain outweighs; measured on the exact meshes, 70 of
        800 Allegro grasps on 25 YCB objects had links 2-4 cm inside boxes and cans that way.
        """
        p = self.hand.grouped_to_world(state, self._hpen_local, self._hpen_links).flatten(1, 2)
        return (self.objects.depth_inside(p) * self._hpen_weight).sum(-1)

    def __call__(self, pose: torch.Tensor, contacts: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        c = self.cfg
        state = self.hand.forward_kinematics(pose)
        p, n_h, d, n_o = self.contact_geometry(state, contacts)
        terms = {
            "E_dis": contact_distance_energy(d, n_o, n_h, self.variant),
            "E_fc": self.force_closure(p, n_o),
            "E_pen": self.hand.penetration_depth(state, self.object_points, self.objects.point_clusters).sum(-1) if c.w_pen else pose.new_zeros(pose.shape[0]),
            "E_hpen": self.hand_in_object(state) if c.w_hpen else pose.new_zeros(pose.shape[0]),
            "E_spen": self.hand.self_penetration(state) if c.w_spen else pose.new_zeros(pose.shape[0]),
            "E_joints": joint_limit_energy(pose[:, 9:], self.hand.lower, self.hand.upper),
        }
        total = c.w_dis * terms["E_dis"] + c.w_fc * terms["E_fc"] + c.w_pen * terms["E_pen"] + c.w_hpen * terms["E_hpen"] + c.w_spen * terms["E_spen"] + c.w_joints * terms["E_joints"]
        return total, terms
