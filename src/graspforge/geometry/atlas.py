"""Many small signed-distance grids queried together: the hand's per-link collision fields.

A query names, per point, which grid to read (``grid_id``). On the CPU a numba kernel reads the
packed grids directly (distance and its gradient, one pass each way); on other devices a pure-torch
trilinear gather does the same. Distances are positive inside; each grid covers its link's box grown
by a margin, and points outside a grid's box read as "outside by at least the distance to the box".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..backend import kernel_backend
from . import _trilinear
from .exact import exact_signed_distance_union
from .grid import grid_node_positions

if _trilinear.HAVE_NUMBA:
    import numba as _nb

    from ._numba import dual_kernel

    @_nb.njit(cache=True, inline="always")
    def trilinear_lookup(data, meta, g, x0, x1, x2):
        """Distance and its gradient (grid frame, per metre) at (x0, x1, x2) in grid g of a packed
        atlas; the point must lie inside the grid box (callers clamp or box-test first)."""
        off = int(meta[g, 0])
        ny = int(meta[g, 2])
        nz = int(meta[g, 3])
        h = meta[g, 7]
        u0 = (x0 - meta[g, 4]) / h
        u1 = (x1 - meta[g, 5]) / h
        u2 = (x2 - meta[g, 6]) / h
        i = max(min(int(math.floor(u0)), int(meta[g, 1]) - 2), 0)
        j = max(min(int(math.floor(u1)), ny - 2), 0)
        k = max(min(int(math.floor(u2)), nz - 2), 0)
        tx = u0 - i
        ty = u1 - j
        tz = u2 - k
        d = 0.0
        sx = 0.0
        sy = 0.0
        sz = 0.0
        for c in range(8):
            di = (c >> 2) & 1
            dj = (c >> 1) & 1
            dk = c & 1
            wx = tx if di else 1.0 - tx
            wy = ty if dj else 1.0 - ty
            wz = tz if dk else 1.0 - tz
            v = data[off + ((i + di) * ny + (j + dj)) * nz + (k + dk)]
            d += wx * wy * wz * v
            sx += (1.0 if di else -1.0) * wy * wz * v
            sy += wx * (1.0 if dj else -1.0) * wz * v
            sz += wx * wy * (1.0 if dk else -1.0) * v
        return d, sx / h, sy / h, sz / h

    @dual_kernel
    def _atlas_fwd(data, meta, pts, gid, out, grad):
        # meta[g] = [offset, nx, ny, nz, ox, oy, oz, h]; points outside the box are clamped onto it
        # and read "value at the box minus the distance to it"
        for q in _nb.prange(pts.shape[0]):
            g = gid[q]
            h = meta[g, 7]
            x0 = min(max(pts[q, 0], meta[g, 4]), meta[g, 4] + h * (meta[g, 1] - 1))
            x1 = min(max(pts[q, 1], meta[g, 5]), meta[g, 5] + h * (meta[g, 2] - 1))
            x2 = min(max(pts[q, 2], meta[g, 6]), meta[g, 6] + h * (meta[g, 3] - 1))
            e0 = pts[q, 0] - x0
            e1 = pts[q, 1] - x1
            e2 = pts[q, 2] - x2
            d, g0, g1, g2 = trilinear_lookup(data, meta, g, x0, x1, x2)
            en = math.sqrt(e0 * e0 + e1 * e1 + e2 * e2)
            out[q] = d - en
            gx = g0 if e0 == 0.0 else 0.0
            gy = g1 if e1 == 0.0 else 0.0
            gz = g2 if e2 == 0.0 else 0.0
            if en > 0.0:
                gx -= e0 / en
                gy -= e1 / en
                gz -= e2 / en
            grad[q, 0] = gx
            grad[q, 1] = gy
            grad[q, 2] = gz


@dataclass
class LinkGrid:
    """A distance-only grid: ``values`` (nx, ny, nz) at ``origin + spacing * (i, j, k)``, metres."""

    origin: np.ndarray
    spacing: float
    values: np.ndarray

    def __post_init__(self):
        self.origin = np.asarray(self.origin, np.float64).reshape(3)
        self.spacing = float(self.spacing)
        self.values = np.asarray(self.values)
        if self.values.ndim != 3 or min(self.values.shape) < 2:
            raise ValueError(f"link grid needs (nx, ny, nz) values with >= 2 nodes per axis, got {self.values.shape}")
        if not (np.isfinite(self.spacing) and self.spacing > 0):
            raise ValueError("link grid spacing must be positive")
        if not np.all(np.isfinite(self.values.astype(np.float32))):
            raise ValueError("link grid holds non-finite values")

    @property
    def upper(self) -> np.ndarray:
        return self.origin + self.spacing * (np.asarray(self.values.shape) - 1)


def build_link_grid(parts: list[tuple[np.ndarray, np.ndarray]], spacing: float, margin: float, max_nodes_per_axis: int = 128) -> LinkGrid:
    """Exact signed distance of the union of ``parts`` sampled on a grid over their box + ``margin``."""
    allv = np.concatenate([np.asarray(v, np.float64) for v, _ in parts])
    lo, hi = allv.min(0) - margin, allv.max(0) + margin
    spacing = float(max(spacing, (hi - lo).max() / (max_nodes_per_axis - 1)))
    shape = tuple(max(2, int(np.ceil(e / spacing)) + 1) for e in hi - lo)
    origin = (lo + hi) / 2 - spacing * (np.asarray(shape) - 1) / 2
    d, _, _ = exact_signed_distance_union(parts, grid_node_positions(origin, spacing, shape))
    return LinkGrid(origin, spacing, d.reshape(shape).astype(np.float32))


class _AtlasQuery(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points, gid, data, meta):  # type: ignore[override]
        pts = points.detach().contiguous().numpy()
        out = np.empty(pts.shape[0], dtype=pts.dtype)
        grad = np.empty_like(pts)
        _atlas_fwd(data, meta, pts, gid.contiguous().numpy(), out, grad)
        ctx.save_for_backward(torch.from_numpy(grad))
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * g[:, None].to(grad.dtype), None, None, None


@dataclass(frozen=True, eq=False)
class AtlasTables:
    """A :class:`GridAtlas` as tensors for the torch backend (:func:`trilinear_gather`), one per dtype;
    Q grids, indexed by grid id."""

    #: (total nodes, 1) signed distances (m, positive inside) of every grid's nodes, C order, x slowest
    data: torch.Tensor
    #: (Q,) int64: first row of each grid in ``data``
    offset: torch.Tensor
    #: (Q, 3) int64: node counts (nx, ny, nz)
    dims: torch.Tensor
    #: (Q, 3), m: position of node (0, 0, 0) in the grid's (link's) frame
    origin: torch.Tensor
    #: (Q,), m: node spacing
    spacing: torch.Tensor


class GridAtlas:
    """Packed :class:`LinkGrid` s with a batched, differentiable query (see module docstring)."""

    def __init__(self, grids: list[LinkGrid], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        if not grids:
            raise ValueError("GridAtlas needs at least one grid")
        self.grids = grids
        self.device = torch.device(device)
        self.dtype = dtype
        sizes = [g.values.size for g in grids]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.data = np.concatenate([g.values.astype(np.float32).ravel() for g in grids])
        self.meta = np.array(
            [[offsets[i], *g.values.shape, *g.origin, g.spacing] for i, g in enumerate(grids)], np.float64
        )
        kw = dict(device=self.device, dtype=dtype)
        self.lower = torch.as_tensor(np.stack([g.origin for g in grids]), **kw)
        self.upper = torch.as_tensor(np.stack([g.upper for g in grids]), **kw)
        self._t_data = torch.as_tensor(self.data, **kw)
        self._tables: dict[torch.dtype, AtlasTables] = {}  # the atlas as tensors for the torch backend

    def query(self, points: torch.Tensor, grid_id: torch.Tensor, backend: str = "auto") -> torch.Tensor:
        """Signed distance (N,) of ``points`` (N, 3), each in the frame of its grid ``grid_id`` (N,)."""
        if points.shape[0] == 0:
            return points.new_zeros(0)
        use_numba = backend == "numba" or (backend == "auto" and kernel_backend(points.device) == "numba")
        if use_numba:
            return _AtlasQuery.apply(points, grid_id.to(torch.int64), self.data, self.meta)
        return self._query_torch(points, grid_id)

    def _query_torch(self, points: torch.Tensor, gid: torch.Tensor) -> torch.Tensor:
        t = self._torch_tables(points.dtype)
        return trilinear_gather(points, t.data, t.offset[gid], t.dims[gid], t.origin[gid], t.spacing[gid])[:, 0]

    def _torch_tables(self, dtype: torch.dtype) -> AtlasTables:
        if dtype not in self._tables:
            m = self.meta
            self._tables[dtype] = AtlasTables(
                data=self._t_data.to(dtype).reshape(-1, 1),
                offset=torch.as_tensor(m[:, 0].astype(np.int64), device=self.device),
                dims=torch.as_tensor(m[:, 1:4].astype(np.int64), device=self.device),
                origin=torch.as_tensor(m[:, 4:7], device=self.device, dtype=dtype),
                spacing=torch.as_tensor(m[:, 7], device=self.device, dtype=dtype),
            )
        return self._tables[dtype]


# the 8 corners of a cell, (8, 3) in {0, 1}; one tensor per device (no host-to-device copy per call)
_CORNERS = np.array([[(c >> 2) & 1, (c >> 1) & 1, c & 1] for c in range(8)], np.int64)
_CORNERS_ON: dict = {}


def _corners(device: torch.device) -> torch.Tensor:
    key = str(device)
    if key not in _CORNERS_ON:
        _CORNERS_ON[key] = torch.as_tensor(_CORNERS, device=device)
    return _CORNERS_ON[key]


def trilinear_gather(points: torch.Tensor, data: torch.Tensor, offset: torch.Tensor, dims: torch.Tensor,
                     origin: torch.Tensor, spacing: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation of packed grids, one grid per point, in fixed-shape torch ops.

    ``points`` (N, 3) metres; per point its grid's first row ``offset`` (N,) in ``data`` (rows, C)
    (C-order nodes, x slowest), node counts ``dims`` (N, 3), ``origin`` (N, 3) and ``spacing`` (N,).
    Returns (N, C). A point outside its grid reads the value at the nearest grid point, channel 0
    (a distance, positive inside) minus the distance to that point, as the numba kernels do.
    Differentiable w.r.t. ``points``; NaN points give NaN. One gather of the 8 corners, no host
    round trip, no data-dependent shapes: the torch backend of every grid lookup.
    """
    h = spacing[:, None]
    bad = torch.isnan(points).any(-1)
    u = torch.nan_to_num((points - origin) / h, nan=0.0, posinf=1e30, neginf=-1e30)  # grid units; NaN read at node 0
    hi = (dims - 1).to(u.dtype)
    uc = torch.minimum(torch.maximum(u, torch.zeros_like(u)), hi)
    i0 = torch.minimum(uc.detach().floor().to(torch.int64), dims - 2)
    t = uc - i0.to(uc.dtype)  # (N, 3) in [0, 1]
    corners = _corners(points.device)
    node = i0[:, None, :] + corners  # (N, 8, 3)
    idx = offset[:, None] + (node[..., 0] * dims[:, None, 1] + node[..., 1]) * dims[:, None, 2] + node[..., 2]
    c = corners.to(t.dtype)
    f = c * t[:, None, :] + (1 - c) * (1 - t[:, None, :])  # (N, 8, 3) per-axis weights
    w = f[..., 0] * f[..., 1] * f[..., 2]  # (N, 8); not .prod(), whose backward reads a tensor on the host
    vals = data[idx]  # (N, 8, C)
    out = (w[..., None] * vals).sum(1)
    excess = u - uc
    outside = (excess != 0).any(-1)
    dist = torch.where(outside, excess.square().sum(-1).clamp_min(1e-30).sqrt(), torch.zeros_like(excess[:, 0]))
    d0 = out[:, 0] - spacing * dist
    d0 = torch.where(bad, torch.full_like(d0, float("nan")), d0)
    return torch.cat([d0[:, None], out[:, 1:]], 1)
