"""Sync-free, fixed-shape torch version of the box-QP iteration in :mod:`graspforge.energy.qp`.

The same dual semismooth Newton method with exact line search as ``qp._Batch`` / ``_qp_numba``, but
written so that one call is a fixed sequence of tensor operations: exactly ``iterations`` masked
Newton iterations over the whole batch (rows that have converged stop changing), no host
synchronisation (no ``.item()``, ``bool()``, ``nonzero``, boolean-mask indexing or data-dependent
shapes), so it can be captured in a CUDA graph. Used on devices without the Triton kernel
(:mod:`._qp_triton`), and the reference that kernel is tested against. 55 tensor operations per
iteration (``torch.profiler``; 5 of them bmm), about 40 once per call.

Formulation (all float64). With eta = -y / eps (so z = -W^T y / eps = W^T eta, l = clip(z)) the
state is one vector per problem, ``zz2 = [zz, -zz]`` with ``zz = Waug^T eta = [z, sqrt(eps) eta]``
and ``Waug = [W, sqrt(eps) I]`` (R x (M + R)). The augmented columns make several quantities single
matrix products:

* ``Waug_F Waug_F^T = eps I + W_F W_F^T = S`` (the augmented columns are always "free");
* ``Waug clip(zz) = W l + eps eta = W l - y``, the dual gradient, which is both the Newton
  right-hand side (``S (eta_N - eta) = -(W l + eps eta)``, a correction, more accurate than solving
  for eta_N directly) and the duality-gap vector;
* theta'(t) of the line search is ``-eps dzz . clip(zz + t dzz)`` (the eta part unclipped), one
  batched matrix product over all breakpoints;
* storing ``-zz`` next to ``zz`` turns "at the upper bound" into the same ``<=`` test as "at the
  lower bound", and the crossing times of both bounds into one division.

Newton system: Gauss-Jordan elimination without pivoting of the SPD R x R system (pivots >= eps), 3
elementwise operations per column (18 for R = 6). Not ``torch.linalg.cholesky_ex`` /
``cholesky_solve``: on CUDA they go to MAGMA or cuSOLVER batched routines (pointer arrays, possible
internal synchronisation) that are not known to be safe to capture in a CUDA graph; and an
entry-by-entry unrolled Cholesky with substitutions would take ~130 operations on (B,) slices.

A Newton point that lands on its own piece is the exact maximiser (theta'(1) = 0 there up to
rounding): the full step is taken and the row has converged. (The numba solver also asks that
theta'(1) >= 0 as computed: the same iteration counts at the default ``rtol``; with ``rtol = 0`` this
test converges where that one can miss by rounding.)

Line search, exact and sort-free: theta' is continuous, piecewise linear and decreasing on [0, 1]
with kinks only at the breakpoints T (the 2M bound-crossing times clamped to [0, 1], plus 0 and 1;
clamping only duplicates 0 and 1). theta' is evaluated at every breakpoint at once ((B, 2M+2, M+R)
elementwise, one bmm); with t_a = max{T: theta' > 0}, t_b = min{T: theta' <= 0} no breakpoint lies
strictly between them, so the root is the linear interpolation between them. Because theta' is
monotone, theta'(t_a) = min of the positive values and theta'(t_b) = max of the others: two masked
reductions, no gather. That (B, 2M+2, M+R) tensor (~690 MB at B = 16384, M = 48) is the memory
cost of an iteration.
"""

from __future__ import annotations

import math

import torch

__all__ = ["solve_fixed"]

_BIG = 1e300  # finite stand-in for +-inf in the line search's masked reductions (keeps 0 * fill finite)


