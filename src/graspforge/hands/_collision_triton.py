"""Triton (GPU) versions of the fused hand-collision kernels in :mod:`._collision_kernels`.

Two queries run in every optimiser step of grasp synthesis:

* :func:`points_vs_links` (E_pen): per object point, the max over the posed collision links of the
  signed distance read from the link's grid (positive inside, metres).
* :func:`samples_vs_links` (E_spen): per self-collision item (a surface sample of link a against the
  grid of link b), the signed distance, or the energy ``sum_i max(0, d_i)`` per grasp.

Why hand-written kernels: in torch (``HandModel.signed_distance`` off the CPU), E_pen is a broad
phase over every (grasp, point, link) pair, B * P * CL = 8192 * 2500 * 14 ~ 290M pairs (570M at
B = 16384), materialised as (B, P, CL) tensors, then gathers/scatters of the survivors (indices,
local points, eight trilinear corners) behind a ``nonzero`` that syncs with the host and makes the
shapes data-dependent (no CUDA graphs). Here each pair lives in registers only: one
program per (grasp, block of points) loops over the links, box-tests each point in the link frame
and reads the 8 grid corners with masked loads (only lanes inside the box touch memory). Outputs and
scratch have fixed shapes and nothing is synchronised with the host, so the calls can be captured in
a CUDA graph.

Results equal the numba kernels' (float32 rounding aside): their cluster broad phases are only
conservative speed-ups (an item rejected by them is outside the link's box anyway), so the
per-point / per-item box test alone decides, as here.

Backward passes recompute the local gradient instead of saving (B, P, 3) / (B, N, 3) tensors: the
points kernel saves only the argmax link (B, P) int32; the self-collision kernel saves nothing but
the link poses (and, without ``reduce``, its output). Gradients w.r.t. link poses are accumulated
with relaxed ``atomic_add`` from the active lanes only (a point inside a link with a nonzero
upstream gradient; an item inside link b's box, with ``reduce`` only where d > 0), so their
summation order (and the last bits of gR / gt) is not deterministic across runs. All active lanes
of one grasp and link add into the same 12 numbers; should that contention show in a profile,
pre-reduce per link within the program before the atomics.

Grids are the packed :class:`~graspforge.geometry.atlas.GridAtlas` layout (``meta[g] = [offset, nx,
ny, nz, ox, oy, oz, h]`` into the flat ``data`` array), split here into int32 offsets / node counts
and float32 origins / spacings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

try:
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except Exception:  # pragma: no cover - triton is optional
    HAVE_TRITON = False

# Launch parameters: one point (item) per thread, 4 warps. The per-lane work is a few dozen flops
# plus gathers that mostly hit L1/L2 (link poses, grid nodes), i.e. latency-bound: what helps is
# occupancy. Compiled for sm_90a (ptxas -v, no GPU needed) the kernels use 32-48 registers with these
# sizes and never spill (BLOCK_N = 256 took 72-80 registers). More, smaller programs also keep all
# SMs busy at B = 1024 (B * P / 128 = 20k programs). Untuned on hardware; module globals, read at
# every call (the interpreter tests raise them to cut Python overhead).
BLOCK_P = 128  # object points per program (points_vs_links)
BLOCK_N = 128  # self-collision items per program (samples_vs_links)
NUM_WARPS = 4


# ---------------------------------------------------------------------------------------------
# Static data
# ---------------------------------------------------------------------------------------------
@dataclass
class TritonCollisionData:
    """Device tensors the kernels read, built once per hand with :meth:`from_hand`.

    Grids (Q of them): ``grid_off`` (Q,) int32 offset into ``grid_data`` (float32, flat), ``grid_n``
    (Q, 3) int32 node counts, ``grid_origin`` (Q, 3) float32 (m), ``grid_h`` (Q,) float32 spacing
    (m); ``box_lo`` / ``box_hi`` (Q, 3) float32 grid box in the link frame (m); ``sphere_c`` (Q, 3)
    float32 centre and ``sphere_r2`` (Q,) float32 squared radius (m^2, padded by a hair so rounding
    cannot reject a point inside the box) of the sphere around each box.

    Object collision (CL collision links, in ``HandModel.collision_links`` order): ``link_grid``
    (CL,) int32 grid of each.

    Self-collision (N items, in ``HandModel.self_pair_*`` kernel order): ``item_local`` (3, N)
    float32 sample position in the frame of link a (m, structure of arrays for coalesced loads),
    ``item_a`` / ``item_b`` (N,) int32 sample link and grid link (indices into all L links),
    ``item_grid`` (N,) int32 grid of link b.
    """

    grid_data: torch.Tensor
    grid_off: torch.Tensor
    grid_n: torch.Tensor
    grid_origin: torch.Tensor
    grid_h: torch.Tensor
    box_lo: torch.Tensor
    box_hi: torch.Tensor
    sphere_c: torch.Tensor
    sphere_r2: torch.Tensor
    link_grid: torch.Tensor
    item_local: torch.Tensor
    item_a: torch.Tensor
    item_b: torch.Tensor
    item_grid: torch.Tensor

    @property
    def num_links(self) -> int:
        """CL, the collision links :func:`points_vs_links` expects poses of."""
        return self.link_grid.shape[0]

    @property
    def num_items(self) -> int:
        """N, the self-collision items :func:`samples_vs_links` returns distances of."""
        return self.item_a.shape[0]

    @classmethod
    def from_hand(cls, hand, device: torch.device | str | None = None) -> "TritonCollisionData":
        """Build from a :class:`~graspforge.hands.model.HandModel` (on ``hand.device`` unless given)."""
        dev = torch.device(device) if device is not None else hand.device
        f32 = lambda x: torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=dev)  # noqa: E731
        i32 = lambda x: torch.as_tensor(np.ascontiguousarray(x, dtype=np.int32), device=dev)  # noqa: E731
        npy = lambda x: x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)  # noqa: E731
        atlas = hand.atlas
        meta = np.asarray(atlas.meta, np.float64)
        if meta[:, 0].max() + meta[:, 1:4].prod(1).max() >= 2**31:
            raise ValueError("grid atlas too large for int32 offsets")
        lo, hi = npy(atlas.lower), npy(atlas.upper)
        center = (lo + hi) / 2
        r2 = ((hi - lo) / 2) ** 2
        r2 = r2.sum(1) * (1 + 1e-4) + 1e-12
        link_grid = np.asarray(hand.description.link_grid)
        items = getattr(hand, "_self_args", None)  # the CPU kernels' SelfCollisionArgs: the same items, same order
        if items is not None and hand.self_pair_point.numel():
            s_local = np.asarray(items.samples, np.float64)
            ia, ib = np.asarray(items.item_link_a), np.asarray(items.item_link_b)
        else:
            s_local, ia, ib = np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros(0, np.int64)
        return cls(
            grid_data=f32(atlas.data),
            grid_off=i32(meta[:, 0]),
            grid_n=i32(meta[:, 1:4]),
            grid_origin=f32(meta[:, 4:7]),
            grid_h=f32(meta[:, 7]),
            box_lo=f32(lo),
            box_hi=f32(hi),
            sphere_c=f32(center),
            sphere_r2=f32(r2),
            link_grid=i32(link_grid[link_grid >= 0]),
            item_local=f32(s_local.T),
            item_a=i32(ia),
            item_b=i32(ib),
            item_grid=i32(link_grid[ib]),
        )


def _check_f32(**tensors: torch.Tensor) -> None:
    for name, x in tensors.items():
        if x.dtype != torch.float32:
            raise TypeError(f"triton collision kernels are float32 only; {name} is {x.dtype}")


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------
if HAVE_TRITON:

    @triton.jit
    def _trilinear(data_ptr, off, nx, ny, nz, ox, oy, oz, h, x0, x1, x2, mask):
        """Distance (m) and its gradient (grid frame, per metre) at grid-frame points (x0, x1, x2).

        The grid arguments may be scalars (one grid for the whole block) or per-lane tensors. Only
        lanes in ``mask`` read memory; the points must lie inside the grid box (callers box-test), as
        in ``graspforge.geometry.atlas.trilinear_lookup``.
        """
        u0 = (x0 - ox) / h
        u1 = (x1 - oy) / h
        u2 = (x2 - oz) / h
        i = tl.maximum(tl.minimum(tl.floor(u0).to(tl.int32), nx - 2), 0)
        j = tl.maximum(tl.minimum(tl.floor(u1).to(tl.int32), ny - 2), 0)
        k = tl.maximum(tl.minimum(tl.floor(u2).to(tl.int32), nz - 2), 0)
        tx = u0 - i.to(tl.float32)
        ty = u1 - j.to(tl.float32)
        tz = u2 - k.to(tl.float32)
        base = off + (i * ny + j) * nz + k  # node (i, j, k); +1 along z, +nz along y, +ny*nz along x
        sx = ny * nz
        v000 = tl.load(data_ptr + base, mask=mask, other=0.0)
        v001 = tl.load(data_ptr + base + 1, mask=mask, other=0.0)
        v010 = tl.load(data_ptr + base + nz, mask=mask, other=0.0)
        v011 = tl.load(data_ptr + base + nz + 1, mask=mask, other=0.0)
        v100 = tl.load(data_ptr + base + sx, mask=mask, other=0.0)
        v101 = tl.load(data_ptr + base + sx + 1, mask=mask, other=0.0)
        v110 = tl.load(data_ptr + base + sx + nz, mask=mask, other=0.0)
        v111 = tl.load(data_ptr + base + sx + nz + 1, mask=mask, other=0.0)
        wx0 = 1.0 - tx
        wy0 = 1.0 - ty
        wz0 = 1.0 - tz
        # interpolate along z, then y, then x; the gradient from the same partial sums
        f00 = wz0 * v000 + tz * v001
        f01 = wz0 * v010 + tz * v011
        f10 = wz0 * v100 + tz * v101
        f11 = wz0 * v110 + tz * v111
        e0 = wy0 * f00 + ty * f01
        e1 = wy0 * f10 + ty * f11
        d = wx0 * e0 + tx * e1
        gx = e1 - e0
        gy = wx0 * (f01 - f00) + tx * (f11 - f10)
        gz = wx0 * (wy0 * (v001 - v000) + ty * (v011 - v010)) + tx * (wy0 * (v101 - v100) + ty * (v111 - v110))
        return d, gx / h, gy / h, gz / h

    @triton.jit
    def _to_frame(Rb, tb, p0, p1, p2, mask):
        """World points p (per lane) into the frame of the link whose pose (R row-major, t) sits at
        Rb, tb (per lane): x = R^T (p - t); returns x, w = p - t and R's nine entries."""
        r00 = tl.load(Rb + 0, mask=mask, other=0.0)
        r01 = tl.load(Rb + 1, mask=mask, other=0.0)
        r02 = tl.load(Rb + 2, mask=mask, other=0.0)
        r10 = tl.load(Rb + 3, mask=mask, other=0.0)
        r11 = tl.load(Rb + 4, mask=mask, other=0.0)
        r12 = tl.load(Rb + 5, mask=mask, other=0.0)
        r20 = tl.load(Rb + 6, mask=mask, other=0.0)
        r21 = tl.load(Rb + 7, mask=mask, other=0.0)
        r22 = tl.load(Rb + 8, mask=mask, other=0.0)
        w0 = p0 - tl.load(tb + 0, mask=mask, other=0.0)
        w1 = p1 - tl.load(tb + 1, mask=mask, other=0.0)
        w2 = p2 - tl.load(tb + 2, mask=mask, other=0.0)
        x0 = r00 * w0 + r10 * w1 + r20 * w2
        x1 = r01 * w0 + r11 * w1 + r21 * w2
        x2 = r02 * w0 + r12 * w1 + r22 * w2
        return x0, x1, x2, w0, w1, w2, r00, r01, r02, r10, r11, r12, r20, r21, r22

    @triton.jit
    def _atomic_add3(ptr, a0, a1, a2, mask):
        """ptr[0:3] += a, atomically, for the lanes in ``mask``."""
        tl.atomic_add(ptr + 0, a0, mask=mask, sem="relaxed")
        tl.atomic_add(ptr + 1, a1, mask=mask, sem="relaxed")
        tl.atomic_add(ptr + 2, a2, mask=mask, sem="relaxed")

    @triton.jit
    def _atomic_add_outer(ptr, a0, a1, a2, b0, b1, b2, mask):
        """ptr[3 i + j] += a_i b_j (a 3x3 row-major block), atomically, for the lanes in ``mask``."""
        _atomic_add3(ptr + 0, a0 * b0, a0 * b1, a0 * b2, mask)
        _atomic_add3(ptr + 3, a1 * b0, a1 * b1, a1 * b2, mask)
        _atomic_add3(ptr + 6, a2 * b0, a2 * b1, a2 * b2, mask)

    @triton.jit
    def _frame_adjoint(gRb, gtb, w0, w1, w2, l0, l1, l2, r00, r01, r02, r10, r11, r12, r20, r21, r22, mask):
        """Adjoint of x = R^T (p - t) for the lanes in ``mask``: with l = dL/dx and w = p - t,
        dL/dR[j, i] = w_j l_i and dL/dt = -R l, added atomically at gRb / gtb; returns R l (= dL/dp)."""
        _atomic_add_outer(gRb, w0, w1, w2, l0, l1, l2, mask)
        r0 = r00 * l0 + r01 * l1 + r02 * l2
        r1 = r10 * l0 + r11 * l1 + r12 * l2
        r2 = r20 * l0 + r21 * l1 + r22 * l2
        _atomic_add3(gtb, -r0, -r1, -r2, mask)
        return r0, r1, r2

    @triton.jit
    def _grid_lookup(data_ptr, off_ptr, n_ptr, org_ptr, h_ptr, q, x0, x1, x2, mask):
        """Trilinear distance and gradient at x in grid q (per lane), reading only for the lanes in ``mask``."""
        return _trilinear(
            data_ptr, tl.load(off_ptr + q, mask=mask, other=0),
            tl.load(n_ptr + 3 * q, mask=mask, other=2), tl.load(n_ptr + 3 * q + 1, mask=mask, other=2),
            tl.load(n_ptr + 3 * q + 2, mask=mask, other=2),
            tl.load(org_ptr + 3 * q, mask=mask, other=0.0), tl.load(org_ptr + 3 * q + 1, mask=mask, other=0.0),
            tl.load(org_ptr + 3 * q + 2, mask=mask, other=0.0), tl.load(h_ptr + q, mask=mask, other=1.0),
            x0, x1, x2, mask,
        )

    @triton.jit
    def _points_fwd_kernel(
        pts_ptr, s_pb, s_pp, s_pc,  # (B, P, 3) world points (m), any strides
        R_ptr, t_ptr,  # (B, CL, 3, 3), (B, CL, 3) contiguous link poses
        gid_ptr, sc_ptr, sr2_ptr, lo_ptr, hi_ptr,
        data_ptr, off_ptr, n_ptr, org_ptr, h_ptr,
        out_d_ptr, out_arg_ptr,  # (B, P) float32, int32 contiguous
        P, outside,
        CL: tl.constexpr, BLOCK: tl.constexpr,
    ):
        """Program (b, block): d[b, p] = max over links g of the grid distance of points inside g's
        box (``outside`` if none, or if none exceeds it), arg[b, p] = that link or -1."""
        b = tl.program_id(0).to(tl.int64)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        pm = offs < P
        pbase = pts_ptr + b * s_pb + offs * s_pp
        p0 = tl.load(pbase, mask=pm, other=0.0)
        p1 = tl.load(pbase + s_pc, mask=pm, other=0.0)
        p2 = tl.load(pbase + 2 * s_pc, mask=pm, other=0.0)
        best = tl.zeros([BLOCK], tl.float32) + outside
        arg = tl.full([BLOCK], -1, tl.int32)
        for g in range(CL):
            q = tl.load(gid_ptr + g)
            Rb = R_ptr + (b * CL + g) * 9
            tb = t_ptr + (b * CL + g) * 3
            r00 = tl.load(Rb + 0)
            r01 = tl.load(Rb + 1)
            r02 = tl.load(Rb + 2)
            r10 = tl.load(Rb + 3)
            r11 = tl.load(Rb + 4)
            r12 = tl.load(Rb + 5)
            r20 = tl.load(Rb + 6)
            r21 = tl.load(Rb + 7)
            r22 = tl.load(Rb + 8)
            t0 = tl.load(tb + 0)
            t1 = tl.load(tb + 1)
            t2 = tl.load(tb + 2)
            # block-level broad phase: skip the link when no point of the block is in its sphere
            sc0 = tl.load(sc_ptr + 3 * q)
            sc1 = tl.load(sc_ptr + 3 * q + 1)
            sc2 = tl.load(sc_ptr + 3 * q + 2)
            e0 = p0 - (r00 * sc0 + r01 * sc1 + r02 * sc2 + t0)
            e1 = p1 - (r10 * sc0 + r11 * sc1 + r12 * sc2 + t1)
            e2 = p2 - (r20 * sc0 + r21 * sc1 + r22 * sc2 + t2)
            near = pm & (e0 * e0 + e1 * e1 + e2 * e2 < tl.load(sr2_ptr + q))
            if tl.max(near.to(tl.int32), axis=0) > 0:
                # link frame: x = R^T (p - t)
                w0 = p0 - t0
                w1 = p1 - t1
                w2 = p2 - t2
                x0 = r00 * w0 + r10 * w1 + r20 * w2
                x1 = r01 * w0 + r11 * w1 + r21 * w2
                x2 = r02 * w0 + r12 * w1 + r22 * w2
                inb = pm & (x0 > tl.load(lo_ptr + 3 * q)) & (x0 < tl.load(hi_ptr + 3 * q))
                inb = inb & (x1 > tl.load(lo_ptr + 3 * q + 1)) & (x1 < tl.load(hi_ptr + 3 * q + 1))
                inb = inb & (x2 > tl.load(lo_ptr + 3 * q + 2)) & (x2 < tl.load(hi_ptr + 3 * q + 2))
                d, _g0, _g1, _g2 = _trilinear(
                    data_ptr, tl.load(off_ptr + q),
                    tl.load(n_ptr + 3 * q), tl.load(n_ptr + 3 * q + 1), tl.load(n_ptr + 3 * q + 2),
                    tl.load(org_ptr + 3 * q), tl.load(org_ptr + 3 * q + 1), tl.load(org_ptr + 3 * q + 2),
                    tl.load(h_ptr + q), x0, x1, x2, inb,
                )
                better = inb & (d > best)  # strict: the first link wins ties, as in numba
                best = tl.where(better, d, best)
                arg = tl.where(better, g, arg)
        tl.store(out_d_ptr + b * P + offs, best, mask=pm)
        tl.store(out_arg_ptr + b * P + offs, arg, mask=pm)

    @triton.jit
    def _points_bwd_kernel(
        pts_ptr, s_pb, s_pp, s_pc,
        R_ptr, t_ptr, arg_ptr,
        up_ptr, s_ub, s_up,  # (B, P) upstream gradient, any strides
        gid_ptr, data_ptr, off_ptr, n_ptr, org_ptr, h_ptr,
        gR_ptr, gt_ptr, gp_ptr,  # (B, CL, 3, 3), (B, CL, 3) zero-initialised; (B, P, 3) written if WRITE_GP
        P,
        CL: tl.constexpr, BLOCK: tl.constexpr, WRITE_GP: tl.constexpr,
    ):
        """Adjoint of ``_points_fwd_kernel`` through the argmax link of each point: with l = u * grad
        (link frame) and w = p - t: dd/dR[j, i] = w_j l_i, dd/dt = -R l, dd/dp = R l."""
        b = tl.program_id(0).to(tl.int64)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        pm = offs < P
        g = tl.load(arg_ptr + b * P + offs, mask=pm, other=-1)
        u = tl.load(up_ptr + b * s_ub + offs * s_up, mask=pm, other=0.0)
        act = (g >= 0) & (u != 0.0)
        gp0 = tl.zeros([BLOCK], tl.float32)
        gp1 = tl.zeros([BLOCK], tl.float32)
        gp2 = tl.zeros([BLOCK], tl.float32)
        if tl.max(act.to(tl.int32), axis=0) > 0:
            gs = tl.maximum(g, 0)
            pbase = pts_ptr + b * s_pb + offs * s_pp
            p0 = tl.load(pbase, mask=act, other=0.0)
            p1 = tl.load(pbase + s_pc, mask=act, other=0.0)
            p2 = tl.load(pbase + 2 * s_pc, mask=act, other=0.0)
            x0, x1, x2, w0, w1, w2, r00, r01, r02, r10, r11, r12, r20, r21, r22 = _to_frame(
                R_ptr + (b * CL + gs) * 9, t_ptr + (b * CL + gs) * 3, p0, p1, p2, act)
            q = tl.load(gid_ptr + gs, mask=act, other=0)
            _d, l0, l1, l2 = _grid_lookup(data_ptr, off_ptr, n_ptr, org_ptr, h_ptr, q, x0, x1, x2, act)
            l0 = l0 * u
            l1 = l1 * u
            l2 = l2 * u
            gp0, gp1, gp2 = _frame_adjoint(gR_ptr + (b * CL + gs) * 9, gt_ptr + (b * CL + gs) * 3, w0, w1, w2, l0, l1, l2,
                                           r00, r01, r02, r10, r11, r12, r20, r21, r22, act)
            gp0 = tl.where(act, gp0, 0.0)
            gp1 = tl.where(act, gp1, 0.0)
            gp2 = tl.where(act, gp2, 0.0)
        if WRITE_GP:  # every lane, zeros included: no separate fill
            gpb = gp_ptr + (b * P + offs) * 3
            tl.store(gpb, gp0, mask=pm)
            tl.store(gpb + 1, gp1, mask=pm)
            tl.store(gpb + 2, gp2, mask=pm)

    @triton.jit
    def _item_frames(R_ptr, t_ptr, b, L: tl.constexpr, la, lb, s0, s1, s2, mask):
        """World point p = R_a s + t_a of items (link a sample s) and its position x = R_b^T (p - t_b)
        in the frame of link b; also R_b (row-major) and w = p - t_b, for the adjoint."""
        Ra = R_ptr + (b * L + la) * 9
        ta = t_ptr + (b * L + la) * 3
        p0 = tl.load(Ra + 0, mask=mask, other=0.0) * s0 + tl.load(Ra + 1, mask=mask, other=0.0) * s1 \
            + tl.load(Ra + 2, mask=mask, other=0.0) * s2 + tl.load(ta + 0, mask=mask, other=0.0)
        p1 = tl.load(Ra + 3, mask=mask, other=0.0) * s0 + tl.load(Ra + 4, mask=mask, other=0.0) * s1 \
            + tl.load(Ra + 5, mask=mask, other=0.0) * s2 + tl.load(ta + 1, mask=mask, other=0.0)
        p2 = tl.load(Ra + 6, mask=mask, other=0.0) * s0 + tl.load(Ra + 7, mask=mask, other=0.0) * s1 \
            + tl.load(Ra + 8, mask=mask, other=0.0) * s2 + tl.load(ta + 2, mask=mask, other=0.0)
        return _to_frame(R_ptr + (b * L + lb) * 9, t_ptr + (b * L + lb) * 3, p0, p1, p2, mask)

    @triton.jit
    def _item_lookup(data_ptr, off_ptr, n_ptr, org_ptr, h_ptr, lo_ptr, hi_ptr, q, x0, x1, x2, mask):
        """Box test of items at x (frame of link b, grid q per lane) and the trilinear lookup for
        those inside: (inside, d, gradient)."""
        lo0 = tl.load(lo_ptr + 3 * q, mask=mask, other=0.0)
        lo1 = tl.load(lo_ptr + 3 * q + 1, mask=mask, other=0.0)
        lo2 = tl.load(lo_ptr + 3 * q + 2, mask=mask, other=0.0)
        hi0 = tl.load(hi_ptr + 3 * q, mask=mask, other=0.0)
        hi1 = tl.load(hi_ptr + 3 * q + 1, mask=mask, other=0.0)
        hi2 = tl.load(hi_ptr + 3 * q + 2, mask=mask, other=0.0)
        inb = mask & (x0 > lo0) & (x0 < hi0) & (x1 > lo1) & (x1 < hi1) & (x2 > lo2) & (x2 < hi2)
        d, g0, g1, g2 = _grid_lookup(data_ptr, off_ptr, n_ptr, org_ptr, h_ptr, q, x0, x1, x2, inb)
        return inb, d, g0, g1, g2

    @triton.jit
    def _samples_fwd_kernel(
        R_ptr, t_ptr,  # (B, L, 3, 3), (B, L, 3) contiguous link poses
        s_ptr, ia_ptr, ib_ptr, iq_ptr,  # (3, N) float32 samples in link a; (N,) int32 a, b, grid of b
        lo_ptr, hi_ptr, data_ptr, off_ptr, n_ptr, org_ptr, h_ptr,
        out_ptr,  # (B, N) distances, or (B, num_programs(1)) partial energies when REDUCE
        N,
        L: tl.constexpr, BLOCK: tl.constexpr, REDUCE: tl.constexpr,
    ):
        """Program (b, block of items): distance of each item's sample inside link b's grid box, -1 m
        otherwise; with REDUCE the block's sum of max(0, d) instead."""
        b = tl.program_id(0).to(tl.int64)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        m = offs < N
        la = tl.load(ia_ptr + offs, mask=m, other=0)
        lb = tl.load(ib_ptr + offs, mask=m, other=0)
        q = tl.load(iq_ptr + offs, mask=m, other=0)
        s0 = tl.load(s_ptr + offs, mask=m, other=0.0)
        s1 = tl.load(s_ptr + N + offs, mask=m, other=0.0)
        s2 = tl.load(s_ptr + 2 * N + offs, mask=m, other=0.0)
        x0, x1, x2, _w0, _w1, _w2, _r00, _r01, _r02, _r10, _r11, _r12, _r20, _r21, _r22 = _item_frames(
            R_ptr, t_ptr, b, L, la, lb, s0, s1, s2, m)
        inb, d, _g0, _g1, _g2 = _item_lookup(data_ptr, off_ptr, n_ptr, org_ptr, h_ptr, lo_ptr, hi_ptr, q, x0, x1, x2, m)
        if REDUCE:
            part = tl.sum(tl.where(inb & (d > 0.0), d, 0.0), axis=0)
            tl.store(out_ptr + b * tl.num_programs(1) + tl.program_id(1), part)
        else:
            tl.store(out_ptr + b * N + offs, tl.where(inb, d, -1.0), mask=m)

    @triton.jit
    def _samples_bwd_kernel(
        R_ptr, t_ptr, s_ptr, ia_ptr, ib_ptr, iq_ptr,
        lo_ptr, hi_ptr, data_ptr, off_ptr, n_ptr, org_ptr, h_ptr,
        d_ptr,  # (B, N) forward output (not REDUCE; unused with REDUCE)
        up_ptr, s_ub, s_un,  # upstream: (B, N) any strides, or (B,) with REDUCE (s_un unused)
        gR_ptr, gt_ptr,  # (B, L, 3, 3), (B, L, 3) zero-initialised
        N,
        L: tl.constexpr, BLOCK: tl.constexpr, REDUCE: tl.constexpr,
    ):
        """Adjoint of ``_samples_fwd_kernel``. Per active item (in the box, upstream u != 0, and with
        REDUCE d > 0): l = u * grad (frame of b), w = p - t_b, r = R_b l:
        gR_b[j, i] += w_j l_i, gt_b -= r, gR_a[j, c] += r_j s_c, gt_a += r."""
        b = tl.program_id(0).to(tl.int64)
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        m = offs < N
        if REDUCE:
            u = tl.zeros([BLOCK], tl.float32) + tl.load(up_ptr + b * s_ub)
            act = m & (u != 0.0)
        else:
            u = tl.load(up_ptr + b * s_ub + offs * s_un, mask=m, other=0.0)
            act = m & (u != 0.0) & (tl.load(d_ptr + b * N + offs, mask=m, other=-1.0) > -1.0)
        if tl.max(act.to(tl.int32), axis=0) > 0:
            la = tl.load(ia_ptr + offs, mask=act, other=0)
            lb = tl.load(ib_ptr + offs, mask=act, other=0)
            q = tl.load(iq_ptr + offs, mask=act, other=0)
            s0 = tl.load(s_ptr + offs, mask=act, other=0.0)
            s1 = tl.load(s_ptr + N + offs, mask=act, other=0.0)
            s2 = tl.load(s_ptr + 2 * N + offs, mask=act, other=0.0)
            x0, x1, x2, w0, w1, w2, r00, r01, r02, r10, r11, r12, r20, r21, r22 = _item_frames(
                R_ptr, t_ptr, b, L, la, lb, s0, s1, s2, act)
            inb, d, l0, l1, l2 = _item_lookup(data_ptr, off_ptr, n_ptr, org_ptr, h_ptr, lo_ptr, hi_ptr, q, x0, x1, x2, act)
            if REDUCE:
                act = inb & (d > 0.0)  # d(sum max(0, d))/dd = 1 where d > 0
            # without REDUCE the forward's d > -1 decided; a lane whose recomputed box test disagrees
            # (last-bit differences between two compiled kernels, at the box surface) reads zeros
            l0 = l0 * u
            l1 = l1 * u
            l2 = l2 * u
            r0, r1, r2 = _frame_adjoint(gR_ptr + (b * L + lb) * 9, gt_ptr + (b * L + lb) * 3, w0, w1, w2, l0, l1, l2,
                                        r00, r01, r02, r10, r11, r12, r20, r21, r22, act)
            _atomic_add_outer(gR_ptr + (b * L + la) * 9, r0, r1, r2, s0, s1, s2, act)
            _atomic_add3(gt_ptr + (b * L + la) * 3, r0, r1, r2, act)


