"""Triton (GPU) kernel of :func:`graspforge.geometry.atlas.trilinear_gather`: packed grids, one per
point, interpolated with their gradient in one pass.

Why by hand: the torch version is ~50 small ops forward and as many backward (eight gathered
corners, weights, clamps, the outside-distance term); on a GPU at a few thousand grasps their launch
count, not their work, sets the time of the object lookups (contacts: distance + normal; E_hpen:
distance). Here one program handles a block of points: the forward writes the C channels and their
gradients w.r.t. the point, (N, C, 3); the backward is one contraction with the upstream gradient.
Fixed shapes, no host round trip: capturable in a CUDA graph. Tested against the torch version.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except Exception:  # pragma: no cover - triton is optional
    HAVE_TRITON = False

BLOCK = 128


if HAVE_TRITON:

    @triton.jit
    def _trilinear_fwd(pts_ptr, gid_ptr, data_ptr, off_ptr, dims_ptr, origin_ptr, h_ptr, out_ptr, jac_ptr, N,
                       C: tl.constexpr, BLOCK_N: tl.constexpr):
        pid = tl.program_id(0)
        i = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        live = i < N
        px = tl.load(pts_ptr + i * 3 + 0, mask=live, other=0.0)
        py = tl.load(pts_ptr + i * 3 + 1, mask=live, other=0.0)
        pz = tl.load(pts_ptr + i * 3 + 2, mask=live, other=0.0)
        g = tl.load(gid_ptr + i, mask=live, other=0)
        off = tl.load(off_ptr + g, mask=live, other=0)
        nx = tl.load(dims_ptr + g * 3 + 0, mask=live, other=2)
        ny = tl.load(dims_ptr + g * 3 + 1, mask=live, other=2)
        nz = tl.load(dims_ptr + g * 3 + 2, mask=live, other=2)
        ox = tl.load(origin_ptr + g * 3 + 0, mask=live, other=0.0)
        oy = tl.load(origin_ptr + g * 3 + 1, mask=live, other=0.0)
        oz = tl.load(origin_ptr + g * 3 + 2, mask=live, other=0.0)
        h = tl.load(h_ptr + g, mask=live, other=1.0)
        bad = (px != px) | (py != py) | (pz != pz)  # NaN point: read node 0, report NaN distance
        ux = tl.where(bad, 0.0, (px - ox) / h)
        uy = tl.where(bad, 0.0, (py - oy) / h)
        uz = tl.where(bad, 0.0, (pz - oz) / h)
        cx = tl.minimum(tl.maximum(ux, 0.0), (nx - 1).to(tl.float32))
        cy = tl.minimum(tl.maximum(uy, 0.0), (ny - 1).to(tl.float32))
        cz = tl.minimum(tl.maximum(uz, 0.0), (nz - 1).to(tl.float32))
        ix = tl.minimum(tl.floor(cx).to(tl.int32), nx - 2)
        iy = tl.minimum(tl.floor(cy).to(tl.int32), ny - 2)
        iz = tl.minimum(tl.floor(cz).to(tl.int32), nz - 2)
        tx = cx - ix.to(tl.float32)
        ty = cy - iy.to(tl.float32)
        tz = cz - iz.to(tl.float32)
        ex = ux - cx
        ey = uy - cy
        ez = uz - cz
        # clamped axes do not move with the point
        kx = tl.where(ex == 0.0, 1.0 / h, 0.0)
        ky = tl.where(ey == 0.0, 1.0 / h, 0.0)
        kz = tl.where(ez == 0.0, 1.0 / h, 0.0)
        en = tl.sqrt(ex * ex + ey * ey + ez * ez)
        inv_en = tl.where(en > 0.0, 1.0 / tl.maximum(en, 1e-30), 0.0)
        base = off + ((ix.to(tl.int64) * ny + iy) * nz + iz)
        for c in tl.static_range(C):
            v = tl.zeros([BLOCK_N], dtype=tl.float32)
            gx = tl.zeros([BLOCK_N], dtype=tl.float32)
            gy = tl.zeros([BLOCK_N], dtype=tl.float32)
            gz = tl.zeros([BLOCK_N], dtype=tl.float32)
            for k in tl.static_range(8):
                di: tl.constexpr = (k >> 2) & 1
                dj: tl.constexpr = (k >> 1) & 1
                dk: tl.constexpr = k & 1
                node = base + (di * ny + dj) * nz + dk
                val = tl.load(data_ptr + node * C + c, mask=live, other=0.0)
                wx = tx if di else 1.0 - tx
                wy = ty if dj else 1.0 - ty
                wz = tz if dk else 1.0 - tz
                sx = 1.0 if di else -1.0
                sy = 1.0 if dj else -1.0
                sz = 1.0 if dk else -1.0
                v += wx * wy * wz * val
                gx += sx * wy * wz * val
                gy += wx * sy * wz * val
                gz += wx * wy * sz * val
            gx = gx * kx
            gy = gy * ky
            gz = gz * kz
            if c == 0:  # a distance: outside the box, minus the distance to it
                v = v - h * en
                gx -= ex * inv_en
                gy -= ey * inv_en
                gz -= ez * inv_en
                v = tl.where(bad, px + py + pz, v)  # NaN where the point has a NaN
            tl.store(out_ptr + i * C + c, v, mask=live)
            tl.store(jac_ptr + (i * C + c) * 3 + 0, gx, mask=live)
            tl.store(jac_ptr + (i * C + c) * 3 + 1, gy, mask=live)
            tl.store(jac_ptr + (i * C + c) * 3 + 2, gz, mask=live)


class _TrilinearTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points, gid, data, offset, dims, origin, spacing):  # type: ignore[override]
        N, C = points.shape[0], data.shape[1]
        pts = points.detach().contiguous()
        out = torch.empty(N, C, device=points.device, dtype=torch.float32)
        jac = torch.empty(N, C, 3, device=points.device, dtype=torch.float32)
        if N:
            _trilinear_fwd[(triton.cdiv(N, BLOCK),)](pts, gid, data, offset, dims, origin, spacing, out, jac, N,
                                                     C=C, BLOCK_N=BLOCK)
        ctx.save_for_backward(jac)
        return out

    @staticmethod
    def backward(ctx, gout):  # type: ignore[override]
        (jac,) = ctx.saved_tensors
        return torch.einsum("nc,ncj->nj", gout.to(jac.dtype), jac), None, None, None, None, None, None


def trilinear_triton(points: torch.Tensor, gid: torch.Tensor, data: torch.Tensor, offset: torch.Tensor, dims: torch.Tensor,
                     origin: torch.Tensor, spacing: torch.Tensor) -> torch.Tensor:
    """(N, C) values of ``points`` (N, 3) float32 in grids ``gid`` (N,) int32 of a packed atlas: rows
    ``data`` (rows, C) float32, per grid ``offset`` (Q,) int64, ``dims`` (Q, 3) int32, ``origin``
    (Q, 3) and ``spacing`` (Q,) float32. Same values and gradient as
    :func:`~graspforge.geometry.atlas.trilinear_gather`; differentiable w.r.t. ``points``."""
    if points.dtype != torch.float32:
        raise ValueError(f"the Triton grid lookup takes float32 points, got {points.dtype}")
    return _TrilinearTriton.apply(points, gid, data, offset, dims, origin, spacing)
