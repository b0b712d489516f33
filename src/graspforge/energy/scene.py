"""The objects of one optimisation batch: several objects, the same number of grasps each.

Grasps of object o occupy rows ``o * G ... (o + 1) * G - 1`` of the batch (contiguous slices, so a
per-object query is a view, not a gather).
"""

from __future__ import annotations

import numpy as np
import torch

from ..backend import kernel_backend
from ..geometry._trilinear_triton import trilinear_triton
from ..geometry.atlas import trilinear_gather
from ..geometry.sampling import kmeans
from ..objects import ObjectModel


def _cluster(points: np.ndarray, k: int, iterations: int = 8):
    """Spatial clusters of ``points`` (P, 3): a permutation grouping them, and per cluster
    (start, length, centre, radius) arrays."""
    lab, centres = kmeans(points, k, iterations)
    k = len(centres)
    order = np.argsort(lab, kind="stable")
    lens = np.bincount(lab, minlength=k)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    radius = np.array([np.linalg.norm(points[lab == c] - centres[c], axis=1).max() if lens[c] else 0.0 for c in range(k)]) + 1e-6
    return order, (starts.astype(np.int64), lens.astype(np.int64), centres, radius)


class ObjectBatch:
    """``objects`` with ``grasps_per_object`` grasps each, on ``device``/``dtype``.

    ``surface_points`` (n_obj, P, 3): P farthest-point samples of each surface (E_pen);
    ``center`` (B, 3): each grasp's object centre of mass (torques, METHOD.md s. 3).
    """

    def __init__(self, objects: list[ObjectModel], grasps_per_object: int, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, surface_points: int = 2500, clusters_per_object: int = 64):
        if not objects:
            raise ValueError("ObjectBatch needs at least one object")
        if grasps_per_object < 1:
            raise ValueError("grasps_per_object must be >= 1")
        self.objects = list(objects)
        self.grasps_per_object = int(grasps_per_object)
        self.device = torch.device(device)
        self.dtype = dtype
        kw = dict(device=self.device, dtype=dtype)
        pts = []
        for o in self.objects:
            sp = o.surface_points
            if len(sp) < surface_points:
                raise ValueError(f"object {o.name!r} has {len(sp)} surface samples, fewer than the {surface_points} asked for")
            pts.append(torch.tensor(np.array(sp[:surface_points]), **kw))
        # points sorted into spatial clusters (E_pen sums over points, so order is free): the
        # collision kernel skips clusters far from a link
        ordered, clusters = [], []
        for p in pts:
            order, cl = _cluster(p.detach().cpu().numpy().astype(np.float64), clusters_per_object)
            ordered.append(p[torch.as_tensor(order, device=p.device)])
            clusters.append(cl)
        self.surface_points = torch.stack(ordered)
        G = self.grasps_per_object
        self.point_clusters = tuple(np.repeat(np.stack([c[i] for c in clusters]), G, axis=0) for i in range(4))
        com = torch.stack([torch.as_tensor(o.center_of_mass, **kw) for o in self.objects])
        self.object_index = torch.arange(len(self.objects), device=self.device).repeat_interleave(self.grasps_per_object)
        self.center = com[self.object_index]
        self._bounds: dict = {}  # (object, device, dtype) -> padded box corners, filled on first use
        self._atlas: dict = {}  # (device, dtype) -> every object's [d, n] grid packed in one tensor

    @property
    def num_objects(self) -> int:
        return len(self.objects)

    @property
    def batch_size(self) -> int:
        return self.num_objects * self.grasps_per_object

    def slices(self):
        G = self.grasps_per_object
        for o, obj in enumerate(self.objects):
            yield o, obj, slice(o * G, (o + 1) * G)

    def signed_distance(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Object signed distance (B, K) (positive inside, m) and outward normal (B, K, 3) at each
        grasp's own object, for points (B, K, 3)."""
        if kernel_backend(points.device) != "numba":
            return self._packed_query(points, normals=True)
        ds, ns = [], []
        for _, obj, sl in self.slices():
            d, n = obj.signed_distance(points[sl])
            ds.append(d.to(points.dtype))
            ns.append(n.to(points.dtype))
        return torch.cat(ds), torch.cat(ns)

    def depth_inside(self, points: torch.Tensor) -> torch.Tensor:
        """Depth (B, K) in metres of points (B, K, 3) inside each grasp's own object, 0 outside;
        differentiable, equal to ``signed_distance(points)[0].clamp_min(0)``.

        On the CPU only points within one SDF cell of an object's bounding box are looked up: farther
        out all eight interpolation corners lie outside the object, so the grid's distance is negative
        there. Hand surface samples (E_hpen) are ~97 % outside the box, and the lookups were most of its
        cost. Elsewhere every point is looked up (fixed shapes, no host round trip).
        """
        if kernel_backend(points.device) != "numba":
            return self._packed_query(points, normals=False).clamp_min(0)
        out = []
        for o, obj, sl in self.slices():
            p = points[sl]
            lo, hi = self._padded_bounds(o, p)
            near = ((p >= lo) & (p <= hi)).all(-1)
            d = p.new_zeros(p.shape[:-1])
            if bool(near.any()):
                d_near, _ = obj.signed_distance(p[near])
                d = d.masked_scatter(near, d_near.to(p.dtype).clamp_min(0))
            out.append(d)
        return torch.cat(out)

    def _packed(self, device: torch.device, dtype: torch.dtype):
        key = (str(device), dtype)
        if key not in self._atlas:
            grids = [o.sdf for o in self.objects]
            sizes = [int(np.prod(g.shape)) for g in grids]
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            data = torch.as_tensor(np.concatenate([g.data.reshape(-1, 4) for g in grids]), device=device, dtype=dtype)
            dims = torch.as_tensor(np.array([g.shape for g in grids], np.int64), device=device)
            origin = torch.as_tensor(np.stack([g.origin for g in grids]), device=device, dtype=dtype)
            h = torch.as_tensor([g.spacing for g in grids], device=device, dtype=dtype)
            # the distance channel alone, contiguous, for distance-only queries (E_hpen)
            self._atlas[key] = (data, data[:, :1].contiguous(), torch.as_tensor(offsets, device=device), dims, origin, h)
        return self._atlas[key]

    def _packed_query(self, points: torch.Tensor, normals: bool):
        """All objects' grids in one gather: (B, K) distances and, with ``normals``, (B, K, 3) normals."""
        data, dist, offsets, dims, origin, h = self._packed(points.device, points.dtype)
        B, K = points.shape[:2]
        oid = self.object_index.to(points.device)[:, None].expand(B, K).reshape(-1)
        table = data if normals else dist
        if kernel_backend(points.device) == "triton" and points.dtype == torch.float32:
            out = trilinear_triton(points.reshape(-1, 3), oid, table, offsets, dims, origin, h)
        else:
            out = trilinear_gather(points.reshape(-1, 3), table, offsets[oid], dims[oid], origin[oid], h[oid])
        d = out[:, 0].reshape(B, K)
        if not normals:
            return d
        n = out[:, 1:]
        n = n * torch.rsqrt(n.square().sum(-1, keepdim=True).clamp_min(1e-24))
        return d, n.reshape(B, K, 3)

    def _padded_bounds(self, o: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (o, like.device, like.dtype)
        if key not in self._bounds:
            obj = self.objects[o]
            pad = 1.001 * obj.sdf.spacing + 1e-6
            b = torch.as_tensor(np.array(obj.bounds), device=like.device, dtype=like.dtype)
            self._bounds[key] = (b[0] - pad, b[1] + pad)
        return self._bounds[key]

    def points_per_grasp(self) -> torch.Tensor:
        """(B, P, 3): each grasp's object surface samples (an expanded view, no copy per grasp)."""
        G = self.grasps_per_object
        return self.surface_points[:, None].expand(-1, G, -1, -1).reshape(self.batch_size, *self.surface_points.shape[1:])
