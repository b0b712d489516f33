"""Deterministic polishing of annealed grasps (not in the reference; off unless asked for).

MALA* ends with noisy Metropolis steps, so contacts are often left a few millimetres off the
surface, which a simulator punishes (fingers must first travel to the object, pushing it). A short
run of Adam on the hand pose, with the contact assignment fixed and the same energy, settles each
grasp into its local minimum; each grasp keeps the best pose seen, so the energy never rises.
"""

from __future__ import annotations

from typing import Callable

import torch


def refine_poses(energy: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]], pose: torch.Tensor,
                 contacts: torch.Tensor, iterations: int, step_size: float = 1e-3, final_step_fraction: float = 0.1,
                 callback: Callable[[], None] | None = None,
                 project: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Poses (B, 3 + 6 + D) after ``iterations`` Adam steps on ``energy(pose, contacts)`` (B,).

    The step size decays geometrically from ``step_size`` to ``final_step_fraction * step_size``
    (pose units: m, 6D rotation, rad). Rows that become non-finite keep their best finite pose.
    ``project`` maps poses back into the feasible set (joint limits) after every step.
    """
    best = pose.detach().clone()
    if iterations <= 0:
        return best
    with torch.no_grad():
        best_e = energy(best, contacts)[0]
    x = best.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=step_size)
    for it in range(iterations):
        for g in opt.param_groups:
            g["lr"] = step_size * final_step_fraction ** (it / iterations)
        e, _ = energy(x, contacts)
        with torch.no_grad():
            better = torch.isfinite(e) & (e < best_e)
            best = torch.where(better.unsqueeze(1), x.detach(), best)
            best_e = torch.where(better, e.detach(), best_e)
        opt.zero_grad(set_to_none=True)
        e.sum().backward()
        with torch.no_grad():
            x.grad.nan_to_num_(0.0, 0.0, 0.0)
        opt.step()
        if project is not None:
            with torch.no_grad():
                x.copy_(project(x))
        if callback is not None:
            callback()
    with torch.no_grad():  # the last step's result is checked too
        e, _ = energy(x, contacts)
        better = torch.isfinite(e) & (e < best_e)
        best = torch.where(better.unsqueeze(1), x.detach(), best)
    return best
