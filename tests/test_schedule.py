"""MALA / MALA* schedules against METHOD.md s. 4, with references computed here (numpy / scipy):
the step-size and EMA sequence, the (population-scaled) temperature seen through every Metropolis
decision, the stationary acceptance rate on a Gaussian target, and where the MALA* resets stop.

Each test also checks that a plausible wrong schedule (an off-by-one decay counter, swapped EMA
weights, a missing 1 + Phi(z)) would have failed it, so a pass means something.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from graspforge.config import OptimizerConfig
from graspforge.optimize.mala import GraspOptimizer
from graspforge.optimize.rng import CounterRNG


def test_config_defaults_are_method_md_constants():
    """The defaults the tests below rely on are METHOD.md s. 4's reference values."""
    c = OptimizerConfig()
    assert (c.iterations, c.step_size, c.step_decay, c.step_decay_every) == (7000, 0.005, 0.95, 50)
    assert (c.temperature, c.temperature_decay, c.temperature_decay_every) == (18.0, 0.95, 30)
    assert (c.ema, c.resample_prob, c.reset_every, c.reset_stop_before_end, c.reset_z) == (0.98, 0.4, 600, 1200, 1.0)


class _RecordingRNG(CounterRNG):
    """The real counter-based generator; remembers the uniforms of the last ``uniform`` call (the
    optimiser's step draws once per step) so the test can replay the Metropolis decisions."""

    last: torch.Tensor | None = None

    def uniform(self, counter, stream, *tail):  # noqa: D102 - same contract as CounterRNG.uniform
        u = super().uniform(counter, stream, *tail)
        self.last = u.clone()
        return u


def _optimizer(energy, pose: torch.Tensor, contacts: torch.Tensor, G: int, cfg: OptimizerConfig, draw=None,
               rng: CounterRNG | None = None, on_reset=None) -> GraspOptimizer:
    B = pose.shape[0]
    rng = rng if rng is not None else CounterRNG(torch.arange(B))
    # re-initialisation hands back the starting state (only the reset test resets)
    fresh = lambda counter: (pose.clone(), contacts.clone())  # noqa: E731
    draw = draw if draw is not None else (lambda u: torch.zeros_like(contacts))
    return GraspOptimizer(energy, pose, contacts, G, cfg, fresh, draw, rng, on_reset=on_reset, cuda_graph=False)


# -- step size and EMA --------------------------------------------------------------------------

