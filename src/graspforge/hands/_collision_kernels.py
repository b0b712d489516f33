"""Fused CPU kernels (numba) for the hand's collision queries: broad phase, transform into the
link frame, box test and trilinear distance lookup in one pass, plus the adjoint w.r.t. the link
poses.

Why by hand: the same work in torch is ~20 small gathers/scatters per call over tens of thousands of
(point, link) pairs; on a CPU their overhead, not the arithmetic, set the cost of E_pen and E_spen
(~10 ms each at B = 16). CUDA tensors use the torch path in :mod:`graspforge.hands.model`.

Grids are the packed :class:`~graspforge.geometry.atlas.GridAtlas` layout: ``meta[g] = [offset,
nx, ny, nz, ox, oy, oz, h]`` into the flat ``data`` array.

The hand's fixed data reach the kernels as two named bundles, built once per hand by
:class:`~graspforge.hands.model.HandModel`: :class:`LinkGridArgs` (the link grids, both queries) and
:class:`SelfCollisionArgs` (the self-collision items). The numba kernels take plain arrays, so the
autograd Functions below unpack the bundles by name at the call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

try:
    import numba as _nb

    from ..geometry._numba import dual_kernel
    from ..geometry.atlas import trilinear_lookup

    HAVE_NUMBA = True
except Exception:  # pragma: no cover
    HAVE_NUMBA = False


if HAVE_NUMBA:

    @dual_kernel
    def points_vs_links(points, R, t, gid, sc, sr2, lo, hi, data, meta, outside, cl_start, cl_len, cl_c, cl_r, out_d, out_arg, out_grad):
        """Per point (b, p): max over links g of the grid distance, with argmax link and local gradient.

        Points come in spatial clusters (``cl_*`` (B, C): item ranges, bounding spheres); a cluster is
        skipped for a link when its sphere misses the sphere around the link's grid box.
        """
        B, P = points.shape[0], points.shape[1]
        G = R.shape[1]
        C = cl_start.shape[1]
        for b in _nb.prange(B):
            for p in range(P):
                out_d[b, p] = outside
                out_arg[b, p] = -1
            for g in range(G):
                q = gid[g]
                # sphere centre of the grid box in the world
                c0 = R[b, g, 0, 0] * sc[q, 0] + R[b, g, 0, 1] * sc[q, 1] + R[b, g, 0, 2] * sc[q, 2] + t[b, g, 0]
                c1 = R[b, g, 1, 0] * sc[q, 0] + R[b, g, 1, 1] * sc[q, 1] + R[b, g, 1, 2] * sc[q, 2] + t[b, g, 1]
                c2 = R[b, g, 2, 0] * sc[q, 0] + R[b, g, 2, 1] * sc[q, 1] + R[b, g, 2, 2] * sc[q, 2] + t[b, g, 2]
                r2 = sr2[q]
                rg = math.sqrt(r2)
                for c in range(C):
                    f0 = cl_c[b, c, 0] - c0
                    f1 = cl_c[b, c, 1] - c1
                    f2 = cl_c[b, c, 2] - c2
                    reach = rg + cl_r[b, c]
                    if f0 * f0 + f1 * f1 + f2 * f2 >= reach * reach:
                        continue
                    for p in range(cl_start[b, c], cl_start[b, c] + cl_len[b, c]):
                        e0 = points[b, p, 0] - c0
                        e1 = points[b, p, 1] - c1
                        e2 = points[b, p, 2] - c2
                        if e0 * e0 + e1 * e1 + e2 * e2 >= r2:
                            continue
                        w0 = points[b, p, 0] - t[b, g, 0]
                        w1 = points[b, p, 1] - t[b, g, 1]
                        w2 = points[b, p, 2] - t[b, g, 2]
                        x0 = R[b, g, 0, 0] * w0 + R[b, g, 1, 0] * w1 + R[b, g, 2, 0] * w2
                        x1 = R[b, g, 0, 1] * w0 + R[b, g, 1, 1] * w1 + R[b, g, 2, 1] * w2
                        x2 = R[b, g, 0, 2] * w0 + R[b, g, 1, 2] * w1 + R[b, g, 2, 2] * w2
                        if not (lo[q, 0] < x0 < hi[q, 0] and lo[q, 1] < x1 < hi[q, 1] and lo[q, 2] < x2 < hi[q, 2]):
                            continue
                        d, g0, g1, g2 = trilinear_lookup(data, meta, q, x0, x1, x2)
                        if d > out_d[b, p]:
                            out_d[b, p] = d
                            out_arg[b, p] = g
                            out_grad[b, p, 0] = g0
                            out_grad[b, p, 1] = g1
                            out_grad[b, p, 2] = g2

    @dual_kernel
    def points_vs_links_backward(points, R, t, arg, grad_local, upstream, gR, gt, gp):
        """Adjoint of ``points_vs_links`` w.r.t. link rotations/positions (and the points)."""
        B, P = points.shape[0], points.shape[1]
        for b in _nb.prange(B):
            for p in range(P):
                g = arg[b, p]
                u = upstream[b, p]
                if g < 0 or u == 0.0:
                    continue
                l0 = grad_local[b, p, 0] * u
                l1 = grad_local[b, p, 1] * u
                l2 = grad_local[b, p, 2] * u
                w0 = points[b, p, 0] - t[b, g, 0]
                w1 = points[b, p, 1] - t[b, g, 1]
                w2 = points[b, p, 2] - t[b, g, 2]
                # x = R^T (p - t): dd/dR[j, i] = w_j l_i, dd/dt = -R l, dd/dp = R l
                for j in range(3):
                    wj = w0 if j == 0 else (w1 if j == 1 else w2)
                    gR[b, g, j, 0] += wj * l0
                    gR[b, g, j, 1] += wj * l1
                    gR[b, g, j, 2] += wj * l2
                    rl = R[b, g, j, 0] * l0 + R[b, g, j, 1] * l1 + R[b, g, j, 2] * l2
                    gt[b, g, j] -= rl
                    gp[b, p, j] += rl

    @dual_kernel
    def samples_vs_links(R, t, s_local, pair_a, pair_b, pair_start, pair_len, pair_c, pair_r, grid_of_link, lo, hi, data, meta, out_d, out_grad, out_world):
        """Self-collision: clusters of link-a samples (item ranges) against the grid of link b.

        Broad phase per cluster: its bounding sphere (centre ``pair_c`` in link a's frame, radius
        ``pair_r``) against b's grid box, in b's frame. Writes per (b, item) the distance (-1 m if not
        near), the local gradient and the world point.
        """
        B = R.shape[0]
        npairs = pair_a.shape[0]
        for bb in _nb.prange(B):
            for k in range(npairs):
                a = pair_a[k]
                lb = pair_b[k]
                q = grid_of_link[lb]
                start = pair_start[k]
                n = pair_len[k]
                # cluster centre: link a -> world -> link b
                c0 = R[bb, a, 0, 0] * pair_c[k, 0] + R[bb, a, 0, 1] * pair_c[k, 1] + R[bb, a, 0, 2] * pair_c[k, 2] + t[bb, a, 0] - t[bb, lb, 0]
                c1 = R[bb, a, 1, 0] * pair_c[k, 0] + R[bb, a, 1, 1] * pair_c[k, 1] + R[bb, a, 1, 2] * pair_c[k, 2] + t[bb, a, 1] - t[bb, lb, 1]
                c2 = R[bb, a, 2, 0] * pair_c[k, 0] + R[bb, a, 2, 1] * pair_c[k, 1] + R[bb, a, 2, 2] * pair_c[k, 2] + t[bb, a, 2] - t[bb, lb, 2]
                y0 = R[bb, lb, 0, 0] * c0 + R[bb, lb, 1, 0] * c1 + R[bb, lb, 2, 0] * c2
                y1 = R[bb, lb, 0, 1] * c0 + R[bb, lb, 1, 1] * c1 + R[bb, lb, 2, 1] * c2
                y2 = R[bb, lb, 0, 2] * c0 + R[bb, lb, 1, 2] * c1 + R[bb, lb, 2, 2] * c2
                e0 = max(lo[q, 0] - y0, 0.0, y0 - hi[q, 0])
                e1 = max(lo[q, 1] - y1, 0.0, y1 - hi[q, 1])
                e2 = max(lo[q, 2] - y2, 0.0, y2 - hi[q, 2])
                if e0 * e0 + e1 * e1 + e2 * e2 >= pair_r[k] * pair_r[k]:
                    for m in range(n):
                        out_d[bb, start + m] = -1.0
                    continue
                for m in range(n):
                    i = start + m
                    s0, s1, s2 = s_local[i, 0], s_local[i, 1], s_local[i, 2]
                    p0 = R[bb, a, 0, 0] * s0 + R[bb, a, 0, 1] * s1 + R[bb, a, 0, 2] * s2 + t[bb, a, 0]
                    p1 = R[bb, a, 1, 0] * s0 + R[bb, a, 1, 1] * s1 + R[bb, a, 1, 2] * s2 + t[bb, a, 1]
                    p2 = R[bb, a, 2, 0] * s0 + R[bb, a, 2, 1] * s1 + R[bb, a, 2, 2] * s2 + t[bb, a, 2]
                    out_world[bb, i, 0] = p0
                    out_world[bb, i, 1] = p1
                    out_world[bb, i, 2] = p2
                    w0 = p0 - t[bb, lb, 0]
                    w1 = p1 - t[bb, lb, 1]
                    w2 = p2 - t[bb, lb, 2]
                    x0 = R[bb, lb, 0, 0] * w0 + R[bb, lb, 1, 0] * w1 + R[bb, lb, 2, 0] * w2
                    x1 = R[bb, lb, 0, 1] * w0 + R[bb, lb, 1, 1] * w1 + R[bb, lb, 2, 1] * w2
                    x2 = R[bb, lb, 0, 2] * w0 + R[bb, lb, 1, 2] * w1 + R[bb, lb, 2, 2] * w2
                    if not (lo[q, 0] < x0 < hi[q, 0] and lo[q, 1] < x1 < hi[q, 1] and lo[q, 2] < x2 < hi[q, 2]):
                        out_d[bb, i] = -1.0
                        continue
                    d, g0, g1, g2 = trilinear_lookup(data, meta, q, x0, x1, x2)
                    out_d[bb, i] = d
                    out_grad[bb, i, 0] = g0
                    out_grad[bb, i, 1] = g1
                    out_grad[bb, i, 2] = g2

    @dual_kernel
    def samples_vs_links_backward(R, t, s_local, item_a, item_b, d, grad_local, world, upstream, relu, gR, gt):
        """Adjoint of ``samples_vs_links``: ``upstream`` (B, N) per item, or with ``relu`` (B, 1) per
        grasp, the gradient of sum_i max(0, d_i) (items with d_i <= 0 take none)."""
        B, N = d.shape[0], d.shape[1]
        for bb in _nb.prange(B):
            for i in range(N):
                if relu:
                    u = upstream[bb, 0] if d[bb, i] > 0.0 else 0.0
                else:
                    u = upstream[bb, i]
                if u == 0.0 or d[bb, i] <= -1.0:
                    continue
                a = item_a[i]
                lb = item_b[i]
                l0 = grad_local[bb, i, 0] * u
                l1 = grad_local[bb, i, 1] * u
                l2 = grad_local[bb, i, 2] * u
                w0 = world[bb, i, 0] - t[bb, lb, 0]
                w1 = world[bb, i, 1] - t[bb, lb, 1]
                w2 = world[bb, i, 2] - t[bb, lb, 2]
                for j in range(3):
                    wj = w0 if j == 0 else (w1 if j == 1 else w2)
                    gR[bb, lb, j, 0] += wj * l0
                    gR[bb, lb, j, 1] += wj * l1
                    gR[bb, lb, j, 2] += wj * l2
                    rl = R[bb, lb, j, 0] * l0 + R[bb, lb, j, 1] * l1 + R[bb, lb, j, 2] * l2  # dd/dp (world)
                    gt[bb, lb, j] -= rl
                    # p = R_a s + t_a: dd/dR_a[j, c] = rl_j s_c, dd/dt_a = rl
                    gR[bb, a, j, 0] += rl * s_local[i, 0]
                    gR[bb, a, j, 1] += rl * s_local[i, 1]
                    gR[bb, a, j, 2] += rl * s_local[i, 2]
                    gt[bb, a, j] += rl


@dataclass(frozen=True, eq=False)
class LinkGridArgs:
    """The hand's link grids as the CPU kernels read them. Q grids (one per link that has collision
    geometry), G collision links (``HandModel.collision_links``, in that order). Frames: a grid's
    frame is its link's frame."""

    #: (G,) int64: grid id of each collision link (kernel argument ``gid``)
    link_grid: np.ndarray
    #: (Q, 3) float64, m: centre of each grid's box, the centre of its broad-phase sphere (``sc``)
    sphere_center: np.ndarray
    #: (Q,) float64, m^2: squared radius of the sphere around each grid's box (``sr2``)
    sphere_radius2: np.ndarray
    #: (Q, 3) float64, m: lower corner of each grid's box (``lo``)
    lower: np.ndarray
    #: (Q, 3) float64, m: upper corner of each grid's box (``hi``)
    upper: np.ndarray
    #: flat float32 signed distances (m, positive inside) of every grid's nodes (``GridAtlas.data``)
    data: np.ndarray
    #: (Q, 8) float64: ``[offset into data, nx, ny, nz, origin x, y, z (m), spacing (m)]`` (``GridAtlas.meta``)
    meta: np.ndarray


