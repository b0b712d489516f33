"""Grasp synthesis end to end: objects + hand + config -> optimised :class:`GraspSet` s.

geometry -> energy -> optimiser -> grasp set; the CLI (``graspforge generate``) and the dataset
builder call :func:`synthesize`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .config import GenerateConfig, dump_toml
from .dataset.grasp_set import GraspSet
from .energy.model import GraspEnergy
from .energy.scene import ObjectBatch
from .geometry.rotations import matrix_to_quaternion, rot6d_to_matrix
from .hands.model import HandModel
from .hands.description import is_thumb_link
from .objects import ObjectModel
from .optimize.init import HullSampler, initial_joints, initial_root_poses, sample_contacts
from .optimize.mala import GraspOptimizer, OptimizerStats
from .optimize.refine import refine_poses

PREGRASP_OPEN = 0.015  # m, contacts moved out along the object normal
SQUEEZE_DEPTH = 0.005  # m, contacts moved into the object
SQUEEZE_REACH = 0.01  # m, contacts farther than this from the surface are not squeezed
MAX_JOINT_OFFSET = 0.3  # rad (or m for prismatic joints, scaled below): bounds the squeeze / opening
DAMPING = 1e-3


@dataclass
class SynthesisResult:
    grasp_sets: list[GraspSet]
    stats: OptimizerStats
    seconds: float


def joint_offsets(J: torch.Tensor, delta: torch.Tensor, damping: float = DAMPING) -> torch.Tensor:
    """Joint offsets (B, D) moving contacts by ``delta`` (B, K, 3) through Jacobians J (B, K, 3, D):
    damped least squares (J^T J + damping I)^-1 J^T delta."""
    B, K, _, D = J.shape
    A = J.reshape(B, 3 * K, D).to(torch.float64)
    rhs = A.transpose(1, 2) @ delta.reshape(B, 3 * K, 1).to(torch.float64)
    H = A.transpose(1, 2) @ A + damping * torch.eye(D, dtype=torch.float64, device=J.device)
    return torch.linalg.solve(H, rhs).squeeze(-1).to(J.dtype)


def pregrasp_and_squeeze(hand: HandModel, pose: torch.Tensor, contacts: torch.Tensor, object_normals: torch.Tensor,
                         distance: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-grasp (opened) and squeeze (closed) joint targets (B, D) for optimised grasps (METHOD.md s. 7).

    Pre-grasp moves every contact ``PREGRASP_OPEN`` out along the object normal. Squeeze moves the
    contacts that touch (object signed distance ``distance`` (B, K), positive inside, within
    ``SQUEEZE_REACH``) to ``SQUEEZE_DEPTH`` inside the surface, and holds the others still: a contact
    left 3 mm short must travel 8 mm to press 5 mm, and a contact that is not touching must not
    drive its finger. Without ``distance`` every contact moves ``SQUEEZE_DEPTH`` (the reference).
    """
    with torch.no_grad():
        J = hand.contact_jacobian(hand.forward_kinematics(pose), contacts)
        q = pose[:, 9:]
        prismatic = torch.as_tensor([t == "prismatic" for t in hand.description.tree.actuated_joint_types()], device=q.device)
        limit = torch.where(prismatic, torch.full_like(q[0], 0.02), torch.full_like(q[0], MAX_JOINT_OFFSET))
        if distance is None:
            squeeze = -object_normals * SQUEEZE_DEPTH
        else:
            touching = (distance.abs() < SQUEEZE_REACH).unsqueeze(-1)
            squeeze = torch.where(touching, -object_normals * (SQUEEZE_DEPTH + (-distance).clamp_min(0)).unsqueeze(-1), torch.zeros_like(object_normals))
        out = []
        for delta in (object_normals * PREGRASP_OPEN, squeeze):
            dq = joint_offsets(J, delta)
            dq = torch.maximum(torch.minimum(dq, limit), -limit)
            out.append(torch.minimum(torch.maximum(q + dq, hand.lower), hand.upper))
    return out[0], out[1]


