"""Signed-distance grids: exact distances and normals sampled once on a regular grid, then
queried by trilinear interpolation, batched and differentiable.

Each node stores [d, n_x, n_y, n_z]: the signed distance (positive inside) and the exact outward
normal of the closest surface point. Interpolating the stored normals (then normalising) gives
smooth normals that follow the true surface, rather than the piecewise gradient of the
interpolated distance. On the CPU a fused numba kernel answers; elsewhere torch ``grid_sample``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..backend import kernel_backend
from . import _trilinear
from .exact import exact_signed_distance_union


def grid_node_positions(origin: np.ndarray, spacing: float, shape: tuple[int, int, int]) -> np.ndarray:
    """(nx * ny * nz, 3) node positions in C order (x slowest)."""
    axes = [origin[i] + spacing * np.arange(shape[i]) for i in range(3)]
    gx, gy, gz = np.meshgrid(*axes, indexing="ij")
    return np.stack([gx, gy, gz], -1).reshape(-1, 3)


@dataclass(frozen=True, eq=False)
class GridSampleTables:
    """An :class:`SDFGrid` as ``grid_sample`` reads it, on one device and dtype."""

    #: (1, 4, nz, ny, nx): [d, n_x, n_y, n_z] per node (grid_sample indexes (D, H, W) with (x, y, z))
    volume: torch.Tensor
    #: (3,), m: lower corner of the grid box (node (0, 0, 0))
    lower: torch.Tensor
    #: (3,), m: upper corner of the grid box
    upper: torch.Tensor
    #: (3,), 1/m: ``2 / (upper - lower)``; with ``shift`` maps a point (m) to grid_sample's [-1, 1]
    scale: torch.Tensor
    #: (3,): ``-1 - lower * scale``
    shift: torch.Tensor


@dataclass
class SDFGrid:
    """A signed-distance field on a regular grid (metres, positive inside).

    ``data[i, j, k] = [d, n_x, n_y, n_z]`` at ``origin + spacing * (i, j, k)``.
    """

    origin: np.ndarray
    spacing: float
    data: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.origin = np.asarray(self.origin, np.float64).reshape(3)
        self.spacing = float(self.spacing)
        self.data = np.ascontiguousarray(self.data, dtype=np.float32)
        if self.data.ndim != 4 or self.data.shape[-1] != 4 or min(self.data.shape[:3]) < 2:
            raise ValueError(f"SDF grid data must be (nx, ny, nz, 4) with >= 2 nodes per axis, got {self.data.shape}")
        if not (np.isfinite(self.spacing) and self.spacing > 0) or not np.all(np.isfinite(self.origin)):
            raise ValueError("SDF grid needs a finite origin and a positive spacing")
        if not np.all(np.isfinite(self.data)):
            raise ValueError("SDF grid holds non-finite values")

    # -- storage ----------------------------------------------------------------------------
    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {
            f"{prefix}origin": self.origin,
            f"{prefix}spacing": np.asarray(self.spacing, np.float64),
            f"{prefix}data": self.data,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "") -> "SDFGrid":
        return cls(arrays[f"{prefix}origin"], float(arrays[f"{prefix}spacing"]), arrays[f"{prefix}data"])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape[:3])  # type: ignore[return-value]

    @property
    def lower(self) -> np.ndarray:
        return self.origin

    @property
    def upper(self) -> np.ndarray:
        return self.origin + self.spacing * (np.asarray(self.shape) - 1)

    @property
    def values(self) -> np.ndarray:
        """(nx, ny, nz) signed distances at the nodes."""
        return self.data[..., 0]

    # -- queries ----------------------------------------------------------------------------
    def _torch(self, device: torch.device, dtype: torch.dtype) -> GridSampleTables:
        key = (str(device), dtype)
        if key not in self._cache:
            # grid_sample indexes (D, H, W) with coordinates (x, y, z): store as (C, z, y, x).
            t = torch.as_tensor(self.data, dtype=dtype, device=device).permute(3, 2, 1, 0)[None].contiguous()
            lo = torch.as_tensor(self.lower, dtype=dtype, device=device)
            hi = torch.as_tensor(self.upper, dtype=dtype, device=device)
            scale = 2.0 / (hi - lo)
            self._cache[key] = GridSampleTables(volume=t, lower=lo, upper=hi, scale=scale, shift=-1.0 - lo * scale)
        return self._cache[key]

    def query(self, points: torch.Tensor, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
        """Signed distance (...,) and outward unit normal (..., 3) at ``points`` (..., 3), metres.

        Differentiable w.r.t. ``points``, normal included. Points outside the grid get the value
        at the nearest grid point, minus the distance to it for the distance (a lower bound whose
        gradient still points back at the object). ``backend``: "auto", "numba" or "torch".
        """
        shape = points.shape[:-1]
        use_numba = backend == "numba" or (
            backend == "auto" and kernel_backend(points.device) == "numba"
            and points.dtype in (torch.float32, torch.float64)
        )
        if use_numba:
            out = _trilinear.query_cpu(points.reshape(-1, 3), self.data, self.origin, self.spacing)
            return out[:, 0].reshape(shape), out[:, 1:].reshape(*shape, 3)
        if backend not in ("auto", "torch"):
            raise ValueError(f"unknown SDF backend {backend!r}; use 'auto', 'numba' or 'torch'")
        t = self._torch(points.device, points.dtype)
        p = points.reshape(1, -1, 1, 1, 3)
        pc = torch.maximum(torch.minimum(p, t.upper), t.lower)
        out = F.grid_sample(t.volume, torch.addcmul(t.shift, pc, t.scale), mode="bilinear", padding_mode="border", align_corners=True)
        out = out.reshape(4, -1)
        excess = (p - pc).reshape(-1, 3)
        d = out[0] - excess.square().sum(-1).add(1e-30).sqrt() * (excess != 0).any(-1)
        n = out[1:].T
        n = n * torch.rsqrt(n.square().sum(-1, keepdim=True).clamp_min(1e-24))
        return d.reshape(shape), n.reshape(*shape, 3)


def build_sdf_grid(
    parts: list[tuple[np.ndarray, np.ndarray]],
    spacing: float,
    margin: float,
    max_nodes_per_axis: int = 256,
) -> SDFGrid:
    """Sample the exact signed distance and normal of the union of ``parts`` ((V, 3), (F, 3)).

    The grid covers the parts' bounding box grown by ``margin`` metres on every side, with nodes
    ``spacing`` metres apart (enlarged if an axis would need more than ``max_nodes_per_axis``).
    """
    allv = np.concatenate([np.asarray(v, np.float64) for v, _ in parts])
    lo = allv.min(0) - margin
    hi = allv.max(0) + margin
    ext = hi - lo
    spacing = float(max(spacing, ext.max() / (max_nodes_per_axis - 1)))
    shape = tuple(max(2, int(np.ceil(e / spacing)) + 1) for e in ext)
    origin = (lo + hi) / 2 - spacing * (np.asarray(shape) - 1) / 2
    d, _, n = exact_signed_distance_union(parts, grid_node_positions(origin, spacing, shape))
    n = np.nan_to_num(n)
    data = np.concatenate([d[:, None], n], 1).reshape(*shape, 4)
    return SDFGrid(origin=origin, spacing=spacing, data=data)
