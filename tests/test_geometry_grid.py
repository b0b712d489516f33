"""SDF grids (graspforge.geometry): accuracy against analytic SDFs, gradients, backends, edge cases."""

from __future__ import annotations

import igl
import numpy as np
import pytest
import torch
import trimesh

from graspforge.geometry import SDFGrid, build_sdf_grid, exact_signed_distance
from graspforge.geometry.exact import split_long_edges, winding_number

SPACING = 0.002
MARGIN = 0.03


def sphere_sdf(p: np.ndarray, radius: float) -> np.ndarray:
    return radius - np.linalg.norm(p, axis=-1)  # positive inside


def box_sdf(p: np.ndarray, half: np.ndarray) -> np.ndarray:
    q = np.abs(p) - half
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
    inside = np.minimum(q.max(-1), 0.0)
    return -(outside + inside)


def band_points(rng, lo, hi, count, sdf, band=0.02):
    """Uniform points in the box grown by ``band`` whose |sdf| <= band (rejection)."""
    p = rng.uniform(lo - band, hi + band, size=(count * 4, 3))
    return p[np.abs(sdf(p)) <= band][:count]


@pytest.fixture(scope="module")
def sphere_grid():
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.03)
    return mesh, build_sdf_grid([(mesh.vertices, mesh.faces)], SPACING, MARGIN)


@pytest.fixture(scope="module")
def box_grid():
    mesh = trimesh.creation.box(extents=(0.04, 0.06, 0.08))
    return mesh, build_sdf_grid([(mesh.vertices, mesh.faces)], SPACING, MARGIN)


def _errors_mm(grid, points, reference):
    d, _ = grid.query(torch.as_tensor(points))
    err = np.abs(d.numpy() - reference) * 1000
    return np.percentile(err, 95), err.max()


def test_sphere_grid_matches_analytic_sdf(sphere_grid):
    mesh, grid = sphere_grid
    rng = np.random.default_rng(0)
    pts = band_points(rng, mesh.bounds[0], mesh.bounds[1], 20000, lambda p: sphere_sdf(p, 0.03))
    assert len(pts) > 10000
    # the icosphere lies up to ~0.03 mm inside the true sphere; the grid adds its own error
    p95, worst = _errors_mm(grid, pts, sphere_sdf(pts, 0.03))
    assert p95 <= 0.5 and worst <= 2.0, (p95, worst)
    assert p95 <= 0.1  # a smooth convex shape: far better than the target


def test_box_grid_matches_analytic_sdf(box_grid):
    mesh, grid = box_grid
    rng = np.random.default_rng(1)
    half = np.array([0.02, 0.03, 0.04])
    pts = band_points(rng, -half, half, 20000, lambda p: box_sdf(p, half))
    p95, worst = _errors_mm(grid, pts, box_sdf(pts, half))
    assert p95 <= 0.5 and worst <= 2.0, (p95, worst)
    # the exact reference agrees with the analytic one (sign included) on the same points
    d_exact, _, _ = exact_signed_distance(mesh.vertices, mesh.faces, pts)
    np.testing.assert_allclose(d_exact, box_sdf(pts, half), atol=1e-9)


def test_grid_covers_margin_and_is_centred(box_grid):
    mesh, grid = box_grid
    assert np.all(grid.lower <= mesh.bounds[0] - MARGIN + 1e-12)
    assert np.all(grid.upper >= mesh.bounds[1] + MARGIN - 1e-12)
    np.testing.assert_allclose((grid.lower + grid.upper) / 2, mesh.bounds.mean(0), atol=1e-12)