# ---------------------------------------------------------------------------------------------
# autograd wrappers
# ---------------------------------------------------------------------------------------------
def _grid_args(data: TritonCollisionData):
    return data.grid_data, data.grid_off, data.grid_n, data.grid_origin, data.grid_h


class _PointsVsLinks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points, R, t, data: TritonCollisionData, outside: float):  # type: ignore[override]
        B, P = points.shape[:2]
        CL = data.num_links
        R = R.contiguous()
        t = t.contiguous()
        d = torch.empty((B, P), device=points.device, dtype=torch.float32)
        arg = torch.empty((B, P), device=points.device, dtype=torch.int32)
        if B and P:
            _points_fwd_kernel[(B, triton.cdiv(P, BLOCK_P))](
                points, *points.stride(), R, t,
                data.link_grid, data.sphere_c, data.sphere_r2, data.box_lo, data.box_hi, *_grid_args(data),
                d, arg, P, float(outside), CL=CL, BLOCK=BLOCK_P, num_warps=NUM_WARPS,
            )
        ctx.save_for_backward(points, R, t, arg)
        ctx.data = data
        ctx.block = BLOCK_P
        return d

    @staticmethod
    def backward(ctx, upstream):  # type: ignore[override]
        points, R, t, arg = ctx.saved_tensors
        data = ctx.data
        B, P = points.shape[:2]
        CL = data.num_links
        gR = torch.zeros_like(R)
        gt = torch.zeros_like(t)
        # object points rarely need a gradient: skip the (B, P, 3) write then (~0.5 GB at B = 16384)
        write_gp = bool(ctx.needs_input_grad[0])
        gp = torch.empty((B, P, 3), device=points.device, dtype=torch.float32) if write_gp else gR  # gR: unused stand-in
        upstream = upstream.to(torch.float32)
        if B and P:
            _points_bwd_kernel[(B, triton.cdiv(P, ctx.block))](
                points, *points.stride(), R, t, arg, upstream, *upstream.stride(),
                data.link_grid, *_grid_args(data), gR, gt, gp, P,
                CL=CL, BLOCK=ctx.block, WRITE_GP=write_gp, num_warps=NUM_WARPS,
            )
        return (gp if write_gp else None), gR, gt, None, None