@dataclass(frozen=True, eq=False)
class SelfCollisionArgs:
    """The self-collision items as the CPU kernels read them. An item is one surface sample of a
    link a tested against the grid of a link b it may hit; N items, sorted so that each group (one
    spatial cluster of link a's samples against one link b, K groups) is a contiguous range, which
    the kernel's broad phase accepts or rejects whole. Link indices run over all L links of the
    kinematic tree."""

    #: (N, 3) float32 or float64 (the hand's dtype), m: each item's sample in link a's frame (``s_local``)
    samples: np.ndarray
    #: (K,) int64: link a of each group (``pair_a``)
    group_link_a: np.ndarray
    #: (K,) int64: link b of each group (``pair_b``)
    group_link_b: np.ndarray
    #: (K,) int64: first item of each group (``pair_start``)
    group_start: np.ndarray
    #: (K,) int64: number of items of each group (``pair_len``)
    group_len: np.ndarray
    #: (K, 3) float64, m: centre of each group's bounding sphere, in link a's frame (``pair_c``)
    group_center: np.ndarray
    #: (K,) float64, m: radius of each group's bounding sphere (``pair_r``)
    group_radius: np.ndarray
    #: (L,) int64: grid id of each link, -1 for a link without collision geometry (``grid_of_link``)
    grid_of_link: np.ndarray
    #: (N,) int64: link a of each item (the backward pass's ``item_a``)
    item_link_a: np.ndarray
    #: (N,) int64: link b of each item (``item_b``)
    item_link_b: np.ndarray


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


