"""GraspQP force closure (METHOD.md section 3): friction cones, grasp matrix, Danskin gradients of
V, finite-difference gradients of E_fc, known grasps, and the warm-starting helper."""

from __future__ import annotations

import math

import pytest
import torch

from graspforge.energy import (
    ForceClosureConfig,
    ForceClosureQP,
    force_closure_energy,
    friction_cone_edges,
    grasp_matrix,
    qp_value,
    singular_value_mean,
    solve_box_qp,
    tangent_basis,
)

F64 = torch.float64
ORIGIN = torch.zeros(3, dtype=F64)


def _normals(B: int, K: int, seed: int, min_abs_z: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(B, K, 3, generator=g, dtype=F64)
    if min_abs_z:  # keep away from the tangent-basis seam n_z = 0 for finite differences
        n[..., 2] = torch.where(n[..., 2] >= 0, 1.0, -1.0) * (n[..., 2].abs() + min_abs_z * n[..., :2].norm(dim=-1))
    return n / n.norm(dim=-1, keepdim=True)


def _grasp(B: int, K: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Contacts near a sphere of radius 8 cm with outward normals (a generic, solvable grasp)."""
    n = _normals(B, K, seed, min_abs_z=0.3)
    g = torch.Generator().manual_seed(seed + 1)
    return 0.08 * n + 0.005 * torch.randn(B, K, 3, generator=g, dtype=F64), n


AXES = torch.tensor(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1], [1, 0, -0.0], [0, -1, -0.0]], dtype=F64
)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tangent_basis_orthonormal_everywhere(dtype):
    near_equator = torch.tensor([[0.6, 0.8, 1e-12], [0.6, 0.8, -1e-12], [0.0, 1.0, 1e-30], [1e-9, 0, -1.0]], dtype=F64)
    n = torch.cat((AXES, near_equator, _normals(1, 500, seed=0)[0]))
    n = (n / n.norm(dim=-1, keepdim=True)).to(dtype)
    t1, t2 = tangent_basis(n)
    atol = 1e-12 if dtype == torch.float64 else 1e-6
    for t in (t1, t2):
        assert torch.isfinite(t).all()
        torch.testing.assert_close(t.norm(dim=-1), torch.ones(len(n), dtype=dtype), rtol=0, atol=atol)
        torch.testing.assert_close((t * n).sum(-1), torch.zeros(len(n), dtype=dtype), rtol=0, atol=atol)
    torch.testing.assert_close((t1 * t2).sum(-1), torch.zeros(len(n), dtype=dtype), rtol=0, atol=atol)
    torch.testing.assert_close(torch.linalg.cross(t1, t2, dim=-1), n, rtol=0, atol=atol)  # right-handed


@pytest.mark.parametrize("mu", [0.0, 0.2, 0.5, 0.9])
def test_friction_cone_edges(mu):
    n = torch.cat((AXES[None, :6], _normals(3, 6, seed=1)))  # (4, 6, 3)
    f = friction_cone_edges(n, mu)
    assert f.shape == (4, 6, 4, 3) and torch.isfinite(f).all()
    torch.testing.assert_close(f.norm(dim=-1), torch.ones(4, 6, 4, dtype=F64), rtol=0, atol=1e-12)
    # METHOD.md's edge sqrt(1 - mu^2)(-n) + mu t makes angle asin(mu) with -n
    cos = (f * -n.unsqueeze(-2)).sum(-1)
    torch.testing.assert_close(torch.acos(cos.clamp(-1, 1)), torch.full_like(cos, math.asin(mu)), rtol=0, atol=1e-6)
    # tangential parts are mu (+t1, +t2, -t1, -t2)
    t1, t2 = tangent_basis(n)
    tang = (f - cos.unsqueeze(-1) * -n.unsqueeze(-2))
    expect = mu * torch.stack((t1, t2, -t1, -t2), -2)
    torch.testing.assert_close(tang, expect, rtol=0, atol=1e-12)
    # their sum points straight into the object
    torch.testing.assert_close(f.sum(-2), 4 * math.sqrt(1 - mu * mu) * -n, rtol=0, atol=1e-12)


def test_friction_cone_general_edge_count_and_unnormalised_normals():
    n = _normals(2, 3, seed=2)
    f6 = friction_cone_edges(3.0 * n, 0.3, m=6)  # normals are normalised first
    assert f6.shape == (2, 3, 6, 3)
    torch.testing.assert_close(f6.norm(dim=-1), torch.ones(2, 3, 6, dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(f6.sum(-2), 6 * math.sqrt(1 - 0.09) * -n, rtol=0, atol=1e-12)


def test_grasp_matrix_layout():
    p, n = _grasp(2, 3, seed=3)
    c = torch.tensor([0.01, -0.02, 0.005], dtype=F64)
    G = grasp_matrix(p, n, c, mu=0.2, torque_weight=5.0)
    assert G.shape == (2, 6, 12)
    f = friction_cone_edges(n, 0.2)
    for b in range(2):
        for k in range(3):
            for j in range(4):
                col = G[b, :, 4 * k + j]
                torch.testing.assert_close(col[:3], f[b, k, j])
                torch.testing.assert_close(col[3:], 5.0 * torch.linalg.cross(p[b, k] - c, f[b, k, j], dim=-1))
    torch.testing.assert_close(grasp_matrix(p, n, c.expand(2, 3)), G)


@pytest.mark.parametrize(
    "args",
    [
        (torch.zeros(2, 3), torch.zeros(2, 3), ORIGIN),
        (torch.zeros(2, 3, 3, dtype=F64), torch.zeros(2, 4, 3, dtype=F64), ORIGIN),
        (torch.zeros(2, 3, 2, dtype=F64), torch.zeros(2, 3, 2, dtype=F64), ORIGIN),
        (torch.zeros(2, 3, 3, dtype=F64), torch.ones(2, 3, 3, dtype=F64), torch.zeros(3, 3, dtype=F64)),
        (torch.zeros(2, 3, 3, dtype=torch.int64), torch.ones(2, 3, 3, dtype=torch.int64), ORIGIN),
    ],
)
def test_grasp_matrix_rejects_bad_shapes(args):
    with pytest.raises(ValueError):
        grasp_matrix(*args)


@pytest.mark.parametrize("kwargs", [dict(mu=1.0), dict(mu=-0.1), dict(m=2), dict(torque_weight=-1.0)])
def test_grasp_matrix_rejects_bad_constants(kwargs):
    p, n = _grasp(1, 2, seed=4)
    with pytest.raises(ValueError):
        grasp_matrix(p, n, ORIGIN, **kwargs)


def _cube_grasp(h: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Six contacts at the face centres of a cube of half-size h, object-outward normals."""
    n = torch.tensor([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=F64)[None]
    return h * n, n


def test_force_closure_cube_vs_one_sided_grasp():
    eps = 1e-4
    p, n = _cube_grasp()
    G = grasp_matrix(p, n, ORIGIN)
    res = solve_box_qp(G)
    # the net wrench vanishes at the minimum force; V is only the eps term 0.5 eps |l|^2 with l = 1
    assert torch.bmm(G, res.l.unsqueeze(-1)).norm() < 1e-12
    torch.testing.assert_close(res.value, torch.tensor([0.5 * eps * 24], dtype=F64), rtol=1e-9, atol=0)
    # a rotated, shifted cube around its own centre: the same
    R = torch.linalg.qr(torch.randn(3, 3, dtype=F64, generator=torch.Generator().manual_seed(5)))[0]
    c = torch.tensor([0.3, -0.1, 0.2], dtype=F64)
    Gr = grasp_matrix(p @ R.T + c, n @ R.T, c)
    assert solve_box_qp(Gr).value.item() < 0.5 * eps * 24 * (1 + 1e-9)

    # all six contacts on the top face: every force pushes down, so the net wrench cannot vanish
    xy = torch.tensor([[x, y] for x in (-0.03, 0.0, 0.03) for y in (-0.02, 0.02)], dtype=F64)
    p1 = torch.cat((xy, torch.full((6, 1), 0.05, dtype=F64)), 1)[None]
    n1 = torch.tensor([0.0, 0.0, 1.0], dtype=F64).expand(1, 6, 3)
    G1 = grasp_matrix(p1, n1, ORIGIN)
    one_sided = solve_box_qp(G1)
    assert one_sided.value.item() > 100.0  # >= 0.5 (24 sqrt(1 - mu^2))^2 ~ 276
    E_cube = force_closure_energy(G, res.l)
    E_one = force_closure_energy(G1, one_sided.l)
    assert E_one.item() > 1000 * E_cube.item()


def test_danskin_gradient_of_V_matches_finite_differences():
    p, n = _grasp(3, 4, seed=6)
    G = grasp_matrix(p, n, ORIGIN).requires_grad_()
    V = qp_value(G, solve_box_qp(G).l)
    (grad,) = torch.autograd.grad(V.sum(), G)
    lam = solve_box_qp(G).l
    torch.testing.assert_close(grad, torch.bmm(G, lam.unsqueeze(-1)) * lam.unsqueeze(1))  # G l l^T
    g = torch.Generator().manual_seed(7)
    h = 1e-6
    for _ in range(40):
        b, r, m = (int(torch.randint(s, (1,), generator=g)) for s in G.shape)
        Gp, Gm = G.detach().clone(), G.detach().clone()
        Gp[b, r, m] += h
        Gm[b, r, m] -= h
        fd = (solve_box_qp(Gp).value[b] - solve_box_qp(Gm).value[b]) / (2 * h)
        torch.testing.assert_close(grad[b, r, m], fd, rtol=1e-5, atol=1e-7)


def _energy_of_contacts(points: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    G = grasp_matrix(points, normals, ORIGIN)
    return force_closure_energy(G, solve_box_qp(G.detach()).l)


@pytest.mark.parametrize("K", [4, 12])
def test_energy_gradient_matches_finite_differences(K):
    p, n = _grasp(2, K, seed=8 + K)
    p.requires_grad_()
    n.requires_grad_()
    assert torch.autograd.gradcheck(_energy_of_contacts, (p, n), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_singular_value_mean():
    G = grasp_matrix(*_grasp(4, 12, seed=9), ORIGIN)
    expect = torch.linalg.svdvals(G).log().mean(-1).exp()
    torch.testing.assert_close(singular_value_mean(G), expect, rtol=1e-10, atol=0)
    assert torch.autograd.gradcheck(singular_value_mean, (G[:2, :, :16].clone().requires_grad_(),))  # 4 contacts: rank 6
    # rank-deficient G (all contacts at one point: rank 5; nothing) and identical normals: finite
    # value and gradient
    p, n = _grasp(3, 6, seed=10)
    degenerate = torch.cat((
        grasp_matrix(p[:1, :1].expand(1, 6, 3), n[:1], ORIGIN),
        grasp_matrix(p[1:2], n[1:2, :1].expand(1, 6, 3), ORIGIN),
        torch.zeros(1, 6, 24, dtype=F64),
    )).requires_grad_()
    s = singular_value_mean(degenerate)
    (grad,) = torch.autograd.grad(s.sum(), degenerate)
    assert torch.isfinite(s).all() and torch.isfinite(grad).all()
    assert s[0] < 0.01 and s[2] <= 1e-6 * (1 + 1e-9)  # rank deficiency is punished, not hidden


def test_energy_formula_and_constants():
    cfg = ForceClosureConfig()
    assert (cfg.mu, cfg.num_edges, cfg.torque_weight, cfg.lower, cfg.upper, cfg.eps) == (0.2, 4, 5.0, 1.0, 21.0, 1e-4)
    G = grasp_matrix(*_grasp(3, 12, seed=11), ORIGIN)
    lam = solve_box_qp(G).l
    V = qp_value(G, lam)
    s = torch.linalg.svdvals(G).log().mean(-1).exp()
    torch.testing.assert_close(force_closure_energy(G, lam), 2 * (V + 0.01) * torch.exp(-0.1 * s))


def test_helper_warm_starts_and_resets():
    p, n = _grasp(64, 12, seed=12)
    fc = ForceClosureQP()
    fc.energy(p, n, ORIGIN)
    cold_iters = fc.last_result.iterations.clone()
    g = torch.Generator().manual_seed(13)
    p2 = p + 0.001 * torch.randn(p.shape, generator=g, dtype=F64)
    E_warm = fc.energy(p2, n, ORIGIN)
    warm_iters = fc.last_result.iterations.clone()
    assert warm_iters.float().mean() < 0.6 * cold_iters.float().mean()
    E_cold = ForceClosureQP().energy(p2, n, ORIGIN)
    torch.testing.assert_close(E_warm, E_cold, rtol=1e-10, atol=0)
    # reset drops the chosen grasps' warm starts only
    mask = torch.zeros(64, dtype=torch.bool)
    mask[::4] = True
    fc.reset(mask)
    assert torch.isnan(fc.warm_start[mask]).all() and torch.isfinite(fc.warm_start[~mask]).all()
    torch.testing.assert_close(fc.energy(p2, n, ORIGIN), E_cold, rtol=1e-10, atol=0)
    fc.reset()
    assert fc.warm_start is None
    # another batch shape: warm starts are dropped, not misapplied
    fc.energy(p2, n, ORIGIN)
    E_small = fc.energy(p2[:5, :4], n[:5, :4], ORIGIN)
    torch.testing.assert_close(E_small, ForceClosureQP().energy(p2[:5, :4], n[:5, :4], ORIGIN))
    with pytest.raises(ValueError):
        fc.reset(torch.zeros(3, dtype=torch.bool))


def test_helper_accept_keeps_the_warm_start_of_rejected_grasps():
    p, n = _grasp(6, 12, seed=16)
    fc = ForceClosureQP()
    fc.energy(p, n, ORIGIN)
    fc.accept(torch.ones(6, dtype=torch.bool))
    current = fc.warm_start.clone()
    p2, n2 = _grasp(6, 12, seed=17)  # a very different proposal
    fc.energy(p2, n2, ORIGIN)
    proposal = fc.last_result.l.clone()
    accepted = torch.tensor([True, False, True, False, False, True])
    fc.accept(accepted)
    torch.testing.assert_close(fc.warm_start[accepted], proposal[accepted], rtol=0, atol=0)
    torch.testing.assert_close(fc.warm_start[~accepted], current[~accepted], rtol=0, atol=0)
    # the next proposal from the kept states starts from their own solutions: nothing to do
    fc.energy(torch.where(accepted[:, None, None], p2, p), torch.where(accepted[:, None, None], n2, n), ORIGIN)
    assert (fc.last_result.iterations == 0).all()
    with pytest.raises(ValueError):
        fc.accept(torch.ones(5, dtype=torch.bool))


@pytest.mark.parametrize(
    "kwargs",
    [dict(mu=1.0), dict(mu=-0.2), dict(num_edges=2), dict(lower=21.0), dict(eps=0.0),
     dict(max_iter=0), dict(torque_weight=float("nan")), dict(sv_floor=-1.0)],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        ForceClosureConfig(**kwargs)


def test_float32_contacts():
    p, n = _grasp(8, 12, seed=14)
    p32, n32 = p.float().requires_grad_(), n.float().requires_grad_()
    E32 = ForceClosureQP().energy(p32, n32, ORIGIN.float())
    assert E32.dtype == torch.float32
    E32.sum().backward()
    p64, n64 = p.clone().requires_grad_(), n.clone().requires_grad_()
    E64 = ForceClosureQP().energy(p64, n64, ORIGIN)
    E64.sum().backward()
    torch.testing.assert_close(E32.double(), E64, rtol=1e-4, atol=0)
    assert torch.isfinite(p32.grad).all() and torch.isfinite(n32.grad).all()
    torch.testing.assert_close(p32.grad.double(), p64.grad, rtol=1e-2, atol=1e-2 * p64.grad.abs().max().item())


def test_nan_contact_does_not_leak_into_other_grasps():
    p, n = _grasp(6, 12, seed=15)
    clean_p, clean_n = p.clone().requires_grad_(), n.clone().requires_grad_()
    E_clean = ForceClosureQP().energy(clean_p, clean_n, ORIGIN)
    E_clean.sum().backward()
    bad_p = p.clone()
    bad_p[2, 5, 1] = float("nan")
    bad_p.requires_grad_()
    bad_n = n.clone().requires_grad_()
    fc = ForceClosureQP()
    E = fc.energy(bad_p, bad_n, ORIGIN)
    assert not fc.last_result.finite[2] and fc.last_result.finite[[0, 1, 3, 4, 5]].all()
    assert torch.isfinite(fc.last_result.l).all()
    ok = torch.tensor([0, 1, 3, 4, 5])
    torch.testing.assert_close(E[ok], E_clean[ok])
    E[ok].sum().backward()
    torch.testing.assert_close(bad_p.grad[ok], clean_p.grad[ok])
    torch.testing.assert_close(bad_n.grad[ok], clean_n.grad[ok])


def test_logdet_by_elimination_matches_cholesky():
    """The GPU path's log-determinant (Gaussian elimination as tensor ops, capturable in a CUDA
    graph) against torch's, values and gradients in float64, and s(G) on both backends."""
    from graspforge.backend import use_kernels
    from graspforge.energy.force_closure import _logdet_spd, singular_value_mean

    g = torch.Generator().manual_seed(0)
    X = torch.randn(16, 6, 9, generator=g, dtype=torch.float64)
    A = X @ X.mT + 1e-6 * torch.eye(6, dtype=torch.float64)
    a, b = A.clone().requires_grad_(), A.clone().requires_grad_()
    torch.testing.assert_close(_logdet_spd(a), torch.logdet(b), rtol=1e-12, atol=1e-12)
    _logdet_spd(a).sum().backward()
    torch.logdet(b).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-9)
    G = torch.randn(8, 6, 48, generator=g, dtype=torch.float64)
    with use_kernels("torch"):
        s_torch = singular_value_mean(G)
    with use_kernels("numba"):
        s_chol = singular_value_mean(G)
    torch.testing.assert_close(s_torch, s_chol, rtol=1e-12, atol=0)
    assert torch.allclose(s_torch, torch.linalg.svdvals(G).prod(-1) ** (1 / 6), rtol=1e-9)
