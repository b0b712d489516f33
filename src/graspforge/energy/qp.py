"""Batched box-constrained QP behind GraspQP's force-closure energy (METHOD.md section 3).

For B problems at once::

    V(G) = min_l P(l) = 0.5 ||G l||^2 + 0.5 eps ||l||^2   s.t.  lower <= l_i <= upper,   G (B, R, M)

(R = 6 wrench rows, M = 4K friction-cone edges).

Method: semismooth Newton on the R-dimensional dual, with exact line search. With y = G l the dual is

    D(y) = -0.5 ||y||^2 + sum_i min_{lower <= l_i <= upper} (0.5 eps l_i^2 + (G^T y)_i l_i),

a strongly concave, piecewise-quadratic function of only R = 6 variables, maximised where
y = G l(y), l(y) = clip(-G^T y / eps, lower, upper); that l is the primal solution, and
P(l(y)) - D(y) = 0.5 ||G l(y) - y||^2 measures how far from it we are. Each iteration:

* Newton direction on the current piece (variables of l(y) strictly inside the box are "free"):
  the piece maximiser solves (eps I + G_F G_F^T) y = eps G_A l_A, an R x R Cholesky solve
  (no M x M factorisation);
* exact line search along it: D restricted to the line is concave piecewise quadratic, so its
  maximiser on [0, 1] follows from the sorted breakpoints (one sort of 2M numbers).

Every step increases D, so it cannot cycle: the plain primal-dual active-set (block pivoting)
method, which is this iteration with full steps only, cycles on a large share of grasp matrices;
a primal active-set method converges but needs 2-3 times more iterations. It stops exactly when a
full step lands on its own piece (or the duality gap is below ``rtol``), typically after 3-10
iterations cold and 1-3 warm-started after a small change of G; the result always carries the
certificate ``gap`` >= P(l) - V(G).

Everything is batched torch (CPU or CUDA), float64 inside whatever the input dtype, under
``torch.no_grad()``; the result is detached. Get gradients through Danskin's theorem (see
:func:`graspforge.energy.force_closure.qp_value`). Problems whose G holds a non-finite value
are flagged (``finite`` False, ``value`` +inf, ``l`` = lower) and never touch the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import _qp_numba

__all__ = ["BoxQPResult", "solve_box_qp"]


@dataclass
class BoxQPResult:
    """Solution of a batch of box QPs (tensors detached, on G's device; floats in G's dtype).

    Attributes:
        l: (B, M) minimiser, inside [lower, upper].
        value: (B,) objective P(l) = 0.5 ||G l||^2 + 0.5 eps ||l||^2 (+inf where G is not finite).
        iterations: (B,) int64, Newton iterations (R x R solves) used per problem (0: the start
            point was already optimal).
        converged: (B,) bool, optimal within ``rtol``, or its piece was identified exactly.
        gap: (B,) duality gap value - D(y) >= value - V(G) at the final dual point y: a bound on
            the objective error that holds whether or not the problem converged.
        kkt_residual: (B,) max_i |l_i - clip(l_i - g_i / H_ii, lower, upper)| with g = H l, the
            diagonally scaled natural KKT residual (units of l; 0 at the exact solution).
        finite: (B,) bool, G was finite (problems with False were not solved).
    """

    l: torch.Tensor
    value: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    gap: torch.Tensor
    kkt_residual: torch.Tensor
    finite: torch.Tensor


def solve_box_qp(
    G: torch.Tensor,
    lower: float = 1.0,
    upper: float = 21.0,
    eps: float = 1e-4,
    *,
    warm_start: torch.Tensor | None = None,
    rtol: float = 1e-15,
    max_iter: int = 60,
) -> BoxQPResult:
    """Solve ``min 0.5 ||G l||^2 + 0.5 eps ||l||^2, lower <= l <= upper`` for every problem in a batch.

    Args:
        G: (B, R, M) floating tensor (R = 6 and M = 4K for grasp matrices), any device.
        lower, upper: scalar bounds on every l_i (METHOD.md: 1 and 21), lower < upper.
        eps: Tikhonov weight, > 0 (METHOD.md: 1e-4).
        warm_start: optional (B, M) previous solution (e.g. the last optimiser step's ``l``). The
            solver starts from whichever is better (higher dual value) of the cold start and the
            maximiser of the warm start's piece, so a poor warm start costs nothing. Rows holding a
            non-finite value start cold.
        rtol: stop when the duality gap is below ``rtol * value`` (mostly for degenerate
            problems: the usual, exact stop is a full Newton step landing on its own piece). Keep it
            tiny: the objective is flat (curvature eps) along some directions, so a gap g still
            lets l be off by sqrt(2 g / eps) there.
        max_iter: cap on Newton iterations; problems still above the tolerance get
            ``converged`` False (their ``l`` is still feasible and ``gap`` bounds its error).

    Returns:
        :class:`BoxQPResult`.
    """
    lower, upper, eps = float(lower), float(upper), float(eps)
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise ValueError(f"need finite bounds with lower < upper, got lower={lower}, upper={upper}")
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a positive finite number (it makes the QP strictly convex), got {eps}")
    if not isinstance(G, torch.Tensor) or G.ndim != 3 or not G.is_floating_point():
        raise ValueError(f"G must be a floating-point tensor of shape (B, R, M), got "
                         f"{type(G).__name__} {tuple(getattr(G, 'shape', ()))}")
    B, R, M = G.shape
    if R < 1 or M < 1:
        raise ValueError(f"G must have at least one row and one column, got shape {tuple(G.shape)}")
    if warm_start is not None and (not isinstance(warm_start, torch.Tensor) or tuple(warm_start.shape) != (B, M)):
        raise ValueError(f"warm_start must be a tensor of shape {(B, M)}, got "
                         f"{type(warm_start).__name__} {tuple(getattr(warm_start, 'shape', ()))}")
    if not (rtol >= 0 and math.isfinite(rtol)) or int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"need rtol >= 0 and an integer max_iter >= 1, got rtol={rtol}, max_iter={max_iter}")
    with torch.no_grad():
        return _solve(G, lower, upper, eps, warm_start, float(rtol), int(max_iter))


# Batched matrix-vector products as broadcast-multiply-and-sum: for these tiny matrices several
# times faster than bmm on CPU. ``work`` (shaped like G) takes the product, so that large batches
# do not allocate (and page-fault in) a fresh G-sized temporary every time.
def _mv(G: torch.Tensor, x: torch.Tensor, work: torch.Tensor | None = None) -> torch.Tensor:
    """G x for G (b, R, M), x (b, M) -> (b, R)."""
    return torch.mul(G, x.unsqueeze(1), out=work).sum(2) if work is not None else (G * x.unsqueeze(1)).sum(2)


def _tmv(G: torch.Tensor, y: torch.Tensor, work: torch.Tensor | None = None) -> torch.Tensor:
    """G^T y for G (b, R, M), y (b, R) -> (b, M)."""
    return torch.mul(G, y.unsqueeze(2), out=work).sum(1) if work is not None else (G * y.unsqueeze(2)).sum(1)


class _Batch:
    """Newton iteration state of the problems still being solved (float64).

    y (b, R) is the dual iterate, s = G^T y, z = -s / eps, l = clip(z) the primal point,
    at_lo / at_hi the fixed sets of D's piece at y. ``idx`` maps rows to the caller's batch.
    """

    def __init__(self, G, y, idx, lower, upper, eps):
        self.G, self.idx, self.lower, self.upper, self.eps = G, idx, lower, upper, eps
        self.eye = eps * torch.eye(G.shape[1], dtype=G.dtype, device=G.device)
        self.work = torch.empty_like(G)
        self.set_y(y, _tmv(G, y, self.work))
        self.iters = torch.zeros(idx.shape[0], dtype=torch.int64, device=G.device)  # set when done
        self.conv = torch.zeros(idx.shape[0], dtype=torch.bool, device=G.device)

    def set_y(self, y, s):
        self.y, self.s = y, s
        self.z = s * (-1.0 / self.eps)
        self.l = self.z.clamp(self.lower, self.upper)
        self.at_lo, self.at_hi = self.z <= self.lower, self.z >= self.upper

    def take(self, rows):
        """Keep only ``rows`` (bool or index tensor)."""
        for name in ("G", "idx", "y", "s", "z", "l", "at_lo", "at_hi", "iters", "conv"):
            setattr(self, name, getattr(self, name)[rows])
        self.work = torch.empty_like(self.G)

    def small_gap(self, rtol):
        """Duality gap 0.5 |G l - y|^2 = P(l) - D(y) below rtol P(l), (b,) bool."""
        Gl = _mv(self.G, self.l, self.work)
        P = 0.5 * (Gl.square().sum(1) + self.eps * self.l.square().sum(1))
        return 0.5 * (Gl - self.y).square().sum(1) <= rtol * P

    def piece_max(self):
        """Maximiser y_N (b, R) of the quadratic piece of D at y: the Newton point.

        (eps I + G_F G_F^T) y_N = eps G_A l_A, F the free variables and A the fixed ones (at
        their bounds in l): an R x R SPD system (condition <= 1 + |G|^2 / eps).
        """
        free = ~(self.at_lo | self.at_hi)
        S = torch.baddbmm(self.eye, torch.mul(self.G, free.unsqueeze(1), out=self.work), self.G.mT)
        r = _mv(self.G, self.l.masked_fill(free, 0.0), self.work).unsqueeze(-1) * self.eps
        return torch.cholesky_solve(r, torch.linalg.cholesky_ex(S)[0]).squeeze(-1)

    def line_search(self, u, grad_d, dd, free):
        """Exact maximiser t in [0, 1] of theta(t) = D(y + t d), (b,), for rows with theta'(1) < 0.

        theta' is continuous, piecewise linear and decreasing: theta'(t) = u . l(t) - d . y - t |d|^2
        with u = G^T d and l(t) = clip(z + t v), v = -u / eps. Its slope is -|d|^2 - sum of w_i =
        u_i^2 / eps over the variables free at t; variable i toggles between fixed and free where
        z_i + t v_i crosses a bound. With those breakpoints sorted, theta'(T_k) = theta'(0) +
        slope0 T_k + sum_{j<k} delta_j (T_k - T_j): two cumulative sums give theta' at every
        breakpoint, and the root follows on its linear segment. (Written for few operations: at
        small batch sizes their count, not their size, sets the time.)
        """
        eps, lo, hi = self.eps, self.lower, self.upper
        v = u * (-1.0 / eps)
        w = u * v  # = -u^2 / eps: change of slope when a variable becomes free
        inv = v.reciprocal()  # +-inf where v = 0: those crossings fall outside (0, 1) below
        one = torch.ones_like(dd).unsqueeze(1)
        times = torch.cat(((lo - self.z) * inv, (hi - self.z) * inv, one), 1)
        # crossing lo upwards (v > 0) or hi downwards (v < 0) frees a variable, the others fix it
        dw = w * torch.sign(v)
        delta = torch.cat((dw, -dw, 0.0 * one), 1)
        # events in (0, 1]; at t = 0 only a variable sitting exactly on a bound and moving inwards
        # (it is counted as fixed at y) changes the slope
        out = ~(((times > 0) | ((times == 0) & (delta < 0))) & (times <= 1))
        times, order = times.masked_fill(out, 1.0).sort(1)
        delta = delta.masked_fill(out, 0.0).gather(1, order)
        slope0 = ((w * free).sum(1) - dd).unsqueeze(1)
        dT = delta * times
        before = delta.cumsum(1) - delta  # sum over earlier breakpoints
        dth = grad_d.unsqueeze(1) + times * (slope0 + before) - (dT.cumsum(1) - dT)
        k = torch.argmax((dth <= 0).byte(), dim=1, keepdim=True)  # first breakpoint past the root
        t = times.gather(1, k) - dth.gather(1, k) / (slope0 + before.gather(1, k))
        return t.squeeze(1).clamp(0.0, 1.0)

    def step(self, rtol, act, it):
        """Newton iteration number ``it`` on rows ``act``; returns the rows that converged."""
        yN = self.piece_max()
        sN = _tmv(self.G, yN, self.work)
        zN = sN * (-1.0 / self.eps)
        lN = zN.clamp(self.lower, self.upper)
        d, u = yN - self.y, sN - self.s
        dd, yd = d.square().sum(1), (d * self.y).sum(1)
        full = (u * lN).sum(1) - yd - dd >= 0  # theta'(1) >= 0: the full step is the best on [0, 1]
        # a full step that lands on its own piece is the exact maximiser
        exact = full & ((zN <= self.lower) == self.at_lo).all(1) & ((zN >= self.upper) == self.at_hi).all(1)
        need = act & ~full
        y_new, s_new = yN, sN
        if bool(need.any()):
            grad_d = (u * self.l).sum(1) - yd  # theta'(0) = d . (G l - y) > 0
            free = ~(self.at_lo | self.at_hi)
            t = torch.where(need, self.line_search(u, grad_d, dd, free), torch.ones_like(dd)).unsqueeze(1)
            y_new = torch.where(full.unsqueeze(1), yN, torch.addcmul(self.y, t, d))
            s_new = torch.where(full.unsqueeze(1), sN, torch.addcmul(self.s, t, u))
        a = act.unsqueeze(1)
        self.set_y(torch.where(a, y_new, self.y), torch.where(a, s_new, self.s))
        done = act & exact
        # Near the optimum a piece can flip by rounding (a variable exactly at a bound there), or
        # the step is rounding noise: the duality gap then says when to stop.
        done = done | (act & self.small_gap(rtol))
        self.iters.masked_fill_(done, it)
        return done


def _solve(G, lower, upper, eps, warm_start, rtol, max_iter) -> BoxQPResult:
    dev, out_dtype = G.device, G.dtype
    f64 = torch.float64
    B, R, M = G.shape
    Gd = G.detach().to(f64)
    finite = torch.isfinite(Gd).flatten(1).all(1)
    Gd = Gd.masked_fill(~finite[:, None, None], 0.0)  # those rows: G = 0, solved trivially, flagged
    if dev.type == "cpu" and _qp_numba.HAVE_NUMBA and B:
        # the same iteration, problem by problem in a compiled loop (see _qp_numba)
        G_np = Gd.contiguous().numpy()
        if warm_start is not None:
            ws = warm_start.detach().to(f64).contiguous().numpy()
            use_ws = np.isfinite(ws).all(1)
        else:
            ws, use_ws = np.zeros((B, M)), np.zeros(B, bool)
        l_np, y_np = np.empty((B, M)), np.empty((B, R))
        it_np, cv_np = np.empty(B, np.int64), np.empty(B, np.bool_)
        _qp_numba.solve_batch(G_np, lower, upper, eps, np.nan_to_num(ws), use_ws, rtol, max_iter, l_np, y_np, it_np, cv_np)
        l_out, y_out = torch.from_numpy(l_np), torch.from_numpy(y_np)
        l_out.masked_fill_(~finite[:, None], lower)
        return _result(Gd, l_out, y_out, torch.from_numpy(it_np), torch.from_numpy(cv_np), finite, lower, upper, eps, out_dtype)

    # Cold start y = 0 (l = lower everywhere); the first line search then takes a damped step (a
    # full step to the all-at-lower piece maximiser overshoots badly).
    y0 = torch.zeros(B, R, dtype=f64, device=dev)
    idx = torch.arange(B, device=dev)
    batch = _Batch(Gd, y0, idx, lower, upper, eps)
    if warm_start is not None and B:
        # Start at the Newton point of the warm start's piece if its dual value is higher.
        ws = warm_start.detach().to(device=dev, dtype=f64)
        ok = torch.isfinite(ws).all(1)
        band = 1e-9 * (upper - lower)
        batch.at_lo, batch.at_hi = ok[:, None] & (ws <= lower + band), ok[:, None] & (ws >= upper - band)
        batch.l = torch.where(batch.at_hi, upper, lower)  # values of the fixed variables
        yw = batch.piece_max()
        sw = _tmv(Gd, yw, batch.work)
        lw = (sw * (-1.0 / eps)).clamp(lower, upper)
        c0 = min(max(0.0, lower), upper)  # l(0)
        better = ok & (-0.5 * yw.square().sum(1) + (0.5 * eps * lw.square() + sw * lw).sum(1)
                       > 0.5 * eps * c0 * c0 * M)  # D(yw) > D(0)
        batch.set_y(torch.where(better.unsqueeze(1), yw, y0), torch.where(better.unsqueeze(1), sw, batch.s))

    l_out = torch.full((B, M), lower, dtype=f64, device=dev)
    y_out = torch.zeros(B, R, dtype=f64, device=dev)
    iters = torch.zeros(B, dtype=torch.int64, device=dev)
    conv = torch.zeros(B, dtype=torch.bool, device=dev)

    def flush(rows):
        sel = batch.idx[rows]
        l_out[sel], y_out[sel], iters[sel], conv[sel] = batch.l[rows], batch.y[rows], batch.iters[rows], batch.conv[rows]

    act = ~batch.small_gap(rtol) if B else torch.zeros(0, dtype=torch.bool, device=dev)
    batch.conv = ~act
    n_act = int(act.sum())
    for it in range(1, max_iter + 1):
        if n_act == 0:
            break
        if 2 * n_act < act.shape[0] and act.shape[0] > 32:
            # Drop finished rows once they are the majority: later iterations cost less, and
            # compacting only at halvings keeps the bookkeeping per iteration small.
            flush(~act)
            batch.take(act)
            act = act[act]
        done = batch.step(rtol, act, it)
        batch.conv |= done
        act = act & ~done
        n_act = int(act.sum())
    batch.iters.masked_fill_(act, max_iter)  # the rows still going used every iteration
    flush(torch.ones_like(act))
    l_out.masked_fill_(~finite[:, None], lower)
    return _result(Gd, l_out, y_out, iters, conv, finite, lower, upper, eps, out_dtype)


def _result(Gd, l_out, y_out, iters, conv, finite, lower, upper, eps, out_dtype) -> BoxQPResult:
    dev, f64 = Gd.device, torch.float64
    # Final quantities from the returned l, for every problem at once.
    w = _mv(Gd, l_out)
    value = 0.5 * w.square().sum(1) + 0.5 * eps * l_out.square().sum(1)
    s_out = _tmv(Gd, y_out)  # certificate: value - V <= value - D(y_out), valid for any feasible l
    lam_y = (s_out * (-1.0 / eps)).clamp(lower, upper)
    dual = -0.5 * y_out.square().sum(1) + (0.5 * eps * lam_y.square() + s_out * lam_y).sum(1)
    gap = (value - dual).clamp_min(0.0)
    g = _tmv(Gd, w) + eps * l_out  # H l
    h = Gd.square().sum(1) + eps  # diag(H)
    kkt = (l_out - (l_out - g / h).clamp(lower, upper)).abs().amax(1)
    inf = torch.full((), float("inf"), dtype=f64, device=dev)
    return BoxQPResult(
        l=l_out.to(out_dtype),
        value=torch.where(finite, value, inf).to(out_dtype),
        iterations=iters,
        converged=conv & finite,
        gap=torch.where(finite, gap, inf).to(out_dtype),
        kkt_residual=torch.where(finite, kkt, inf).to(out_dtype),
        finite=finite,
    )
