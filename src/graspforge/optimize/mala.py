"""DexGraspNet annealing ("MALA" in the paper's tables) and MALA* (METHOD.md s. 4).

One iteration: gradient-scaled proposal for the pose, each contact index resampled with some
probability, one energy + gradient evaluation at the proposal, Metropolis acceptance per grasp.
MALA* adds, per object: z-scores of the energies, a temperature scaled by 1 + Phi(z), and periodic
re-initialisation of grasps that lag (z > 1). Step counters, EMAs and warm starts are per grasp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from ..config import OptimizerConfig


class EnergyFunction(Protocol):
    def __call__(self, pose: torch.Tensor, contacts: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


@dataclass
class OptimizerStats:
    """Counters over a run: proposals accepted, MALA* resets, grasps reset for NaN/inf."""

    iterations: int = 0
    accepted: int = 0
    proposed: int = 0
    resets: int = 0
    nan_resets: int = 0
    energy_curve: list = field(default_factory=list)  # (iteration, mean energy per object)

    @property
    def accept_rate(self) -> float:
        return self.accepted / max(self.proposed, 1)


class GraspOptimizer:
    """Anneal a batch of B grasps (``n_objects`` x ``grasps_per_object``, object-major rows).

    ``energy(pose, contacts)`` returns (total (B,), terms); the optimiser differentiates it w.r.t. the
    pose. ``reinit(mask)`` returns fresh (pose, contacts) rows for the grasps in ``mask`` (B,) bool.
    ``resample(contacts, mask)`` replaces the masked contact entries with random allowed candidates.
    ``project(pose)``, when given, maps every proposal into the feasible set (the hand's joint
    limits): the reference only penalises limit violations softly, and 9 % of its Allegro grasps on
    YCB ended up to 0.55 rad outside a limit, a pose the real hand cannot take.
    """

    def __init__(
        self,
        energy: EnergyFunction,
        pose: torch.Tensor,
        contacts: torch.Tensor,
        grasps_per_object: int,
        config: OptimizerConfig,
        reinit: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        resample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        generator: torch.Generator,
        on_reset: Callable[[torch.Tensor], None] | None = None,
        on_accept: Callable[[torch.Tensor], None] | None = None,
        record_every: int = 10,
        project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        config.validate()
        B = pose.shape[0]
        if B % grasps_per_object:
            raise ValueError("batch size must be a multiple of grasps_per_object")
        self.energy_fn, self.cfg = energy, config
        self.G = grasps_per_object
        self.n_obj = B // grasps_per_object
        self.reinit, self.resample, self.gen, self.on_reset = reinit, resample, generator, on_reset
        # told which rows now sit at the last evaluated state (the energy's QP keeps warm starts)
        self.on_accept = on_accept
        self.record_every = record_every
        # maps a proposal back into the feasible set (joint limits); identity when None
        self.project = project
        self.pose = pose.detach().clone()
        self.contacts = contacts.clone()
        self.k = torch.zeros(B, dtype=torch.long, device=pose.device)
        self.ema = torch.zeros_like(self.pose)
        self.stats = OptimizerStats()
        self.iteration = 0
        self.energy, self.terms, self.grad = self._evaluate(self.pose, self.contacts)
        self._accepted(torch.ones(B, dtype=torch.bool, device=pose.device))
        self._fix_nonfinite()

    # -- pieces -------------------------------------------------------------------------------
    def _evaluate(self, pose: torch.Tensor, contacts: torch.Tensor):
        x = pose.detach().requires_grad_(True)
        with torch.enable_grad():
            total, terms = self.energy_fn(x, contacts)
            (grad,) = torch.autograd.grad(total.sum(), x)
        return total.detach(), {k: v.detach() for k, v in terms.items()}, grad.detach()

    def _accepted(self, mask: torch.Tensor) -> None:
        if self.on_accept is not None:
            self.on_accept(mask)

    def _rand(self, *shape) -> torch.Tensor:
        return torch.rand(*shape, generator=self.gen, dtype=torch.float64).to(self.pose.device)

    def _group_mean(self, x: torch.Tensor) -> torch.Tensor:
        # mean over the grasps of each object, broadcast back to rows
        return x.view(self.n_obj, self.G, *x.shape[1:]).mean(1).repeat_interleave(self.G, 0)

    def z_scores(self, energy: torch.Tensor | None = None) -> torch.Tensor:
        """Per-object z-score of each grasp's energy (B,); zero when an object has one grasp."""
        e = (self.energy if energy is None else energy).view(self.n_obj, self.G).to(torch.float64)
        if self.G < 2:
            return torch.zeros(self.n_obj * self.G, dtype=torch.float64, device=e.device)
        finite = torch.isfinite(e)
        e0 = torch.where(finite, e, torch.zeros_like(e))
        n = finite.sum(1, keepdim=True).clamp_min(1)
        mean = e0.sum(1, keepdim=True) / n
        var = (torch.where(finite, (e - mean) ** 2, torch.zeros_like(e))).sum(1, keepdim=True) / (n - 1).clamp_min(1)
        z = (e - mean) / var.sqrt().clamp_min(1e-12)
        z = torch.where(finite & (var > 0), z, torch.zeros_like(z))
        return z.reshape(-1)

    def temperature(self) -> torch.Tensor:
        c = self.cfg
        T = c.temperature * c.temperature_decay ** torch.div(self.k, c.temperature_decay_every, rounding_mode="floor").to(torch.float64)
        if c.name == "mala_star" and self.G > 1:
            phi = 0.5 * (1 + torch.erf(self.z_scores() / math.sqrt(2)))
            T = T * (1 + phi)
        return T

    def _reset_rows(self, mask: torch.Tensor) -> None:
        if not bool(mask.any()):
            return
        pose, contacts = self.reinit(mask)
        self.pose[mask] = pose.to(self.pose.dtype)
        self.contacts[mask] = contacts
        self.k[mask] = 0
        self.ema[mask] = 0
        if self.on_reset is not None:
            self.on_reset(mask)
        # the batch is evaluated whole (energies of other rows are unchanged by this)
        e, terms, g = self._evaluate(self.pose, self.contacts)
        self._accepted(torch.ones_like(mask))
        self.energy[mask], self.grad[mask] = e[mask], g[mask]
        for key in self.terms:
            self.terms[key][mask] = terms[key][mask]

    def _fix_nonfinite(self, tries: int = 5) -> None:
        for _ in range(tries):
            bad = ~torch.isfinite(self.energy) | ~torch.isfinite(self.grad).all(-1)
            if not bool(bad.any()):
                return
            self.stats.nan_resets += int(bad.sum())
            self._reset_rows(bad)

    # -- the loop ------------------------------------------------------------------------------
    def step(self) -> None:
        c = self.cfg
        B = self.pose.shape[0]
        step = c.step_size * c.step_decay ** torch.div(self.k, c.step_decay_every, rounding_mode="floor").to(self.pose.dtype)
        self.ema = c.ema * self._group_mean(self.grad.square()) + (1 - c.ema) * self.ema
        proposal = self.pose - step[:, None] * self.grad / (self.ema.sqrt() + 1e-6)
        if self.project is not None:
            proposal = self.project(proposal)
        resample = self._rand(*self.contacts.shape) < c.resample_prob
        contacts = self.resample(self.contacts, resample)
        e_new, terms_new, g_new = self._evaluate(proposal, contacts)
        T = self.temperature()
        finite = torch.isfinite(e_new) & torch.isfinite(g_new).all(-1)
        delta = (self.energy.to(torch.float64) - e_new.to(torch.float64)) / T
        accept = finite & (self._rand(B) < torch.exp(delta.clamp(max=0.0)))
        self._accepted(accept)
        self.pose = torch.where(accept[:, None], proposal.detach(), self.pose)
        self.contacts = torch.where(accept[:, None], contacts, self.contacts)
        self.energy = torch.where(accept, e_new, self.energy)
        self.grad = torch.where(accept[:, None], g_new, self.grad)
        for key in self.terms:
            self.terms[key] = torch.where(accept, terms_new[key], self.terms[key])
        self.k += 1
        self.iteration += 1
        self.stats.iterations = self.iteration
        self.stats.accepted += int(accept.sum())
        self.stats.proposed += B
        # a grasp whose proposal went non-finite is re-initialised rather than left to linger
        if not bool(finite.all()):
            self.stats.nan_resets += int((~finite).sum())
            self._reset_rows(~finite)
        self._fix_nonfinite()
        if (c.name == "mala_star" and self.G > 1 and self.iteration % c.reset_every == 0
                and self.iteration < c.iterations - c.reset_stop_before_end):
            lag = self.z_scores() > c.reset_z
            self.stats.resets += int(lag.sum())
            self._reset_rows(lag)
        if self.record_every and self.iteration % self.record_every == 0:
            self.stats.energy_curve.append((self.iteration, self.energy.view(self.n_obj, self.G).mean(1).tolist()))

    def run(self, iterations: int | None = None, callback: Callable[["GraspOptimizer"], None] | None = None) -> OptimizerStats:
        n = self.cfg.iterations if iterations is None else iterations
        for _ in range(n):
            self.step()
            if callback is not None:
                callback(self)
        return self.stats
