"""Triton (GPU) kernel of the box-QP iteration in :mod:`graspforge.energy.qp`: one program per problem.

The same dual semismooth Newton method with exact line search as :mod:`._qp_fixed` (see there and
``qp``), in float64, for ``min 0.5 |W l|^2 + 0.5 eps |l|^2, lower <= l <= upper``. Per problem
everything lives in registers: W (R x M, padded to BR x BM, powers of two with BR > R), the dual
point eta = -y / eps (R), z = W^T eta (M), l = clip(z). Each Newton iteration

* builds the augmented system [S | W l + eps eta], S = eps I + W_F W_F^T, column by column, and
  eliminates it by Gauss-Jordan without pivoting (S is SPD with pivots >= eps); the Newton point is
  eta_N = eta - S^-1 (W l + eps eta);
* if eta_N lands on its own piece it is the exact maximiser: full step, converged;
* else finds the exact line-search step without sorting: theta'(t) = -eps g(t) with
  g(t) = dz . clip(z + t dz) + eps deta . (eta + t deta), evaluated at 0, 1 and the 2M
  bound-crossing times clamped to [0, 1] (in tiles of LS_CHUNK x BM); the root lies between the last
  breakpoint with g < 0 and the first with g >= 0, where g is linear;
* stops when the duality gap is below ``rtol`` (or the step was exact).

A program stops iterating once its problem has converged (the result is the same as that of
``iterations`` masked iterations: converged problems no longer change), so a batch costs about what
its slowest problem needs, within the cap. Nothing is synchronised with the host and the outputs
have fixed shapes: the wrapper can be called inside a CUDA graph capture (once compiled: call it once
before capturing, as any Triton kernel).

Scalars are float64 arguments (annotated), so eps, rtol and the bounds are not rounded to float32.
Tested against :mod:`._qp_fixed` and the numba solver in Triton's interpreter (``TRITON_INTERPRET=1``)
on the CPU, and compiled for sm_90 without a GPU (``triton.compile``).
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except Exception:  # pragma: no cover - triton is optional (never in the CPU wheel of torch)
    HAVE_TRITON = False

__all__ = ["HAVE_TRITON", "solve_fixed"]

# Launch parameters (module globals, read at every call; untuned on hardware). One problem per
# program and one warp: every reduction stays inside the warp (shuffles, no shared-memory barriers),
# and a problem is only ~300 numbers. The largest register tiles are W (8 x 64) and the line-search
# tile (LS_CHUNK x 64) float64; loops are not unrolled, to keep registers down. Compiled for sm_90a
# (Triton 3.6, ptxas -v, no GPU needed): 168 registers, no spills with these values (4 warps: 128;
# LS_CHUNK = 16 on one warp: 240). LS_CHUNK must be a power of two.
NUM_WARPS = 1
LS_CHUNK = 8


if HAVE_TRITON:

    @triton.jit
    def _newton_solve(W, free, v, eta, eps, ri, ci, R: tl.constexpr):
        """x = S^-1 (W v + eps eta), S = eps I + W_F W_F^T (F: ``free``), by Gauss-Jordan on the
        (BR, BR) augmented matrix [S | W v + eps eta] (BR > R; padded rows and columns are 0)."""
        WF = tl.where(free[None, :], W, 0.0)
        # column by column (a (BR, BR, BM) broadcast product would hold 8x more registers)
        A = tl.where((ri[:, None] == ci[None, :]) & (ci[None, :] < R), eps, 0.0)
        A += tl.where(ci[None, :] == R, (tl.sum(W * v[None, :], axis=1) + eps * eta)[:, None], 0.0)
        for c in range(R):
            gc = tl.sum(tl.where(ri[:, None] == c, WF, 0.0), axis=0)  # row c of W_F
            A += tl.where(ci[None, :] == c, tl.sum(W * gc[None, :], axis=1)[:, None], 0.0)
        for j in range(R):
            row = tl.sum(tl.where(ri[:, None] == j, A, 0.0), axis=0)
            p = row / tl.sum(tl.where(ci == j, row, 0.0), axis=0)
            col = tl.sum(tl.where(ci[None, :] == j, A, 0.0), axis=1)
            A = A - col[:, None] * p[None, :]
            A = tl.where(ri[:, None] == j, p[None, :], A)
        return tl.sum(tl.where(ci[None, :] == R, A, 0.0), axis=1)

    @triton.jit
    def _g_at(z, dz, T, lower, upper, eps, a0, b0):
        """g(T) (BM,) for breakpoints T (BM,): dz . clip(z + T dz) + eps (a0 + T b0)."""
        Z = tl.clamp(z[None, :] + T[:, None] * dz[None, :], lower, upper)
        return tl.sum(Z * dz[None, :], axis=1) + eps * (a0 + T * b0)

    @triton.jit
    def _crossing(z, dz, bound):
        """Times (BM,) at which z + t dz crosses ``bound``, clamped to [0, 1] (0 where dz = 0)."""
        moves = dz != 0.0
        t = tl.where(moves, (bound - z) / tl.where(moves, dz, 1.0), 0.0)
        return tl.minimum(tl.maximum(t, 0.0), 1.0)

    @triton.jit
    def _line_search(z, dz, lm, eta, deta, lower, upper, eps, M: tl.constexpr, CH: tl.constexpr, NC: tl.constexpr, kc):
        """Exact maximiser t in [0, 1] of theta(t) = D(y + t d): theta'(t) = -eps g(t) is continuous,
        piecewise linear and decreasing; g is evaluated at 0, 1 and the 2M bound-crossing times (in
        chunks of CH), and its root interpolated between the last breakpoint with g < 0 and the first
        with g >= 0 (no breakpoint lies between them)."""
        a0 = tl.sum(deta * eta)
        b0 = tl.sum(deta * deta)
        g0 = tl.sum(dz * lm) + eps * a0
        g1 = tl.sum(dz * tl.clamp(z + dz, lower, upper)) + eps * (a0 + b0)
        t_a = tl.where(g1 < 0.0, 1.0, 0.0).to(tl.float64)  # last breakpoint with g < 0 (theta' > 0), its g
        g_a = tl.maximum(tl.where(g0 < 0.0, g0, -1e300), tl.where(g1 < 0.0, g1, -1e300))
        t_b = tl.where(g0 < 0.0, 1.0, 0.0).to(tl.float64)  # first breakpoint with g >= 0, its g
        g_b = tl.minimum(tl.where(g0 >= 0.0, g0, 1e300), tl.where(g1 >= 0.0, g1, 1e300))
        T_lo = tl.reshape(_crossing(z, dz, lower), [NC, CH])  # row k: variables k CH .. k CH + CH - 1
        T_hi = tl.reshape(_crossing(z, dz, upper), [NC, CH])
        for c in range(2 * NC):  # a loop, not unrolled: fewer live registers
            T = tl.sum(tl.where(kc[:, None] == c // 2, tl.where(c % 2 == 0, T_lo, T_hi), 0.0), axis=0)
            g = _g_at(z, dz, T, lower, upper, eps, a0, b0)
            real = (c // 2) * CH + tl.arange(0, CH) < M
            up = (g < 0.0) & real
            dn = (g >= 0.0) & real
            t_a = tl.maximum(t_a, tl.max(tl.where(up, T, 0.0)))
            g_a = tl.maximum(g_a, tl.max(tl.where(up, g, -1e300)))
            t_b = tl.minimum(t_b, tl.min(tl.where(dn, T, 1.0)))
            g_b = tl.minimum(g_b, tl.min(tl.where(dn, g, 1e300)))
        w = g_a / (g_a - g_b)
        return tl.where(w < 0.5, t_a + w * (t_b - t_a), t_b - (t_b - t_a) * (1.0 - w))  # as torch.lerp

    @triton.jit(do_not_specialize=["n_iter"])
    def _box_qp_kernel(
        W_ptr, ws_ptr, l_ptr, y_ptr, it_ptr, cv_ptr,
        lower: tl.float64, upper: tl.float64, eps: tl.float64, rtol: tl.float64,
        band: tl.float64, dual0: tl.float64, n_iter,
        R: tl.constexpr, M: tl.constexpr, HAS_WS: tl.constexpr, BR: tl.constexpr, BM: tl.constexpr,
        CH: tl.constexpr,
    ):
        # float64 scalars from here on (under the interpreter the arguments arrive as Python floats,
        # which tl.where / tl.clamp would otherwise turn into float32 constants)
        lower = tl.full([], lower, tl.float64)
        upper = tl.full([], upper, tl.float64)
        eps = tl.full([], eps, tl.float64)
        rtol = tl.full([], rtol, tl.float64)
        band = tl.full([], band, tl.float64)
        dual0 = tl.full([], dual0, tl.float64)
        b = tl.program_id(0).to(tl.int64)
        ri = tl.arange(0, BR)
        ci = tl.arange(0, BR)
        mi = tl.arange(0, BM)
        NC: tl.constexpr = BM // CH
        kc = tl.arange(0, NC)
        rmask = ri < R
        mmask = mi < M
        W = tl.load(W_ptr + b * (R * M) + ri[:, None] * M + mi[None, :], mask=rmask[:, None] & mmask[None, :],
                    other=0.0)
        W = tl.where(tl.sum(tl.where(W - W == 0.0, 0, 1)) == 0, W, 0.0)  # non-finite: solve W = 0
        eta = tl.zeros([BR], dtype=tl.float64)
        z = tl.zeros([BM], dtype=tl.float64)
        if HAS_WS:
            # start at the maximiser of the warm start's piece if its dual value beats y = 0
            ws = tl.load(ws_ptr + b * M + mi, mask=mmask, other=0.0)
            ok = tl.sum(tl.where(ws - ws == 0.0, 0, 1)) == 0
            w_lo = (ws <= lower + band) & mmask & ok
            w_hi = (ws >= upper - band) & mmask & ok
            lA = tl.where(w_hi, upper, tl.where(w_lo, lower, 0.0))
            eta_w = -_newton_solve(W, ~(w_lo | w_hi), lA, eta, eps, ri, ci, R)
            z_w = tl.sum(W * eta_w[:, None], axis=0)
            l_w = tl.clamp(z_w, lower, upper)
            dual = tl.sum(tl.where(mmask, l_w * (l_w - 2.0 * z_w), 0.0)) - eps * tl.sum(eta_w * eta_w)  # 2 D / eps
            better = ok & (dual > dual0)
            eta = tl.where(better, eta_w, eta)
            z = tl.where(better, z_w, z)

        at_lo = (z <= lower) & mmask
        at_hi = (z >= upper) & mmask
        lm = tl.where(mmask, tl.clamp(z, lower, upper), 0.0)
        Wl = tl.sum(W * lm[None, :], axis=1)
        gv = Wl + eps * eta  # W l - y (scaled): the dual gradient
        conv = (tl.sum(gv * gv) <= rtol * (tl.sum(Wl * Wl) + eps * tl.sum(lm * lm))).to(tl.int32)
        it = tl.full([], 0, tl.int32)
        while (it < n_iter) & (conv == 0):
            it += 1
            deta = -_newton_solve(W, ~(at_lo | at_hi), lm, eta, eps, ri, ci, R)  # Newton point - eta
            dz = tl.sum(W * deta[:, None], axis=0)
            zN = z + dz
            # a Newton point on its own piece is the exact maximiser: full step, stop
            moved = ((zN <= lower) != at_lo) | ((zN >= upper) != at_hi)
            exact = tl.sum(tl.where(moved & mmask, 1, 0)) == 0
            t = tl.full([], 1.0, tl.float64)
            if not exact:
                t = _line_search(z, dz, lm, eta, deta, lower, upper, eps, M, CH, NC, kc)
                zN = z + t * dz
            eta = eta + t * deta
            z = zN
            at_lo = (z <= lower) & mmask
            at_hi = (z >= upper) & mmask
            lm = tl.where(mmask, tl.clamp(z, lower, upper), 0.0)
            Wl = tl.sum(W * lm[None, :], axis=1)
            gv = Wl + eps * eta
            small = tl.sum(gv * gv) <= rtol * (tl.sum(Wl * Wl) + eps * tl.sum(lm * lm))
            conv = (exact | small).to(tl.int32)
        tl.store(l_ptr + b * M + mi, tl.clamp(z, lower, upper), mask=mmask)
        tl.store(y_ptr + b * R + ri, -eps * eta, mask=rmask)
        tl.store(it_ptr + b, it.to(tl.int64))
        tl.store(cv_ptr + b, conv.to(tl.int8))


def solve_fixed(
    Wd: torch.Tensor,
    lower: float,
    upper: float,
    eps: float,
    warm_start: torch.Tensor | None = None,
    iterations: int = 8,
    rtol: float = 1e-15,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same contract as :func:`graspforge.energy._qp_fixed.solve_fixed`: at most ``iterations``
    Newton iterations per problem, ``(l (B, M), y (B, R), iters (B,) int64, converged (B,) bool)``.

    Wd and warm_start must be on a device Triton can launch on (a CUDA device, or the CPU under
    ``TRITON_INTERPRET=1``). Non-finite W rows are solved as W = 0; non-finite warm-start rows start
    cold.
    """
    if not HAVE_TRITON:
        raise RuntimeError("triton is not installed")
    W = Wd.detach().to(torch.float64).contiguous()
    B, R, M = W.shape
    dev = W.device
    lower, upper, eps = float(lower), float(upper), float(eps)
    l = torch.empty(B, M, dtype=torch.float64, device=dev)
    y = torch.empty(B, R, dtype=torch.float64, device=dev)
    iters = torch.empty(B, dtype=torch.int64, device=dev)
    conv = torch.empty(B, dtype=torch.int8, device=dev)
    if B:
        ws = W if warm_start is None else warm_start.detach().to(device=dev, dtype=torch.float64).contiguous()
        c0 = min(max(0.0, lower), upper)
        BM = triton.next_power_of_2(M)
        _box_qp_kernel[(B,)](
            W, ws, l, y, iters, conv,
            lower, upper, eps, float(rtol), 1e-9 * (upper - lower), c0 * c0 * M, int(iterations),
            R=R, M=M, HAS_WS=warm_start is not None,
            BR=triton.next_power_of_2(R + 1), BM=BM, CH=min(LS_CHUNK, BM),
            num_warps=NUM_WARPS,
        )
    return l, y, iters, conv.view(torch.bool)