class PointsVsLinks(torch.autograd.Function):
    """d (B, P): max over links of the distance of world points to the posed link grids."""

    @staticmethod
    def forward(ctx, points, R, t, grids: LinkGridArgs, outside, clusters):  # type: ignore[override]
        B, P = points.shape[:2]
        if clusters is None:  # one cluster of everything
            cl = (np.zeros((B, 1), np.int64), np.full((B, 1), P, np.int64), np.zeros((B, 1, 3)), np.full((B, 1), 1e9))
        else:
            cl = tuple(np.ascontiguousarray(x) for x in clusters)
        dt = np.float64 if points.dtype == torch.float64 else np.float32
        pts, Rn, tn = _np(points).astype(dt, copy=False), _np(R).astype(dt, copy=False), _np(t).astype(dt, copy=False)
        d = np.empty((B, P), dt)
        arg = np.empty((B, P), np.int32)
        grad = np.empty((B, P, 3), dt)  # written (and later read) only where arg >= 0
        points_vs_links(pts, Rn, tn, grids.link_grid, grids.sphere_center, grids.sphere_radius2, grids.lower, grids.upper,
                        grids.data, grids.meta, float(outside), *cl, d, arg, grad)
        ctx.save_for_backward(points, R, t)
        ctx.arrays = (arg, grad)
        return torch.from_numpy(d)

    @staticmethod
    def backward(ctx, upstream):  # type: ignore[override]
        points, R, t = ctx.saved_tensors
        arg, grad = ctx.arrays
        pts, Rn, tn = _np(points), _np(R), _np(t)
        gR, gt, gp = np.zeros_like(Rn), np.zeros_like(tn), np.zeros_like(pts)
        points_vs_links_backward(pts, Rn, tn, arg, grad.astype(pts.dtype, copy=False), _np(upstream).astype(pts.dtype, copy=False), gR, gt, gp)
        return torch.from_numpy(gp), torch.from_numpy(gR), torch.from_numpy(gt), None, None, None


