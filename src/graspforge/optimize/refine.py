"""Deterministic polishing of annealed grasps (not in the reference; off unless asked for).

MALA* ends with noisy Metropolis steps, so contacts are often left a few millimetres off the
surface, which a simulator punishes (fingers must first travel to the object, pushing it). A short
run of Adam on the hand pose, with the contact assignment fixed and the same energy, settles each
grasp into its local minimum; each grasp keeps the best pose seen, so the energy never rises.

Adam is written out (torch.optim.Adam's update, same constants) so that the learning-rate schedule
and the step count live in device tensors: the step never waits for the host and is captured in a
CUDA graph on GPUs like the annealing step.
"""

from __future__ import annotations

from typing import Callable

import torch

from .graph import StepRunner

BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


def refine_poses(energy: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]], pose: torch.Tensor,
                 contacts: torch.Tensor, iterations: int, step_size: float = 1e-3, final_step_fraction: float = 0.1,
                 callback: Callable[[int], None] | None = None,
                 project: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 cuda_graph: bool = True, callback_every: int = 25) -> torch.Tensor:
    """Poses (B, 3 + 6 + D) after ``iterations`` Adam steps on ``energy(pose, contacts)`` (B,).

    The step size decays geometrically from ``step_size`` to ``final_step_fraction * step_size``
    (pose units: m, 6D rotation, rad). Rows that become non-finite keep their best finite pose.
    ``project`` maps poses back into the feasible set (joint limits) after every step.
    ``callback(steps_done)`` runs every ``callback_every`` steps and at the end.
    """
    best = pose.detach().clone()
    if iterations <= 0:
        return best
    with torch.no_grad():
        best_e = energy(best, contacts)[0].detach().clone()
    dev, dt = pose.device, pose.dtype
    x = best.clone()
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    t = torch.zeros((), dtype=torch.int64, device=dev)
    # the learning rate of every step, looked up by the device-side step count
    lrs = step_size * final_step_fraction ** (torch.arange(iterations + 1, dtype=torch.float64, device=dev) / iterations)

    def step() -> None:
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            e, _ = energy(xg, contacts)
            (g,) = torch.autograd.grad(e.sum(), xg)
        e = e.detach()
        better = torch.isfinite(e) & (e < best_e)
        best.copy_(torch.where(better.unsqueeze(1), x, best))
        best_e.copy_(torch.where(better, e, best_e))
        g = g.nan_to_num(0.0, 0.0, 0.0)
        lr = lrs.index_select(0, t.reshape(1))  # not lrs[t]: a 0-d index tensor is read on the host
        t.add_(1)
        m.mul_(BETA1).add_(g, alpha=1 - BETA1)
        v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
        tf = t.to(torch.float64)
        bc1 = 1 - torch.pow(torch.full_like(tf, BETA1), tf)
        bc2 = 1 - torch.pow(torch.full_like(tf, BETA2), tf)
        denom = v.sqrt() / bc2.sqrt().to(dt) + ADAM_EPS
        new = x - (lr / bc1).to(dt) * m / denom
        if project is not None:
            new = project(new)
        x.copy_(new)

    runner = StepRunner(step, enabled=cuda_graph and dev.type == "cuda")
    for it in range(iterations):
        runner()
        if callback is not None and ((it + 1) % callback_every == 0 or it + 1 == iterations):
            callback(it + 1)
    with torch.no_grad():  # the last step's result is checked too
        e, _ = energy(x, contacts)
        better = torch.isfinite(e) & (e < best_e)
        best = torch.where(better.unsqueeze(1), x, best)
    return best