class _SamplesVsLinks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, R, t, data: TritonCollisionData, reduce: bool):  # type: ignore[override]
        B, L = R.shape[:2]
        N = data.num_items
        R = R.contiguous()
        t = t.contiguous()
        nb = triton.cdiv(N, BLOCK_N)
        out = torch.empty((B, nb) if reduce else (B, N), device=R.device, dtype=torch.float32)
        if B and N:
            _samples_fwd_kernel[(B, nb)](
                R, t, data.item_local, data.item_a, data.item_b, data.item_grid,
                data.box_lo, data.box_hi, *_grid_args(data), out, N,
                L=L, BLOCK=BLOCK_N, REDUCE=bool(reduce), num_warps=NUM_WARPS,
            )
        ctx.data = data
        ctx.reduce = bool(reduce)
        ctx.block = BLOCK_N
        if reduce:
            ctx.save_for_backward(R, t)
            return out.sum(1)  # per-block partials: a deterministic sum, no atomics
        ctx.save_for_backward(R, t, out)
        return out

    @staticmethod
    def backward(ctx, upstream):  # type: ignore[override]
        data = ctx.data
        if ctx.reduce:
            R, t = ctx.saved_tensors
            d = R  # unused by the kernel with REDUCE
        else:
            R, t, d = ctx.saved_tensors
        B, L = R.shape[:2]
        N = data.num_items
        gR = torch.zeros_like(R)
        gt = torch.zeros_like(t)
        upstream = upstream.to(torch.float32)
        s_ub = upstream.stride(0)
        s_un = upstream.stride(1) if upstream.dim() == 2 else 0
        if B and N:
            _samples_bwd_kernel[(B, triton.cdiv(N, ctx.block))](
                R, t, data.item_local, data.item_a, data.item_b, data.item_grid,
                data.box_lo, data.box_hi, *_grid_args(data), d, upstream, s_ub, s_un, gR, gt, N,
                L=L, BLOCK=ctx.block, REDUCE=ctx.reduce, num_warps=NUM_WARPS,
            )
        return gR, gt, None, None