class SamplesVsLinks(torch.autograd.Function):
    """d (B, N): distance of each self-collision item (a link-a sample vs link b's grid), -1 if not
    near; with ``reduce``, the energy sum_i max(0, d_i) (B,) instead (no (B, N) tensors for autograd)."""

    @staticmethod
    def forward(ctx, R, t, grids: LinkGridArgs, items: SelfCollisionArgs, reduce=False):  # type: ignore[override]
        B = R.shape[0]
        N = items.samples.shape[0]
        dt = np.float64 if R.dtype == torch.float64 else np.float32
        Rn, tn = _np(R).astype(dt, copy=False), _np(t).astype(dt, copy=False)
        d = np.empty((B, N), dt)
        grad = np.empty((B, N, 3), dt)  # written (and later read) only where d > -1
        world = np.empty((B, N, 3), dt)
        s_local = items.samples.astype(dt, copy=False)  # the hand keeps it in its own dtype: no copy
        samples_vs_links(Rn, tn, s_local, items.group_link_a, items.group_link_b, items.group_start, items.group_len,
                         items.group_center, items.group_radius, items.grid_of_link, grids.lower, grids.upper, grids.data,
                         grids.meta, d, grad, world)
        ctx.save_for_backward(R, t)
        ctx.arrays = (d, grad, world, s_local, items.item_link_a, items.item_link_b)
        ctx.reduce = reduce
        if reduce:
            return torch.from_numpy(np.maximum(d, 0.0).sum(1))
        return torch.from_numpy(d)

    @staticmethod
    def backward(ctx, upstream):  # type: ignore[override]
        R, t = ctx.saved_tensors
        d, grad, world, s_local, item_a, item_b = ctx.arrays
        Rn, tn = _np(R), _np(t)
        gR, gt = np.zeros_like(Rn), np.zeros_like(tn)
        up = _np(upstream).astype(Rn.dtype, copy=False)
        if ctx.reduce:  # d(sum relu)/d d_i = 1 where d_i > 0: the kernel masks (no (B, N) temporary)
            up = np.ascontiguousarray(up.reshape(-1, 1))
        samples_vs_links_backward(Rn, tn, s_local, item_a, item_b, d, grad, world, up, bool(ctx.reduce), gR, gt)
        return torch.from_numpy(gR), torch.from_numpy(gt), None, None, None