def _linear_trajectory(a: np.ndarray, x0: np.ndarray, G: int, steps: int, s0=0.005, decay=0.95, every=50,
                       w_new=0.98, k_shift=0, per_object=True) -> np.ndarray:
    """METHOD.md's proposal on E = a . x (gradient a, every proposal downhill, so always accepted):
    v <- w_new mean_obj(a^2) + (1 - w_new) v (v0 = 0); x <- x - s_k a / (sqrt(v) + 1e-6),
    s_k = s0 decay^floor(k / every), k = 0, 1, ... Returns positions (steps + 1, B, P)."""
    B, P = a.shape
    g2 = a**2
    mean = g2.reshape(B // G, G, P).mean(1).repeat(G, 0) if per_object else np.broadcast_to(g2.mean(0), g2.shape)
    x, v, out = x0.copy(), np.zeros_like(a), [x0.copy()]
    for k in range(steps):
        v = w_new * mean + (1 - w_new) * v
        s = s0 * decay ** ((k + k_shift) // every)
        x = x - s * a / (np.sqrt(v) + 1e-6)
        out.append(x.copy())
    return np.stack(out)


def test_step_size_and_ema_follow_method_md():
    """x' = x - s_k g / (sqrt(v) + 1e-6), v = 0.98 mean_object(g^2) + 0.02 v, s_k = 0.005 0.95^floor(k/50),
    at every one of 160 steps (three decays), with gradients that differ per grasp and per object."""
    G, n_obj, P, steps = 3, 2, 2, 160
    B = G * n_obj
    a = np.array([[1.0, -2.0], [0.5, 3.0], [2.0, 0.1], [10.0, -0.3], [-4.0, 1.0], [0.2, 0.2]])
    x0 = np.linspace(-1, 1, B * P).reshape(B, P)
    a_t = torch.as_tensor(a)

    def energy(pose, contacts):
        e = (pose * a_t).sum(-1)
        return e, {"E_fc": e}

    cfg = OptimizerConfig(name="mala", iterations=steps, resample_prob=0.0)
    opt = _optimizer(energy, torch.as_tensor(x0), torch.zeros(B, 1, dtype=torch.long), G, cfg)
    got = [opt.pose.numpy().copy()]
    for _ in range(steps):
        opt.step()
        got.append(opt.pose.numpy().copy())
    got = np.stack(got)
    want = _linear_trajectory(a, x0, G, steps)
    tol = 1e-9  # float64 arithmetic on displacements of ~0.5 m
    np.testing.assert_allclose(got - x0, want - x0, rtol=0, atol=tol)
    assert opt.sync().accepted == steps * B  # every proposal went downhill
    # the same check rejects plausible wrong schedules by far more than its tolerance
    wrong = {
        "decay counter one step early": _linear_trajectory(a, x0, G, steps, k_shift=1),
        "EMA weights swapped": _linear_trajectory(a, x0, G, steps, w_new=0.02),
        "EMA over the whole batch": _linear_trajectory(a, x0, G, steps, per_object=False),
        "no step decay": _linear_trajectory(a, x0, G, steps, decay=1.0),
    }
    for name, traj in wrong.items():
        assert np.abs(traj - want).max() > 1000 * tol, name


# -- temperature through the Metropolis decisions ---------------------------------------------

def _temperature(k: int, energies: np.ndarray, G: int, cfg: OptimizerConfig, star: bool, k_shift: int = 0,
                 factor: str = "1+Phi(z)") -> np.ndarray:
    """METHOD.md: T_k = T0 decay^floor(k/every); MALA*: times 1 + Phi(z_i), z_i the grasp's energy
    z-score among its object's grasps (sample std, n - 1)."""
    T = cfg.temperature * cfg.temperature_decay ** ((k + k_shift) // cfg.temperature_decay_every)
    T = np.full(energies.shape, T)
    if star and factor != "none":
        e = energies.reshape(-1, G)
        z = ((e - e.mean(1, keepdims=True)) / e.std(1, ddof=1, keepdims=True)).reshape(-1)
        T = T * (1 + ndtr(-z if factor == "1+Phi(-z)" else z))
    return T


@pytest.mark.parametrize("name", ["mala", "mala_star"])
def test_every_metropolis_decision_uses_method_md_temperature(name):
    """Energies depend on the contact only (E_i = b_i + d_i c, c in 0..4; zero pose gradient), every
    contact is resampled each step, and the test replays all 96 x 60 accept/reject decisions with
    min(1, exp((E - E') / T)) and METHOD.md's T (here decaying fast: 18 x 0.5^floor(k/7), so 60
    steps sweep T from 18 to 0.07). Each step's contacts must match the replay exactly."""
    star = name == "mala_star"
    G, n_obj, M, steps = 48, 2, 5, 60
    B = G * n_obj
    cfg = OptimizerConfig(name=name, iterations=steps, resample_prob=1.0, temperature_decay=0.5,
                          temperature_decay_every=7, reset_every=10_000)
    gen = np.random.default_rng(7)
    base = gen.uniform(0, 5, B)
    slope = np.exp(gen.uniform(np.log(0.01), np.log(40), B))  # energy per contact step: 0.01 .. 40
    base_t, slope_t = torch.as_tensor(base), torch.as_tensor(slope)

    def energy(pose, contacts):
        e = base_t + slope_t * contacts[:, 0].to(torch.float64) + 0.0 * pose.sum(-1)
        return e, {"E_fc": e}

    draw = lambda u: (u * M).to(torch.int64).clamp(max=M - 1)  # noqa: E731 - uniform candidate
    rng = _RecordingRNG(torch.arange(B))
    c = gen.integers(0, M, B)
    opt = _optimizer(energy, torch.zeros(B, 2, dtype=torch.float64), torch.as_tensor(c)[:, None], G, cfg, draw, rng)
    alternatives = {"T decays one step early": dict(k_shift=1), "no 1 + Phi(z)": dict(factor="none"),
                    "1 + Phi(-z)": dict(factor="1+Phi(-z)"), "no decay": None}
    mismatches = {k: 0 for k in alternatives}
    uphill = 0
    for k in range(steps):
        e_old = base + slope * c
        opt.step()
        u = rng.last.numpy()
        # the step's uniforms per grasp: K resample decisions, K candidate picks, one Metropolis draw
        c_new = np.minimum((u[:, 1] * M).astype(np.int64), M - 1)
        e_new = base + slope * c_new

        def decide(T):
            return u[:, 2] < np.exp(np.minimum(0.0, (e_old - e_new) / T))

        accept = decide(_temperature(k, e_old, G, cfg, star))
        for alt, kw in alternatives.items():
            T_alt = np.full(B, cfg.temperature) if kw is None else _temperature(k, e_old, G, cfg, star, **kw)
            mismatches[alt] += int(np.sum(decide(T_alt) != accept))
        uphill += int(np.sum(e_new > e_old))
        c = np.where(accept, c_new, c)
        np.testing.assert_array_equal(opt.contacts[:, 0].numpy(), c, err_msg=f"step {k}")
        np.testing.assert_allclose(opt.energy.numpy(), base + slope * c, rtol=1e-12)
    assert uphill > steps * B // 4  # plenty of decisions were real (uphill) ones
    # each wrong temperature would have changed some decisions, so the replay above would have failed
    for alt, n in mismatches.items():
        if alt.startswith("no 1 + Phi") or alt.startswith("1 + Phi"):
            assert (n > 0) == star, alt  # the factor only exists in MALA*
        else:
            assert n > 0, alt


# -- acceptance rate on a Gaussian target --------------------------------------------------------

def _stationary_acceptance(pi: np.ndarray) -> float:
    """Acceptance rate of the Metropolis chain with uniform independent proposals at stationarity:
    sum_c pi(c) sum_c' (1/M) min(1, pi(c')/pi(c)) = (1/M) sum_{c,c'} min(pi(c), pi(c'))."""
    return float(np.minimum(pi[:, None], pi[None, :]).sum() / len(pi))


def test_acceptance_rate_on_a_gaussian_target():
    """MALA's proposal moves the pose deterministically; its randomness is the contact resampling.
    With a zero pose gradient, every contact resampled uniformly over M = 9 values and a constant
    T, the chain over c targets pi(c) ~ exp(-E(c) / T) = a discrete Gaussian N(4, 1.5^2). Its
    stationary acceptance rate and distribution are known in closed form (above)."""
    M, sigma, T = 9, 1.5, 18.0
    B, burn, measure = 4000, 40, 100
    cvals = np.arange(M)
    E = T * (cvals - 4.0) ** 2 / (2 * sigma**2)
    pi = np.exp(-E / T)
    pi /= pi.sum()
    want = _stationary_acceptance(pi)
    E_t = torch.as_tensor(E)

    def energy(pose, contacts):
        e = E_t[contacts[:, 0]] + 0.0 * pose.sum(-1)
        return e, {"E_fc": e}

    cfg = OptimizerConfig(name="mala", iterations=burn + measure, resample_prob=1.0, temperature=T, temperature_decay=1.0)
    draw = lambda u: (u * M).to(torch.int64).clamp(max=M - 1)  # noqa: E731
    opt = _optimizer(energy, torch.zeros(B, 1, dtype=torch.float64), torch.full((B, 1), 4), B, cfg, draw)
    opt.run(burn)
    accepted0 = opt.stats.accepted
    opt.run(measure)
    rate = (opt.stats.accepted - accepted0) / (measure * B)
    # 400k decisions: binomial standard error ~7e-4; the chain mixes in a few steps
    tol = 0.005
    assert rate == pytest.approx(want, abs=tol)
    hist = np.bincount(opt.contacts[:, 0].numpy(), minlength=M) / B
    assert np.abs(hist - pi).max() < 0.03  # ~4 standard errors of a 4000-sample histogram bin
    # the rate pins the temperature down: T off by a factor 2 changes it by far more than tol
    for T_wrong in (T / 2, 2 * T):
        p = np.exp(-E / T_wrong)
        assert abs(_stationary_acceptance(p / p.sum()) - want) > 5 * tol


# -- where the MALA* resets stop --------------------------------------------------------------

@pytest.mark.parametrize("iterations,every,stop", [(7000, 600, 1200), (100, 10, 30), (100, 10, 25), (100, 7, 31)])
def test_mala_star_resets_stop_reset_stop_before_end_steps_before_the_end(iterations, every, stop):
    """METHOD.md: resets every ``every`` iterations until ``stop`` before the end. One grasp per
    object always lags (its energy is fixed by its row), so every reset round re-initialises it:
    rounds at every multiple of ``every`` while more than ``stop`` steps remain, none later."""
    G, n_obj = 8, 2
    B = G * n_obj
    base = torch.tensor(([1000.0] + list(np.linspace(0, 1, G - 1))) * n_obj, dtype=torch.float64)

    def energy(pose, contacts):
        e = base + 0.0 * pose.sum(-1)
        return e, {"E_fc": e}

    rounds: list[tuple[int, list[int]]] = []
    cfg = OptimizerConfig(name="mala_star", iterations=iterations, reset_every=every, reset_stop_before_end=stop)
    holder: dict[str, GraspOptimizer] = {}
    opt = _optimizer(energy, torch.zeros(B, 1, dtype=torch.float64), torch.zeros(B, 1, dtype=torch.long), G, cfg,
                     on_reset=lambda mask: rounds.append((holder["opt"].iteration, torch.nonzero(mask).flatten().tolist())))
    holder["opt"] = opt
    opt.run()
    want = [i for i in range(1, iterations + 1) if i % every == 0 and iterations - i > stop]
    assert [i for i, _ in rounds] == want
    assert all(rows == [0, G] for _, rows in rounds)  # exactly the laggard of each object
    assert opt.stats.resets == 2 * len(want)
    assert want[-1] + every >= iterations - stop  # resets ran right up to the cut-off
    if (iterations, every, stop) == (7000, 600, 1200):
        assert want[-1] == 5400 and len(want) == 9
