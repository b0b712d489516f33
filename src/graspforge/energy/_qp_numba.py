"""CPU kernel (numba) of the batched box-QP solver in :mod:`graspforge.energy.qp`: the same dual
Newton method with an exact line search, run problem by problem.

Why by hand: at the batch sizes of an optimiser step (16-128 grasps) the torch version's cost is
its ~100 tiny tensor ops per Newton iteration, not arithmetic (measured: the GraspQP term took ~8 ms
of a 17 ms iteration at B = 16). Per problem the work is a 6 x 6 solve and a sort of <= 2M numbers.
"""

from __future__ import annotations

import numpy as np

try:
    import numba as _nb

    from ..geometry._numba import dual_kernel

    HAVE_NUMBA = True
except Exception:  # pragma: no cover
    HAVE_NUMBA = False


if HAVE_NUMBA:

    @_nb.njit(cache=True)
    def _piece_max(W, at_lo, at_hi, l, eps):
        # (eps I + W_F W_F^T) y = eps W_A l_A
        R, M = W.shape
        S = np.zeros((R, R))
        r = np.zeros(R)
        for a in range(R):
            S[a, a] = eps
        for i in range(M):
            if at_lo[i] or at_hi[i]:
                for a in range(R):
                    r[a] += eps * W[a, i] * l[i]
            else:
                for a in range(R):
                    ga = W[a, i]
                    for c in range(a, R):
                        S[a, c] += ga * W[c, i]
        for a in range(R):
            for c in range(a):
                S[a, c] = S[c, a]
        return np.linalg.solve(S, r)

    @_nb.njit(cache=True)
    def _theta_prime(z, u, lower, upper, eps, yd, dd, t):
        acc = 0.0
        for i in range(z.shape[0]):
            x = z[i] - t * u[i] / eps
            acc += u[i] * min(max(x, lower), upper)
        return acc - yd - t * dd

    @_nb.njit(cache=True)
    def _line_search(z, u, lower, upper, eps, yd, dd, grad0):
        # theta'(t) is continuous, piecewise linear and decreasing: find its root in [0, 1]
        M = z.shape[0]
        ts = np.empty(2 * M + 1)
        n = 0
        for i in range(M):
            v = -u[i] / eps
            if v != 0.0:
                for bnd in (lower, upper):
                    t = (bnd - z[i]) / v
                    if 0.0 < t < 1.0:
                        ts[n] = t
                        n += 1
        ts[n] = 1.0
        n += 1
        ts = np.sort(ts[:n])
        t_prev, f_prev = 0.0, grad0
        for k in range(n):
            f = _theta_prime(z, u, lower, upper, eps, yd, dd, ts[k])
            if f <= 0.0:
                if f_prev - f <= 0.0:
                    return ts[k]
                return t_prev + f_prev * (ts[k] - t_prev) / (f_prev - f)
            t_prev, f_prev = ts[k], f
        return 1.0

    @_nb.njit(cache=True)
    def _state(W, y, lower, upper, eps, s, z, l, at_lo, at_hi):
        R, M = W.shape
        for i in range(M):
            acc = 0.0
            for a in range(R):
                acc += W[a, i] * y[a]
            s[i] = acc
            z[i] = -acc / eps
            l[i] = min(max(z[i], lower), upper)
            at_lo[i] = z[i] <= lower
            at_hi[i] = z[i] >= upper

    @_nb.njit(cache=True)
    def _small_gap(W, l, y, eps, rtol):
        R, M = W.shape
        P = 0.0
        gap = 0.0
        for a in range(R):
            w = 0.0
            for i in range(M):
                w += W[a, i] * l[i]
            P += w * w
            gap += (w - y[a]) ** 2
        for i in range(M):
            P += eps * l[i] * l[i]
        return 0.5 * gap <= rtol * 0.5 * P

    @dual_kernel
    def solve_batch(Wd, lower, upper, eps, ws, use_ws, rtol, max_iter, l_out, y_out, iters, conv):
        B, R, M = Wd.shape
        band = 1e-9 * (upper - lower)
        c0 = min(max(0.0, lower), upper)
        for b in _nb.prange(B):
            W = Wd[b]
            y = np.zeros(R)
            s = np.empty(M)
            z = np.empty(M)
            l = np.empty(M)
            at_lo = np.empty(M, np.bool_)
            at_hi = np.empty(M, np.bool_)
            if use_ws[b]:
                for i in range(M):
                    at_lo[i] = ws[b, i] <= lower + band
                    at_hi[i] = ws[b, i] >= upper - band
                    l[i] = upper if at_hi[i] else lower
                yw = _piece_max(W, at_lo, at_hi, l, eps)
                _state(W, yw, lower, upper, eps, s, z, l, at_lo, at_hi)
                dual = 0.0
                for a in range(R):
                    dual -= 0.5 * yw[a] * yw[a]
                for i in range(M):
                    dual += 0.5 * eps * l[i] * l[i] + s[i] * l[i]
                if dual > 0.5 * eps * c0 * c0 * M:
                    y = yw
            _state(W, y, lower, upper, eps, s, z, l, at_lo, at_hi)
            done = _small_gap(W, l, y, eps, rtol)
            it_used = 0
            sN = np.empty(M)
            zN = np.empty(M)
            lN = np.empty(M)
            loN = np.empty(M, np.bool_)
            hiN = np.empty(M, np.bool_)
            it = 0
            while not done and it < max_iter:
                it += 1
                yN = _piece_max(W, at_lo, at_hi, l, eps)
                _state(W, yN, lower, upper, eps, sN, zN, lN, loN, hiN)
                dd = 0.0
                yd = 0.0
                for a in range(R):
                    da = yN[a] - y[a]
                    dd += da * da
                    yd += da * y[a]
                th1 = 0.0
                for i in range(M):
                    th1 += (sN[i] - s[i]) * lN[i]
                full = th1 - yd - dd >= 0.0
                exact = full
                if full:
                    for i in range(M):
                        if loN[i] != at_lo[i] or hiN[i] != at_hi[i]:
                            exact = False
                            break
                    y = yN
                else:
                    u = sN - s
                    grad0 = 0.0
                    for i in range(M):
                        grad0 += u[i] * l[i]
                    grad0 -= yd
                    t = _line_search(z, u, lower, upper, eps, yd, dd, grad0)
                    y = y + t * (yN - y)
                _state(W, y, lower, upper, eps, s, z, l, at_lo, at_hi)
                if exact or _small_gap(W, l, y, eps, rtol):
                    done = True
                    it_used = it
            if not done:
                it_used = max_iter
            for i in range(M):
                l_out[b, i] = l[i]
            for a in range(R):
                y_out[b, a] = y[a]
            iters[b] = it_used
            conv[b] = done
