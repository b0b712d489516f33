"""DexGraspNet annealing ("MALA" in the paper's tables) and MALA* (METHOD.md s. 4).

One iteration: gradient-scaled proposal for the pose, each contact index resampled with some
probability, one energy + gradient evaluation at the proposal, Metropolis acceptance per grasp.
MALA* adds, per object: z-scores of the energies, a temperature scaled by 1 + Phi(z), and periodic
re-initialisation of grasps that lag (z > 1). Step counters, EMAs and warm starts are per grasp.

A step never waits for the device: random numbers come from a counter-based generator advanced on
the device (:mod:`graspforge.optimize.rng`), counters live in device tensors, every tensor has a
fixed shape, and the state is updated in place. The host reads the counters every ``check_every``
steps (progress, grasps whose proposals went non-finite); on CUDA the step is captured once in a
CUDA graph and replayed (:mod:`graspforge.optimize.graph`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from ..config import OptimizerConfig
from .graph import StepRunner
from .rng import CounterRNG

# random-number stream of the steps (the counter tells steps apart): per grasp, K uniforms decide
# which contacts are resampled, K more pick the new candidates, one decides acceptance
_S_STEP = 1
# re-initialisations draw fresh grasps (the initialiser's own streams) at counter
# iteration * _RESET_KINDS + purpose; purpose 0 is the first grasps of the run
_RESET_KINDS = 8
_MALA_STAR_RESET, _NONFINITE_RESET = 1, 2


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
    graph: str = "off"  # CUDA graph of the step: "off", "captured", or why capture failed

    @property
    def accept_rate(self) -> float:
        return self.accepted / max(self.proposed, 1)


class GraspOptimizer:
    """Anneal a batch of B grasps (``n_objects`` x ``grasps_per_object``, object-major rows).

    ``energy(pose, contacts)`` returns (total (B,), terms); the optimiser differentiates it w.r.t. the
    pose. ``fresh(counter)`` returns fresh (pose (B, 9 + D), contacts (B, K)) for EVERY row (the
    optimiser keeps the rows it re-initialises), drawn with random counter ``counter`` (0-d int64
    device tensor). ``draw_contacts(u)`` maps uniforms (B, K) to random allowed candidates.
    ``rng`` gives each grasp its random numbers. ``project(pose)``, when given, maps every proposal
    into the feasible set (the hand's joint limits): the reference only penalises limit violations
    softly, and 9 % of its Allegro grasps on YCB ended up to 0.55 rad outside a limit.
    """

    def __init__(
        self,
        energy: EnergyFunction,
        pose: torch.Tensor,
        contacts: torch.Tensor,
        grasps_per_object: int,
        config: OptimizerConfig,
        fresh: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        draw_contacts: Callable[[torch.Tensor], torch.Tensor],
        rng: CounterRNG,
        on_reset: Callable[[torch.Tensor], None] | None = None,
        on_accept: Callable[[torch.Tensor], None] | None = None,
        record_every: int = 10,
        project: Callable[[torch.Tensor], torch.Tensor] | None = None,
        check_every: int = 25,
        cuda_graph: bool = True,
    ):
        config.validate()
        B = pose.shape[0]
        if B % grasps_per_object:
            raise ValueError("batch size must be a multiple of grasps_per_object")
        if rng.keys.shape[0] != B:
            raise ValueError(f"rng has {rng.keys.shape[0]} keys for {B} grasps")
        self.energy_fn, self.cfg = energy, config
        self.G = grasps_per_object
        self.n_obj = B // grasps_per_object
        self.fresh, self.draw_contacts, self.rng = fresh, draw_contacts, rng
        self.on_reset = on_reset
        # told which rows now sit at the last evaluated state (the energy's QP keeps warm starts)
        self.on_accept = on_accept
        self.record_every = record_every
        self.check_every = max(1, int(check_every))
        # maps a proposal back into the feasible set (joint limits); identity when None
        self.project = project
        dev = pose.device
        self.pose = pose.detach().clone()
        self.contacts = contacts.clone()
        self.k = torch.zeros(B, dtype=torch.long, device=dev)
        self.ema = torch.zeros_like(self.pose)
        # device-side counters: the step's random draws (one per step, the same for every grasp),
        # accepted proposals, MALA* resets, non-finite proposals
        self.counter = torch.ones((), dtype=torch.int64, device=dev)
        self._n_accepted = torch.zeros((), dtype=torch.int64, device=dev)
        self._n_resets = torch.zeros((), dtype=torch.int64, device=dev)
        self._nonfinite = torch.zeros(B, dtype=torch.bool, device=dev)
        self._curve: list[tuple[int, torch.Tensor]] = []
        self.stats = OptimizerStats()
        self.iteration = 0
        self._synced_at = 0
        self.energy, self.terms, self.grad = self._evaluate(self.pose, self.contacts)
        self._accepted(torch.ones(B, dtype=torch.bool, device=dev))
        self._fix_nonfinite()
        self._runner = StepRunner(self._step_body, enabled=cuda_graph and dev.type == "cuda")

    # -- pieces -------------------------------------------------------------------------------
    def _evaluate(self, pose: torch.Tensor, contacts: torch.Tensor):
        x = pose.detach().requires_grad_(True)
        with torch.enable_grad():
            total, terms = self.energy_fn(x, contacts)
            (grad,) = torch.autograd.grad(total.sum(), x)
        # contiguous: autograd may hand back a broadcast (stride-0) gradient, e.g. of a term constant
        # in some coordinates, which the in-place row updates of the state cannot write into
        return total.detach(), {k: v.detach() for k, v in terms.items()}, grad.detach().contiguous()

    def _accepted(self, mask: torch.Tensor) -> None:
        if self.on_accept is not None:
            self.on_accept(mask)

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
        var = (torch.where(finite, (e0 - mean) ** 2, torch.zeros_like(e))).sum(1, keepdim=True) / (n - 1).clamp_min(1)
        z = (e0 - mean) / var.sqrt().clamp_min(1e-12)
        z = torch.where(finite & (var > 0), z, torch.zeros_like(z))
        return z.reshape(-1)

    def step_sizes(self) -> torch.Tensor:
        """Per-grasp step size (B,): step_size * step_decay^floor(k / step_decay_every)."""
        c = self.cfg
        n = torch.div(self.k, c.step_decay_every, rounding_mode="floor").to(self.pose.dtype)
        return c.step_size * torch.pow(torch.full_like(n, c.step_decay), n)

    def temperature(self) -> torch.Tensor:
        """Per-grasp temperature (B,) float64: T0 decay^floor(k / every), times 1 + Phi(z) for MALA*."""
        c = self.cfg
        n = torch.div(self.k, c.temperature_decay_every, rounding_mode="floor").to(torch.float64)
        T = c.temperature * torch.pow(torch.full_like(n, c.temperature_decay), n)
        if c.name == "mala_star" and self.G > 1:
            phi = 0.5 * (1 + torch.erf(self.z_scores() / math.sqrt(2)))
            T = T * (1 + phi)
        return T

    def _reset_rows(self, mask: torch.Tensor, purpose: int) -> None:
        """Re-initialise the grasps in ``mask`` (B,) bool and evaluate them; no host round trip.

        The fresh grasps' random numbers are keyed by (iteration, ``purpose``): never by how many
        resets other grasps of the batch needed before, so a grasp's run does not depend on the
        batch it is in. Purposes: 1 MALA* reset, 2.. repairs of non-finite grasps (per try).
        """
        counter = torch.tensor(self.iteration * _RESET_KINDS + purpose, dtype=torch.int64, device=self.pose.device)
        pose, contacts = self.fresh(counter)
        m = mask[:, None]
        self.pose.copy_(torch.where(m, pose.to(self.pose.dtype), self.pose))
        self.contacts.copy_(torch.where(m, contacts, self.contacts))
        self.k.masked_fill_(mask, 0)
        self.ema.masked_fill_(m, 0.0)
        self._nonfinite.masked_fill_(mask, False)
        if self.on_reset is not None:
            self.on_reset(mask)
        # the batch is evaluated whole (energies of other rows are unchanged by this)
        e, terms, g = self._evaluate(self.pose, self.contacts)
        self._accepted(torch.ones_like(mask))
        self.energy.copy_(torch.where(mask, e, self.energy))
        self.grad.copy_(torch.where(m, g, self.grad))
        for key in self.terms:
            self.terms[key].copy_(torch.where(mask, terms[key], self.terms[key]))

    def _fix_nonfinite(self, tries: int = 5) -> None:
        """Re-initialise grasps whose state or last proposal was non-finite (reads one count)."""
        for attempt in range(min(tries, _RESET_KINDS - _NONFINITE_RESET)):
            bad = ~torch.isfinite(self.energy) | ~torch.isfinite(self.grad).all(-1) | self._nonfinite
            n = int(bad.sum())
            if not n:
                return
            self.stats.nan_resets += n
            self._reset_rows(bad, _NONFINITE_RESET + attempt)

    # -- the loop ------------------------------------------------------------------------------
    def _step_body(self) -> None:
        """One MALA / MALA* iteration on the device; state updated in place (graph-capturable)."""
        c = self.cfg
        B, K = self.contacts.shape
        step = self.step_sizes()
        self.ema.copy_(c.ema * self._group_mean(self.grad.square()) + (1 - c.ema) * self.ema)
        proposal = self.pose - step[:, None] * self.grad / (self.ema.sqrt() + 1e-6)
        if self.project is not None:
            proposal = self.project(proposal)
        u = self.rng.uniform(self.counter, _S_STEP, 2 * K + 1)  # one draw for the whole step
        resample = u[:, :K] < c.resample_prob
        contacts = torch.where(resample, self.draw_contacts(u[:, K:2 * K]), self.contacts)
        e_new, terms_new, g_new = self._evaluate(proposal, contacts)
        T = self.temperature()
        finite = torch.isfinite(e_new) & torch.isfinite(g_new).all(-1)
        e_old = self.energy.to(torch.float64)
        delta = (e_old - torch.where(finite, e_new, self.energy).to(torch.float64)) / T
        accept = finite & (u[:, 2 * K] < torch.exp(delta.clamp(max=0.0)))
        self._accepted(accept)
        a = accept[:, None]
        self.pose.copy_(torch.where(a, proposal.detach(), self.pose))
        self.contacts.copy_(torch.where(a, contacts, self.contacts))
        self.energy.copy_(torch.where(accept, e_new, self.energy))
        self.grad.copy_(torch.where(a, g_new, self.grad))
        for key in self.terms:
            self.terms[key].copy_(torch.where(accept, terms_new[key], self.terms[key]))
        self.k += 1
        self.counter += 1
        self._n_accepted += accept.sum()
        # a grasp whose proposal went non-finite is re-initialised at the next check
        self._nonfinite |= ~finite

    def _mala_star_reset(self) -> None:
        lag = self.z_scores() > self.cfg.reset_z
        self._n_resets += lag.sum()
        self._reset_rows(lag, _MALA_STAR_RESET)

    def sync(self) -> OptimizerStats:
        """Read the device counters into :attr:`stats` and re-initialise non-finite grasps (one host
        round trip); the loop calls it every ``check_every`` steps and at the end."""
        self._fix_nonfinite()
        self.stats.iterations = self.iteration
        self.stats.accepted = int(self._n_accepted)
        self.stats.proposed = self.iteration * self.pose.shape[0]
        self.stats.resets = int(self._n_resets)
        self.stats.graph = self._runner.status
        if self._curve:
            its = [i for i, _ in self._curve]
            vals = torch.stack([v for _, v in self._curve]).cpu().tolist()
            self.stats.energy_curve.extend(zip(its, vals))
            self._curve.clear()
        self._synced_at = self.iteration
        return self.stats

    def step(self) -> None:
        c = self.cfg
        self._runner()
        self.iteration += 1
        if (c.name == "mala_star" and self.G > 1 and self.iteration % c.reset_every == 0
                and self.iteration < c.iterations - c.reset_stop_before_end):
            self._mala_star_reset()
        if self.record_every and self.iteration % self.record_every == 0:
            self._curve.append((self.iteration, self.energy.view(self.n_obj, self.G).mean(1).detach().clone()))
        if self.iteration % self.check_every == 0:
            self.sync()

    def run(self, iterations: int | None = None, callback: Callable[["GraspOptimizer"], None] | None = None) -> OptimizerStats:
        """``iterations`` steps (default: the configured number). ``callback(self)`` runs after each
        sync, i.e. every ``check_every`` steps and at the end, with :attr:`stats` up to date."""
        n = self.cfg.iterations if iterations is None else iterations
        for _ in range(n):
            self.step()
            if callback is not None and self._synced_at == self.iteration:
                callback(self)
        if self._synced_at != self.iteration or n == 0:
            self.sync()
            if callback is not None:
                callback(self)
        return self.stats