def synthesize(
    hand: HandModel,
    objects: list[ObjectModel],
    config: GenerateConfig,
    grasp_type: str | None = None,
    progress: Callable[[GraspOptimizer], None] | None = None,
) -> SynthesisResult:
    """Optimise ``config.grasps`` grasps on each of ``objects`` together in one batch."""
    t0 = time.perf_counter()
    cfg = config
    gtype = hand.description.grasp_type(grasp_type or cfg.grasp_type)
    G, K = cfg.grasps, cfg.contacts
    gen = torch.Generator().manual_seed(int(cfg.seed))
    batch = ObjectBatch(objects, G, device=hand.device, dtype=hand.dtype, surface_points=cfg.energy.object_points)
    B = batch.batch_size
    allowed = torch.as_tensor(np.flatnonzero(hand.description.candidate_mask(gtype.name)), device=hand.device)
    if len(allowed) == 0:
        raise ValueError(f"grasp type {gtype.name!r} of hand {hand.description.name!r} has no contact candidates")
    # optional opposition: the first slots always hold thumb candidates (if the hand has a thumb)
    thumb_ids = [l for l, n in enumerate(hand.description.tree.link_names) if is_thumb_link(n)]
    thumb = allowed[torch.isin(hand.contact_links[allowed], torch.as_tensor(thumb_ids, dtype=torch.long, device=hand.device))]
    n_thumb = min(cfg.init.thumb_contacts, K) if len(thumb) else 0

    def draw(n: int) -> torch.Tensor:
        c = sample_contacts(allowed, n, K, gen)
        if n_thumb:
            c[:, :n_thumb] = sample_contacts(thumb, n, n_thumb, gen)
        return c

    samplers = []
    for o, obj in enumerate(objects):
        hull = obj.convex_hull
        samplers.append(HullSampler(np.asarray(hull.vertices), np.asarray(hull.faces), cfg.init.hull_offset, seed=int(cfg.seed) * 7919 + o))

    def fresh(rows: torch.Tensor, spread: bool) -> tuple[torch.Tensor, torch.Tensor]:
        pts, nrm = [], []
        for o in range(batch.num_objects):
            n = int((batch.object_index[rows] == o).sum())
            if n:
                p, q = (samplers[o].pick_spread if spread else samplers[o].pick_random)(n, gen)
                pts.append(p)
                nrm.append(q)
        root = initial_root_poses(hand, np.concatenate(pts), np.concatenate(nrm), cfg.init, gen)
        q = initial_joints(hand, len(rows), gtype.curl_joints, cfg.init, gen)
        return torch.cat([root, q], 1), draw(len(rows))

    pose, contacts = fresh(torch.arange(B, device=hand.device), spread=True)
    energy = GraspEnergy(hand, batch, cfg.energy)

    def reinit(mask: torch.Tensor):
        return fresh(mask.nonzero(as_tuple=True)[0], spread=False)

    def resample(c: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, draw(c.shape[0]), c)

    opt = GraspOptimizer(energy, pose, contacts, G, cfg.optimizer, reinit, resample, gen, on_reset=energy.reset, on_accept=energy.accept)
    stats = opt.run(cfg.optimizer.iterations, callback=progress)
    if cfg.optimizer.refine_iterations:
        opt.pose = refine_poses(energy, opt.pose, opt.contacts, cfg.optimizer.refine_iterations, cfg.optimizer.refine_step,
                                callback=(lambda: progress(opt)) if progress else None)

    # -- final geometry and exports ---------------------------------------------------------
    with torch.no_grad():
        pose, contacts = opt.pose, opt.contacts
        total, terms = energy(pose, contacts)
        state = hand.forward_kinematics(pose)
        p, n_h, d, n_o = energy.contact_geometry(state, contacts)
        V = energy.qp_value(p, n_o)
        pen_depth = hand.penetration_depth(state, energy.object_points).amax(-1)
        spen_depth = hand.self_penetration_depth(state)
        pre, squeeze = pregrasp_and_squeeze(hand, pose, contacts, n_o, d)
        quat = matrix_to_quaternion(rot6d_to_matrix(pose[:, 3:9]))
    names = np.asarray(hand.description.tree.link_names)
    clinks = names[hand.contact_links[contacts].cpu().numpy()]
    toml = dump_toml(cfg)
    sets = []
    for o, obj, sl in batch.slices():
        npy = lambda x: x[sl].detach().cpu().numpy().astype(np.float64)  # noqa: E731
        sets.append(GraspSet(
            hand=hand.description.name, joint_names=hand.description.joint_names, grasp_type=gtype.name,
            object_name=obj.name, object_source=str(obj.source), object_hash=obj.content_hash, object_scale=float(obj.scale),
            root_position=npy(pose[:, :3]), root_quaternion=npy(quat), joint_positions=npy(pose[:, 9:]),
            pregrasp_joint_positions=npy(pre), squeeze_joint_positions=npy(squeeze),
            contact_points=npy(p), contact_normals=npy(n_o), contact_links=clinks[sl.start:sl.stop],
            contact_indices=contacts[sl].cpu().numpy().astype(np.int64), contact_distance=npy(d),
            energy=npy(total), terms={f"energy_{k[2:]}": npy(v) for k, v in terms.items()}, qp_value=npy(V),
            config_toml=toml,
            extra={"penetration_depth": npy(pen_depth), "self_penetration_depth": npy(spen_depth)},
        ))
    return SynthesisResult(sets, stats, time.perf_counter() - t0)
