"""Batched box-constrained QP behind GraspQP's force-closure energy (METHOD.md section 3).

For B problems at once::

    V(W) = min_l P(l) = 0.5 ||W l||^2 + 0.5 eps ||l||^2   s.t.  lower <= l_i <= upper,   W (B, R, M)

(R = 6 wrench rows, M = 4K friction-cone edges).

Method: semismooth Newton on the R-dimensional dual, with exact line search. With y = W l the dual is

    D(y) = -0.5 ||y||^2 + sum_i min_{lower <= l_i <= upper} (0.5 eps l_i^2 + (W^T y)_i l_i),

a strongly concave, piecewise-quadratic function of only R = 6 variables, maximised where
y = W l(y), l(y) = clip(-W^T y / eps, lower, upper); that l is the primal solution, and
P(l(y)) - D(y) = 0.5 ||W l(y) - y||^2 measures how far from it we are. Each iteration:

* Newton direction on the current piece (variables of l(y) strictly inside the box are "free"):
  the piece maximiser solves (eps I + W_F W_F^T) y = eps W_A l_A, an R x R Cholesky solve
  (no M x M factorisation);
* exact line search along it: D restricted to the line is concave piecewise quadratic, so its
  maximiser on [0, 1] follows from its slope at the 2M breakpoints (sorted in the numba kernel;
  all evaluated at once, no sort, in the fixed-shape torch and Triton versions).

Every step increases D, so it cannot cycle: the plain primal-dual active-set (block pivoting)
method, which is this iteration with full steps only, cycles on a large share of grasp matrices;
a primal active-set method converges but needs 2-3 times more iterations. It stops exactly when a
full step lands on its own piece (or the duality gap is below ``rtol``), typically after 3-10
iterations cold and 1-3 warm-started after a small change of W; the result always carries the
certificate ``gap`` >= P(l) - V(W).

Three implementations of the same iteration (:mod:`graspforge.backend` picks): a numba kernel on the
CPU, a Triton kernel (one program per problem) on GPUs, and fixed-shape batched torch elsewhere
(:mod:`._qp_fixed`), all float64 inside whatever the input dtype, under ``torch.no_grad()``; the
result is detached. Get gradients through Danskin's theorem (see
:func:`graspforge.energy.force_closure.qp_value`). Problems whose W holds a non-finite value
are flagged (``finite`` False, ``value`` +inf, ``l`` = lower) and never touch the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..backend import kernel_backend
from . import _qp_fixed, _qp_numba, _qp_triton

__all__ = ["BoxQPResult", "solve_box_qp"]


@dataclass
class BoxQPResult:
    """Solution of a batch of box QPs (tensors detached, on W's device; floats in W's dtype).

    Attributes:
        l: (B, M) minimiser, inside [lower, upper].
        value: (B,) objective P(l) = 0.5 ||W l||^2 + 0.5 eps ||l||^2 (+inf where W is not finite).
        iterations: (B,) int64, Newton iterations (R x R solves) used per problem (0: the start
            point was already optimal).
        converged: (B,) bool, optimal within ``rtol``, or its piece was identified exactly.
        gap: (B,) duality gap value - D(y) >= value - V(W) at the final dual point y: a bound on
            the objective error that holds whether or not the problem converged.
        kkt_residual: (B,) max_i |l_i - clip(l_i - g_i / H_ii, lower, upper)| with g = H l, the
            diagonally scaled natural KKT residual (units of l; 0 at the exact solution).
        finite: (B,) bool, W was finite (problems with False were not solved).
    """

    l: torch.Tensor
    value: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    gap: torch.Tensor
    kkt_residual: torch.Tensor
    finite: torch.Tensor


def solve_box_qp(
    W: torch.Tensor,
    lower: float = 1.0,
    upper: float = 21.0,
    eps: float = 1e-4,
    *,
    warm_start: torch.Tensor | None = None,
    rtol: float = 1e-15,
    max_iter: int = 60,
    fixed_iterations: int | None = None,
) -> BoxQPResult:
    """Solve ``min 0.5 ||W l||^2 + 0.5 eps ||l||^2, lower <= l <= upper`` for every problem in a batch.

    Args:
        W: (B, R, M) floating tensor (R = 6 and M = 4K for grasp matrices), any device.
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
        fixed_iterations: on the torch backend (no numba on the CPU, GPUs without Triton) run
            exactly this many masked iterations of the whole batch instead of ``max_iter`` (no
            host round trip can tell when all problems are done). The numba solver and the Triton
            kernel stop each problem when it converges, within ``max_iter``.

    Returns:
        :class:`BoxQPResult`.
    """
    lower, upper, eps = float(lower), float(upper), float(eps)
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise ValueError(f"need finite bounds with lower < upper, got lower={lower}, upper={upper}")
    if not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a positive finite number (it makes the QP strictly convex), got {eps}")
    if not isinstance(W, torch.Tensor) or W.ndim != 3 or not W.is_floating_point():
        raise ValueError(f"W must be a floating-point tensor of shape (B, R, M), got "
                         f"{type(W).__name__} {tuple(getattr(W, 'shape', ()))}")
    B, R, M = W.shape
    if R < 1 or M < 1:
        raise ValueError(f"W must have at least one row and one column, got shape {tuple(W.shape)}")
    if warm_start is not None and (not isinstance(warm_start, torch.Tensor) or tuple(warm_start.shape) != (B, M)):
        raise ValueError(f"warm_start must be a tensor of shape {(B, M)}, got "
                         f"{type(warm_start).__name__} {tuple(getattr(warm_start, 'shape', ()))}")
    if not (rtol >= 0 and math.isfinite(rtol)) or int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"need rtol >= 0 and an integer max_iter >= 1, got rtol={rtol}, max_iter={max_iter}")
    if fixed_iterations is not None and (int(fixed_iterations) != fixed_iterations or fixed_iterations < 1):
        raise ValueError(f"fixed_iterations must be an integer >= 1, got {fixed_iterations}")
    with torch.no_grad():
        return _solve(W, lower, upper, eps, warm_start, float(rtol), int(max_iter),
                      int(fixed_iterations) if fixed_iterations is not None else int(max_iter))


# Batched matrix-vector products as broadcast-multiply-and-sum: for these tiny matrices several
# times faster than bmm on CPU. ``work`` (shaped like W) takes the product, so that large batches
# do not allocate (and page-fault in) a fresh W-sized temporary every time.
def _mv(W: torch.Tensor, x: torch.Tensor, work: torch.Tensor | None = None) -> torch.Tensor:
    """W x for W (b, R, M), x (b, M) -> (b, R)."""
    return torch.mul(W, x.unsqueeze(1), out=work).sum(2) if work is not None else (W * x.unsqueeze(1)).sum(2)


def _tmv(W: torch.Tensor, y: torch.Tensor, work: torch.Tensor | None = None) -> torch.Tensor:
    """W^T y for W (b, R, M), y (b, R) -> (b, M)."""
    return torch.mul(W, y.unsqueeze(2), out=work).sum(1) if work is not None else (W * y.unsqueeze(2)).sum(1)


def _solve(W, lower, upper, eps, warm_start, rtol, max_iter, fixed_iterations) -> BoxQPResult:
    dev, out_dtype = W.device, W.dtype
    f64 = torch.float64
    B, R, M = W.shape
    Wd = W.detach().to(f64)
    finite = torch.isfinite(Wd).flatten(1).all(1)
    Wd = Wd.masked_fill(~finite[:, None, None], 0.0)  # those rows: W = 0, solved trivially, flagged
    backend = kernel_backend(dev)
    if backend == "numba" and _qp_numba.HAVE_NUMBA and B:
        # the iteration problem by problem in a compiled loop, each to convergence (see _qp_numba)
        W_np = Wd.contiguous().numpy()
        if warm_start is not None:
            ws = warm_start.detach().to(f64).contiguous().numpy()
            use_ws = np.isfinite(ws).all(1)
        else:
            ws, use_ws = np.zeros((B, M)), np.zeros(B, bool)
        l_np, y_np = np.empty((B, M)), np.empty((B, R))
        it_np, cv_np = np.empty(B, np.int64), np.empty(B, np.bool_)
        _qp_numba.solve_batch(W_np, lower, upper, eps, np.nan_to_num(ws), use_ws, rtol, max_iter, l_np, y_np, it_np, cv_np)
        l_out, y_out = torch.from_numpy(l_np), torch.from_numpy(y_np)
        iters, conv = torch.from_numpy(it_np), torch.from_numpy(cv_np)
    else:
        # fixed shapes, no host round trip (CUDA graphs): one Triton program per problem on GPUs,
        # each stopping at convergence; elsewhere ``fixed_iterations`` masked batched iterations
        ws = None if warm_start is None else warm_start.detach().to(device=dev, dtype=f64)
        if backend == "triton" and _qp_triton.HAVE_TRITON:
            l_out, y_out, iters, conv = _qp_triton.solve_fixed(Wd, lower, upper, eps, ws, max_iter, rtol)
        else:
            l_out, y_out, iters, conv = _qp_fixed.solve_fixed(Wd, lower, upper, eps, ws, fixed_iterations, rtol)
    l_out = l_out.masked_fill(~finite[:, None], lower)
    return _result(Wd, l_out, y_out, iters, conv, finite, lower, upper, eps, out_dtype)


def _result(Wd, l_out, y_out, iters, conv, finite, lower, upper, eps, out_dtype) -> BoxQPResult:
    dev, f64 = Wd.device, torch.float64
    # Final quantities from the returned l, for every problem at once.
    w = _mv(Wd, l_out)
    value = 0.5 * w.square().sum(1) + 0.5 * eps * l_out.square().sum(1)
    s_out = _tmv(Wd, y_out)  # certificate: value - V <= value - D(y_out), valid for any feasible l
    lam_y = (s_out * (-1.0 / eps)).clamp(lower, upper)
    dual = -0.5 * y_out.square().sum(1) + (0.5 * eps * lam_y.square() + s_out * lam_y).sum(1)
    gap = (value - dual).clamp_min(0.0)
    g = _tmv(Wd, w) + eps * l_out  # H l
    h = Wd.square().sum(1) + eps  # diag(H)
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