def points_vs_links(
    points: torch.Tensor, R: torch.Tensor, t: torch.Tensor, data: TritonCollisionData, outside: float = -0.01
) -> torch.Tensor:
    """Signed distance d (B, P) (m, positive inside) of world ``points`` (B, P, 3) to the posed
    collision links: the max over the CL links (poses ``R`` (B, CL, 3, 3), ``t`` (B, CL, 3), in
    ``HandModel.collision_links`` order) of the trilinear grid distance of points inside the link's
    grid box; ``outside`` where no link's box holds the point (or no value exceeds ``outside``).

    Differentiable w.r.t. ``points``, ``R`` and ``t`` (through the argmax link). Float32 only; any
    strides for ``points``. Same values as the numba ``PointsVsLinks`` (float32 rounding aside).
    """
    if not HAVE_TRITON:
        raise RuntimeError("triton is not installed")
    _check_f32(points=points, R=R, t=t)
    B, P = points.shape[:2]
    CL = data.num_links
    if points.shape != (B, P, 3) or R.shape != (B, CL, 3, 3) or t.shape != (B, CL, 3):
        raise ValueError(f"points (B, P, 3), R (B, {CL}, 3, 3), t (B, {CL}, 3) expected, got "
                         f"{tuple(points.shape)}, {tuple(R.shape)}, {tuple(t.shape)}")
    return _PointsVsLinks.apply(points, R, t, data, float(outside))


def samples_vs_links(R: torch.Tensor, t: torch.Tensor, data: TritonCollisionData, reduce: bool = False) -> torch.Tensor:
    """Hand self-collision from the poses of all L links, ``R`` (B, L, 3, 3), ``t`` (B, L, 3).

    Without ``reduce``: d (B, N), the signed distance (m) of each self-collision item (a surface
    sample of link a inside the grid box of link b), -1 for items outside the box. With ``reduce``:
    the energy (B,) sum_i max(0, d_i), no (B, N) tensor kept for autograd (the backward recomputes).
    Differentiable w.r.t. ``R`` and ``t``; float32 only. Matches the numba ``SamplesVsLinks``.
    """
    if not HAVE_TRITON:
        raise RuntimeError("triton is not installed")
    _check_f32(R=R, t=t)
    B, L = R.shape[:2]
    if R.shape != (B, L, 3, 3) or t.shape != (B, L, 3):
        raise ValueError(f"R (B, L, 3, 3) and t (B, L, 3) expected, got {tuple(R.shape)}, {tuple(t.shape)}")
    return _SamplesVsLinks.apply(R, t, data, bool(reduce))
