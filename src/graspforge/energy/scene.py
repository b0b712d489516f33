"""The objects of one optimisation batch: several objects, the same number of grasps each.

Grasps of object o occupy rows ``o * G ... (o + 1) * G - 1`` of the batch (contiguous slices, so a
per-object query is a view, not a gather).
"""

from __future__ import annotations

import numpy as np
import torch

from ..objects import ObjectModel


class ObjectBatch:
    """``objects`` with ``grasps_per_object`` grasps each, on ``device``/``dtype``.

    ``surface_points`` (n_obj, P, 3): P farthest-point samples of each surface (E_pen);
    ``center`` (B, 3): each grasp's object centre of mass (torques, METHOD.md s. 3).
    """

    def __init__(self, objects: list[ObjectModel], grasps_per_object: int, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, surface_points: int = 2500):
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
        self.surface_points = torch.stack(pts)
        com = torch.stack([torch.as_tensor(o.center_of_mass, **kw) for o in self.objects])
        self.object_index = torch.arange(len(self.objects), device=self.device).repeat_interleave(self.grasps_per_object)
        self.center = com[self.object_index]

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
        ds, ns = [], []
        for _, obj, sl in self.slices():
            d, n = obj.signed_distance(points[sl])
            ds.append(d.to(points.dtype))
            ns.append(n.to(points.dtype))
        return torch.cat(ds), torch.cat(ns)

    def points_per_grasp(self) -> torch.Tensor:
        """(B, P, 3): each grasp's object surface samples (an expanded view, no copy per grasp)."""
        G = self.grasps_per_object
        return self.surface_points[:, None].expand(-1, G, -1, -1).reshape(self.batch_size, *self.surface_points.shape[1:])