def solve_fixed(
    Wd: torch.Tensor,
    lower: float,
    upper: float,
    eps: float,
    warm_start: torch.Tensor | None = None,
    iterations: int = 8,
    rtol: float = 1e-15,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``iterations`` masked Newton iterations of the box QP for every problem of a batch.

    Args:
        Wd: (B, R, M) float64 (other floating dtypes are converted). Problems holding a non-finite
            value are solved as W = 0 (the caller flags them, as ``qp._solve`` does).
        lower, upper, eps: the QP's bounds and Tikhonov weight (checked by the caller).
        warm_start: optional (B, M) previous solution; rows holding a non-finite value start cold.
            As in ``solve_box_qp``, the start is the better (higher dual value) of the cold start
            and the maximiser of the warm start's piece.
        iterations: number of Newton iterations run (a Python int, the only thing that sets the
            sequence of operations); rows still unconverged after them get ``converged`` False.
        rtol: duality-gap tolerance, as in ``solve_box_qp``.

    Returns:
        ``(l (B, M), y (B, R), iters (B,) int64, converged (B,) bool)``, for ``qp._result``: iters is
        the iteration at which a row converged (0: the start was optimal; ``iterations`` when it did
        not converge), exactly as the numba solver with ``max_iter = iterations`` counts them.
    """
    with torch.no_grad():
        return _solve_fixed(Wd, float(lower), float(upper), float(eps), warm_start, int(iterations), float(rtol))


def _gauss_jordan(A: torch.Tensor, R: int) -> torch.Tensor:
    """Eliminate the first R columns of A (b, R, C): returns A with S^-1 applied to its columns
    (S = A[:, :, :R] symmetric positive definite, so no pivoting). 3 operations per column."""
    for j in range(R):
        p = A[:, j : j + 1, :] / A[:, j : j + 1, j : j + 1]
        A = torch.addcmul(A, A[:, :, j : j + 1], p, value=-1.0)
        A[:, j : j + 1, :] = p
    return A


def _warm_start_point(ws: torch.Tensor, zz2: torch.Tensor, Waug: torch.Tensor, Wneg2: torch.Tensor, lo_ext: torch.Tensor,
                      hi_ext: torch.Tensor, lower: float, upper: float) -> torch.Tensor:
    """The start state (B, 2N): the dual's maximiser on the piece of the warm start ``ws`` (B, M)
    (its variables at a bound held there, the others free) where its dual value beats ``zz2``'s
    (y = 0), else ``zz2``. Rows of ``ws`` with a non-finite entry keep ``zz2``."""
    B, R, N = Waug.shape
    M = N - R
    zero = zz2.new_zeros(())
    ok = torch.isfinite(ws).all(1, keepdim=True)
    band = 1e-9 * (upper - lower)
    at_lo, at_hi = ok & (ws <= lower + band), ok & (ws >= upper - band)
    fixed = torch.cat((at_lo | at_hi, torch.zeros(B, R, dtype=torch.bool, device=ws.device)), 1)
    lA = torch.where(at_hi, upper, torch.where(at_lo, lower, zero))  # (where(scalar, scalar) would be float32)
    lA = torch.cat((lA, zero.expand(B, R)), 1)
    Ww = torch.cat((torch.where(fixed[:, :, None], zero, Waug.mT), lA[:, :, None]), 2)
    x = _gauss_jordan(torch.bmm(Waug, Ww), R)[:, :, R]  # S^-1 W_A l_A = -eta_w
    zz2w = torch.bmm(Wneg2, x[:, :, None]).squeeze(2)
    zzw = zz2w[:, :N]
    Lw = torch.clamp(zzw, lo_ext, hi_ext)
    dual = (Lw * torch.sub(Lw, zzw, alpha=2.0)).sum(1)  # 2 D(y_w) / eps
    c0 = min(max(0.0, lower), upper)
    better = ok[:, 0] & (dual > c0 * c0 * M)  # D(y_w) > D(0)
    return torch.where(better[:, None], zz2w, zz2)


def _exact_step(zz2: torch.Tensor, D2: torch.Tensor, bnd2_cross: torch.Tensor, X: torch.Tensor, P: torch.Tensor,
                lo_ext: torch.Tensor, hi_ext: torch.Tensor, fill_a: torch.Tensor, fill_b: torch.Tensor, M: int) -> torch.Tensor:
    """Exact line search along ``D2`` = [dzz, -dzz] (B, 2N) from ``zz2``: the step t (B,) in [0, 1]
    where theta'(t) = -eps dzz . clip(zz + t dzz) changes sign (module docstring). ``X`` (B, 2, K)
    holds the breakpoints T and g(T) (T's last two entries 0 and 1), ``P`` (B, K, N) the clipped
    points: buffers filled in place."""
    B, N = zz2.shape[0], zz2.shape[1] // 2
    T, g = X[:, 0], X[:, 1]
    T_cross = T[:, : 2 * M]
    torch.div(bnd2_cross - zz2.view(B, 2, N)[:, :, :M], D2.view(B, 2, N)[:, :, :M], out=T_cross.view(B, 2, M))
    T_cross.nan_to_num_(0.0).clamp_(0.0, 1.0)  # 0 / 0 where a variable sits on a bound and stays
    dzz = D2[:, :N]
    torch.addcmul(zz2[:, None, :N], T[:, :, None], dzz[:, None, :], out=P)
    P.clamp_(lo_ext, hi_ext)
    torch.bmm(P, dzz[:, :, None], out=g[:, :, None])  # g(T) (B, K), increasing in t
    up = g < 0  # theta' > 0: the maximiser lies further on
    ta_ga = torch.where(up[:, None, :], X, fill_a).amax(2)  # last breakpoint going up, its g
    tb_gb = torch.where(up[:, None, :], fill_b, X).amin(2)  # first breakpoint not going up
    ga = ta_ga[:, 1]
    return torch.lerp(ta_ga[:, 0], tb_gb[:, 0], ga / (ga - tb_gb[:, 1]))


def _solve_fixed(Wd, lower, upper, eps, warm_start, iterations, rtol):
    f64 = torch.float64
    B, R, M = Wd.shape
    N = M + R
    K = 2 * M + 2
    dev = Wd.device
    W = Wd.detach().to(f64)
    finite = torch.isfinite(W).flatten(1).all(1)
    W = torch.where(finite[:, None, None], W, 0.0)
    se = math.sqrt(eps)
    inf = float("inf")

    # ---- per-call constants (fill kernels only: nothing is copied from the host) ----
    Waug = torch.cat((W, torch.eye(R, dtype=f64, device=dev).mul_(se).expand(B, R, R)), 2)  # (B, R, N)
    WT = Waug.mT  # (B, N, R)
    Wneg2 = torch.cat((-WT, WT), 1)  # (B, 2N, R): bmm(Wneg2, x) = [zz, -zz] of eta = -x
    lo_ext = torch.full((N,), lower, dtype=f64, device=dev)
    lo_ext[M:] = -inf
    hi_ext = torch.full((N,), upper, dtype=f64, device=dev)
    hi_ext[M:] = inf
    bnd2 = torch.cat((lo_ext, -hi_ext))  # zz2 <= bnd2: [at lower bound, at upper bound]
    bnd2_cross = bnd2.view(2, N)[:, :M]  # (2, M) the finite bounds
    keep_l = torch.ones(N, dtype=f64, device=dev)
    keep_l[M:] = 0.0  # [l, sqrt(eps) eta] * keep_l = [l, 0]
    fill_a = torch.full((2, 1), -_BIG, dtype=f64, device=dev)
    fill_a[0] = 0.0  # (t_a, g_a) where no breakpoint qualifies
    fill_b = torch.full((2, 1), _BIG, dtype=f64, device=dev)
    fill_b[0] = 1.0  # (t_b, g_b)
    X = torch.empty(B, 2, K, dtype=f64, device=dev)  # line search: [breakpoints T, g(T)]
    X[:, 0, 2 * M] = 0.0  # the last two breakpoints stay 0 and 1
    X[:, 0, 2 * M + 1] = 1.0

    # P (B, K, N) = clip(zz + T dzz) is by far the largest tensor: one buffer for all iterations
    # (on the CPU a fresh one per iteration spends more time in page faults than in arithmetic)
    P = torch.empty(B, K, N, dtype=f64, device=dev)
    zero = torch.zeros((), dtype=f64, device=dev)
    work = torch.empty(B, N, R + 2, dtype=f64, device=dev)  # [Waug_F^T | [l, sqrt(eps) eta] | [l, 0]]
    Lz = work[:, :, R]

    def state(zz2):
        """Pieces (B, 2N) and the augmented system A = [S | W l + eps eta | W l] at the point zz2 (work
        is filled in place)."""
        pcs = zz2 <= bnd2
        torch.where((pcs[:, :N] | pcs[:, N:])[:, :, None], zero, WT, out=work[:, :, :R])
        torch.clamp(zz2[:, :N], lo_ext, hi_ext, out=Lz)
        torch.mul(Lz, keep_l, out=work[:, :, R + 1])
        return torch.bmm(Waug, work), pcs  # (B, R, R + 2)

    def small_gap(A):
        """0.5 |W l - y|^2 <= rtol P(l), P(l) = 0.5 (|W l|^2 + eps |l|^2)."""
        E = A[:, :, R:]  # (B, R, 2): [W l + eps eta, W l]
        Q = torch.bmm(E.mT, E)  # |W l - y|^2 and |W l|^2 on the diagonal
        WL = work[:, :, R:]
        Ql = torch.bmm(WL.mT, WL)  # |l|^2 at [1, 1]
        return Q[:, 0, 0] <= torch.add(Q[:, 1, 1], Ql[:, 1, 1], alpha=eps).mul_(rtol)

    # ---- start: y = 0, or the maximiser of the warm start's piece if its dual value is higher ----
    zz2 = torch.zeros(B, 2 * N, dtype=f64, device=dev)
    if warm_start is not None:
        zz2 = _warm_start_point(warm_start.detach().to(device=dev, dtype=f64), zz2, Waug, Wneg2, lo_ext, hi_ext, lower, upper)

    A, pcs = state(zz2)
    conv = small_gap(A)
    n_conv = torch.zeros(B, dtype=torch.int64, device=dev)  # iterations started already converged
    for _ in range(iterations):
        n_conv += conv
        x = _gauss_jordan(A, R)[:, :, R]  # eta - eta_N
        D2 = torch.bmm(Wneg2, x[:, :, None]).squeeze(2)  # [dzz, -dzz]
        # A Newton point on its own piece is the exact maximiser (theta'(1) = 0 there up to rounding):
        # take the full step whatever the line search says, and stop.
        exact = ((zz2 + D2 <= bnd2) == pcs).all(1)
        t = _exact_step(zz2, D2, bnd2_cross, X, P, lo_ext, hi_ext, fill_a, fill_b, M)
        t = torch.where(exact, 1.0, t)
        t = torch.where(conv, 0.0, t)  # converged rows stay put (bit for bit)
        zz2 = torch.addcmul(zz2, t[:, None], D2)  # t = 1: exactly zz2 + D2, the Newton point
        A, pcs = state(zz2)
        # Near the optimum a piece can flip by rounding, or the step is rounding noise: the duality
        # gap then says when to stop.
        conv = conv | exact | small_gap(A)
    l = Lz[:, :M].contiguous()
    y = zz2[:, M:N] * (-se)
    return l, y, iterations - n_conv, conv
