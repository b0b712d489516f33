"""The non-QP energy terms (METHOD.md s. 2) and the baseline force-closure terms (s. 3).

All take batched tensors and return one value per grasp, (B,).
"""

from __future__ import annotations

import torch


def contact_distance_energy(d: torch.Tensor, object_normals: torch.Tensor, hand_normals: torch.Tensor, variant: str = "exp") -> torch.Tensor:
    """E_dis (B,) from object signed distances ``d`` (B, K) at the contacts.

    ``exp``: sum_k exp(1 - <-n_o, n_h>) |d| - contacts pulled to the surface *and* facing it
    (GraspQP / GenDexGrasp); ``plain``: sum_k |d| (DexGraspNet).
    """
    if variant == "plain":
        return d.abs().sum(-1)
    if variant != "exp":
        raise ValueError(f"unknown contact distance variant {variant!r}")
    facing = -(object_normals * hand_normals).sum(-1)
    return (torch.exp(1 - facing) * d.abs()).sum(-1)


def joint_limit_energy(q: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """E_joints (B,) = sum_j max(0, q - upper) + max(0, lower - q)."""
    return (q - upper).clamp_min(0).sum(-1) + (lower - q).clamp_min(0).sum(-1)


def dexgraspnet_force_closure(points: torch.Tensor, normals: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """|| sum_k [n_k ; (p_k - c) x n_k] ||^2 (B,): force *and* torque balance of unit normal forces.

    The DexGraspNet reference drops the torque rows by accident; METHOD.md keeps them.
    """
    torque = torch.cross(points - center[:, None], normals, dim=-1)
    w = torch.cat([normals, torque], -1).sum(1)  # (B, 6)
    return w.square().sum(-1)


def tdg_force_closure(W: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """TDG's grasp-wrench-space boundary estimate (B,): mean over unit wrench directions u (U, 6) of
    1 - cos(w(u), u), where w(u) is the primitive wrench (a column of W (B, 6, M)) with the largest
    support <w, u>. Zero when the wrench space reaches out along every direction."""
    support = torch.einsum("bim,ui->bum", W, directions)  # (B, U, M)
    best = support.argmax(-1)  # (B, U)
    w = torch.gather(W.transpose(1, 2), 1, best[..., None].expand(-1, -1, W.shape[1]))  # (B, U, 6)
    cos = (w * directions).sum(-1) / w.norm(dim=-1).clamp_min(1e-9)
    return (1 - cos).mean(-1)


def random_unit_wrenches(count: int, seed: int = 0, device=None, dtype=torch.float32) -> torch.Tensor:
    """(count, 6) fixed random unit directions in wrench space (seeded)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(count, 6, generator=g, dtype=torch.float64)
    return torch.nn.functional.normalize(u, dim=-1).to(device=device, dtype=dtype)
