"""Point sampling on surfaces: area-uniform samples and farthest-point subsets."""

from __future__ import annotations

import numpy as np
import torch


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, count: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` area-uniform random points on a triangle mesh and their face normals, (count, 3) each.

    Deterministic for a given ``seed``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    tri = v[f]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area2 = np.linalg.norm(cross, axis=1)
    if len(f) == 0 or area2.sum() <= 0:
        raise ValueError("cannot sample a surface with zero area")
    rng = np.random.default_rng(seed)
    face = rng.choice(len(f), size=count, p=area2 / area2.sum())
    u, w = rng.random(count), rng.random(count)
    flip = u + w > 1
    u[flip], w[flip] = 1 - u[flip], 1 - w[flip]
    t = tri[face]
    pts = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + w[:, None] * (t[:, 2] - t[:, 0])
    normals = cross[face] / np.maximum(area2[face, None], 1e-30)
    return pts, normals


def farthest_point_sampling(points: np.ndarray | torch.Tensor, count: int, start: int = 0) -> np.ndarray:
    """Indices (count,) of a farthest-point subset of ``points`` (N, 3), starting at index ``start``.

    Each step is one vectorised distance update over all N points; the loop runs ``count`` times.
    Its prefix of length k is itself a farthest-point subset of size k.
    """
    p = torch.as_tensor(np.asarray(points), dtype=torch.float64)
    n = p.shape[0]
    if count > n:
        raise ValueError(f"cannot pick {count} farthest points out of {n}")
    idx = np.empty(count, dtype=np.int64)
    dist = torch.full((n,), float("inf"), dtype=torch.float64)
    cur = int(start)
    for i in range(count):
        idx[i] = cur
        dist = torch.minimum(dist, ((p - p[cur]) ** 2).sum(1))
        cur = int(torch.argmax(dist))
    return idx


def kmeans(points: np.ndarray, k: int, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic k-means of ``points`` (N, 3) from a farthest-point start: labels (N,) and
    centres (k, 3). ``k`` is capped at N. Used to group points spatially for broad phases."""
    points = np.asarray(points, np.float64)
    k = max(1, min(int(k), len(points)))
    centres = points[farthest_point_sampling(points, k)]
    for _ in range(iterations):
        lab = ((points[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([points[lab == c].mean(0) if np.any(lab == c) else centres[c] for c in range(k)])
    return ((points[:, None] - centres[None]) ** 2).sum(-1).argmin(1), centres
