"""Accuracy checks of an object's SDF grid against exact mesh distances (for tests and benchmarks)."""

from __future__ import annotations

import numpy as np
import torch

from ..geometry import exact_signed_distance, sample_surface


def near_surface_points(
    vertices: np.ndarray, faces: np.ndarray, count: int, band: float = 0.02, seed: int = 0
) -> np.ndarray:
    """(count, 3) points within ``band`` metres of the surface, by construction.

    Each is an area-uniform surface sample moved by a vector no longer than ``band``: half along
    the normal by U(-band, band) (the layer a hand moves through), half in a random direction by
    U(0, band) (corners, edges, thin walls from any side).
    """
    rng = np.random.default_rng(seed)
    pts, normals = sample_surface(vertices, faces, count, seed=seed)
    half = count // 2
    along = rng.uniform(-band, band, size=(half, 1)) * normals[:half]
    direction = rng.normal(size=(count - half, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    around = rng.uniform(0.0, band, size=(count - half, 1)) * direction
    return pts + np.concatenate([along, around])


def sdf_errors(obj, points: np.ndarray, backend: str = "auto") -> dict[str, float]:
    """Grid vs exact signed distance at ``points`` (N, 3): error statistics in millimetres and
    the p95 angle (degrees) between grid and exact normals where the exact normal is defined."""
    d_exact, _, n_exact = exact_signed_distance(obj.vertices, obj.faces, points)
    with torch.no_grad():
        d, n = obj.signed_distance(torch.as_tensor(points, dtype=torch.float64), backend=backend)
    err = np.abs(d.numpy() - d_exact) * 1000.0
    # normals are ill-defined on the medial surface and on the surface itself; skip both
    ok = np.abs(d_exact) > 2 * obj.sdf.spacing
    cos = np.clip(np.sum(n.numpy()[ok] * n_exact[ok], axis=1), -1.0, 1.0)
    angle = np.degrees(np.arccos(cos)) if ok.any() else np.zeros(1)
    return {
        "p50_mm": float(np.percentile(err, 50)),
        "p95_mm": float(np.percentile(err, 95)),
        "max_mm": float(err.max()),
        "normal_p95_deg": float(np.percentile(angle, 95)),
    }