def test_normals_point_outward(sphere_grid):
    _, grid = sphere_grid
    rng = np.random.default_rng(2)
    dirs = rng.normal(size=(2000, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    radii = rng.uniform(0.005, 0.05, size=(2000, 1))  # inside and outside
    d, n = grid.query(torch.as_tensor(dirs * radii))
    cos = (n.numpy() * dirs).sum(1)
    assert np.all(cos > 0.99)
    clear = np.abs(radii[:, 0] - 0.03) > 5e-4  # away from the surface the sign is unambiguous
    assert np.array_equal((d.numpy() > 0)[clear], (radii[:, 0] < 0.03)[clear])


def _cell_interior_points(grid: SDFGrid, count: int, seed: int, outside: bool = False) -> torch.Tensor:
    """Points at least 0.1 cell from any cell face (trilinear interpolation is smooth there)."""
    rng = np.random.default_rng(seed)
    shape = np.asarray(grid.shape)
    cells = rng.integers(0, shape - 1, size=(count, 3))
    local = rng.uniform(0.1, 0.9, size=(count, 3))
    p = grid.origin + grid.spacing * (cells + local)
    if outside:  # beyond the upper corner on every axis: the extrapolated branch
        p = grid.upper + rng.uniform(0.001, 0.01, size=(count, 3))
    return torch.tensor(p, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("outside", [False, True])
def test_gradcheck_distance_and_normal(sphere_grid, backend, outside):
    _, grid = sphere_grid
    pts = _cell_interior_points(grid, 24, seed=3, outside=outside)
    assert torch.autograd.gradcheck(
        lambda p: grid.query(p, backend=backend), (pts,), eps=1e-7, atol=1e-5, rtol=1e-4
    )


def test_backends_agree(box_grid):
    _, grid = box_grid
    rng = np.random.default_rng(4)
    # inside, near the surface and beyond the grid
    p = rng.uniform(grid.lower - 0.02, grid.upper + 0.02, size=(5000, 3))
    results = {}
    for backend in ("numba", "torch"):
        x = torch.tensor(p, dtype=torch.float32, requires_grad=True)
        d, n = grid.query(x, backend=backend)
        w = torch.linspace(-1, 1, 3)
        (d.sum() + (n * w).sum()).backward()
        results[backend] = (d.detach().numpy(), n.detach().numpy(), x.grad.numpy())
    for a, b in zip(results["numba"], results["torch"]):
        np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-3)
    np.testing.assert_allclose(results["numba"][0], results["torch"][0], atol=1e-6)


def test_query_shapes_and_dtypes(sphere_grid):
    _, grid = sphere_grid
    for dtype in (torch.float32, torch.float64):
        x = torch.zeros(2, 5, 3, dtype=dtype)
        for backend in ("auto", "numba", "torch"):
            d, n = grid.query(x, backend=backend)
            assert d.shape == (2, 5) and n.shape == (2, 5, 3) and d.dtype == dtype


def test_nan_points_give_nan_not_garbage(sphere_grid):
    _, grid = sphere_grid
    x = torch.tensor([[0.0, 0.0, 0.0], [float("nan"), 0.0, 0.0], [0.01, 0.0, float("nan")], [0.0, 0.0, 0.04]])
    for backend in ("numba", "torch"):
        d, n = grid.query(x, backend=backend)
        assert torch.isnan(d[1]) and torch.isnan(d[2])
        assert torch.isfinite(d[[0, 3]]).all() and torch.isfinite(n[[0, 3]]).all()
    d, n = grid.query(x, backend="numba")
    assert torch.isnan(n[1]).all()


def test_far_points_get_lower_bound_pointing_back(sphere_grid):
    _, grid = sphere_grid
    p = torch.tensor([[0.5, 0.0, 0.0], [0.0, -0.3, 0.2]], dtype=torch.float64, requires_grad=True)
    d, _ = grid.query(p)
    true = 0.03 - p.detach().norm(dim=1)
    assert torch.all(d <= true + 1e-4)  # signed distance at most the truth: a lower bound on the gap
    d.sum().backward()
    # ascending d leads back towards the object at the origin
    assert torch.all((p.grad * -p.detach()).sum(1) > 0)


def test_to_from_arrays_round_trip(box_grid):
    _, grid = box_grid
    again = SDFGrid.from_arrays(grid.to_arrays(prefix="x_"), prefix="x_")
    np.testing.assert_array_equal(again.data, grid.data)
    np.testing.assert_array_equal(again.origin, grid.origin)
    assert again.spacing == grid.spacing


def test_grid_rejects_bad_arrays():
    with pytest.raises(ValueError):
        SDFGrid(np.zeros(3), 0.002, np.zeros((1, 4, 4, 4), np.float32))
    with pytest.raises(ValueError):
        SDFGrid(np.zeros(3), 0.002, np.full((3, 3, 3, 4), np.nan, np.float32))
    with pytest.raises(ValueError):
        SDFGrid(np.zeros(3), -1.0, np.zeros((3, 3, 3, 4), np.float32))


def test_split_long_edges_keeps_surface_and_winding():
    mesh = trimesh.creation.cylinder(radius=0.03, height=0.1, sections=24)  # long slivers on the side
    v, f = split_long_edges(mesh.vertices, mesh.faces, 0.01, 10**6)
    tri = v[f]
    edges = np.linalg.norm(tri[:, [1, 2, 0]] - tri[:, [2, 0, 1]], axis=2)
    assert edges.max() <= 0.01 + 1e-12
    assert len(f) > len(mesh.faces)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    assert area == pytest.approx(mesh.area, rel=1e-12)
    rng = np.random.default_rng(5)
    q = rng.uniform(-0.06, 0.06, size=(3000, 3))
    off_surface = np.sqrt(igl.point_mesh_squared_distance(q, mesh.vertices, mesh.faces.astype(np.int64))[0]) > 1e-4
    exact = np.asarray(igl.winding_number(mesh.vertices, mesh.faces.astype(np.int64), q))
    fast = winding_number(mesh.vertices, mesh.faces, q)
    np.testing.assert_allclose(fast[off_surface], exact[off_surface], atol=0.05)
    assert np.array_equal(fast[off_surface] > 0.5, exact[off_surface] > 0.5)
    # the face budget is respected
    v2, f2 = split_long_edges(mesh.vertices, mesh.faces, 1e-4, 1000)
    assert len(f2) <= 1000


def test_exact_sign_tolerates_holes():
    # a sphere with a small cap removed still has a clean inside by winding number
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.03)
    keep = mesh.triangles_center[:, 2] < 0.028
    pts = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -0.02], [0.0, 0.0, 0.05], [0.05, 0.0, 0.0]])
    d, _, n = exact_signed_distance(mesh.vertices, mesh.faces[keep], pts)
    assert d[0] > 0.02 and d[1] > 0 and d[2] < 0 and d[3] < 0
    assert np.allclose(np.linalg.norm(n, axis=1), 1.0)
