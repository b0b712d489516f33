"""The batched box QP behind E_fc against an exact reference solver, its KKT conditions, warm
starts, dtypes, non-finite inputs and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graspforge.energy import grasp_matrix, solve_box_qp

LO, HI, EPS = 1.0, 21.0, 1e-4


def reference_values(G: np.ndarray, lo: float = LO, hi: float = HI, eps: float = EPS) -> np.ndarray:
    """Exact minimum values (B,) of 0.5 |G l|^2 + 0.5 eps |l|^2 on the box, one problem at a time.

    daqp (a dual active-set QP solver) when installed, else scipy's bounded-variable least squares
    on the equivalent problem min |[G; sqrt(eps) I] l|^2: both are exact active-set methods.
    """
    G = np.asarray(G, dtype=np.float64)
    B, R, M = G.shape
    out = np.empty(B)
    try:
        import daqp
    except ImportError:
        daqp = None
    if daqp is not None:
        H = np.einsum("brm,brn->bmn", G, G) + eps * np.eye(M)
        f, A = np.zeros(M), np.zeros((0, M))
        up, low, sense = np.full(M, hi), np.full(M, lo), np.zeros(M, dtype=np.int32)
        for b in range(B):
            x, _, flag, _ = daqp.solve(H[b], f, A, up, low, sense, primal_tol=1e-12, eps_prox=0)
            assert flag >= 1, f"reference solver failed on problem {b} (exit flag {flag})"
            out[b] = 0.5 * np.sum((G[b] @ x) ** 2) + 0.5 * eps * x @ x
        return out
    from scipy.optimize import lsq_linear

    reg = np.sqrt(eps) * np.eye(M)
    for b in range(B):
        x = lsq_linear(np.vstack([G[b], reg]), np.zeros(R + M), bounds=(lo, hi), method="bvls", tol=1e-15).x
        out[b] = 0.5 * np.sum((G[b] @ x) ** 2) + 0.5 * eps * x @ x
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _grasp(points: np.ndarray, normals: np.ndarray, center=(0.0, 0.0, 0.0)) -> np.ndarray:
    c = torch.tensor(center, dtype=torch.float64)
    return grasp_matrix(torch.tensor(points), torch.tensor(normals), c).numpy()


def problem_families(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """~1100 problems: random G of several scales and conditionings, grasp matrices of random
    contacts, and degenerate grasps."""
    fam: dict[str, np.ndarray] = {}
    for scale in (0.01, 1.0, 10.0):
        fam[f"gauss x{scale}"] = scale * rng.normal(size=(60, 6, 48))
    fam["gauss M=16"] = rng.normal(size=(60, 6, 16))
    fam["rows scaled 1e-3..10"] = 10.0 ** rng.uniform(-3, 1, size=(60, 6, 1)) * rng.normal(size=(60, 6, 48))
    fam["rank 2"] = rng.normal(size=(60, 6, 2)) @ rng.normal(size=(60, 2, 48))
    fam["duplicated columns"] = np.tile(rng.normal(size=(60, 6, 12)), (1, 1, 4))
    fam["zero"] = np.zeros((10, 6, 48))
    for K in (4, 12):
        n = _unit(rng.normal(size=(100, K, 3)))
        fam[f"sphere K={K}"] = _grasp(rng.uniform(0.03, 0.15, size=(100, 1, 1)) * n, n)
        half = n.copy()
        half[..., 2] = np.abs(half[..., 2])
        fam[f"hemisphere K={K}"] = _grasp(0.05 * half, half)
        p, nr = rng.uniform(-0.1, 0.1, size=(60, K, 3)), _unit(rng.normal(size=(60, K, 3)))
        fam[f"random contacts K={K}"] = _grasp(p, nr, rng.uniform(-0.02, 0.02, size=3))
        fam[f"one point K={K}"] = _grasp(np.repeat(p[:, :1], K, 1), nr)
        fam[f"same normal K={K}"] = _grasp(p, np.repeat(nr[:, :1], K, 1))
    return fam


@pytest.fixture(scope="module")
def families():
    return problem_families(np.random.default_rng(0))


def test_matches_exact_solver_on_1000_problems(families):
    total = 0
    for name, G in families.items():
        res = solve_box_qp(torch.tensor(G))
        ref = reference_values(G)
        total += len(G)
        v = res.value.numpy()
        assert res.converged.all(), name
        assert (res.l >= LO).all() and (res.l <= HI).all(), name
        rel = (v - ref) / ref
        assert rel.max() <= 1e-6, f"{name}: objective {rel.max():.2e} above the exact minimum"
        # the returned l is feasible, so its objective cannot be below the minimum (beyond rounding)
        assert rel.min() >= -1e-9, f"{name}: objective {rel.min():.2e} below the exact minimum"
        # the duality-gap certificate bounds the error
        assert (res.gap.numpy() <= 1e-12 * v).all(), name
    assert total >= 1000


def test_kkt_conditions_hold(families):
    for name, G in families.items():
        Gt = torch.tensor(G)
        res = solve_box_qp(Gt)
        lam = res.l
        g = torch.einsum("brm,brn,bn->bm", Gt, Gt, lam) + EPS * lam  # H l
        scale = (Gt.square().sum(1).amax(1, keepdim=True) + EPS) * HI  # |H| |l|
        tol = 1e-7 * scale  # l is accurate to ~1e-8 (rounding amplified by 1/eps), V to ~1e-15
        at_lo, at_hi = lam <= LO, lam >= HI
        free = ~(at_lo | at_hi)
        assert (g[free].abs() <= tol.expand_as(g)[free]).all(), f"{name}: gradient not zero on free variables"
        assert (g[at_lo] >= -tol.expand_as(g)[at_lo]).all(), f"{name}: wrong multiplier sign at the lower bound"
        assert (g[at_hi] <= tol.expand_as(g)[at_hi]).all(), f"{name}: wrong multiplier sign at the upper bound"
        assert (res.kkt_residual <= 1e-6).all(), name  # units of l (1..21); rounding amplified by 1/eps


def _sphere_grasps(B: int, K: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(B, K, 3, generator=g, dtype=torch.float64)
    n = n / n.norm(dim=-1, keepdim=True)
    return 0.08 * n + 0.01 * torch.randn(B, K, 3, generator=g, dtype=torch.float64), n


def test_warm_start_gives_the_cold_solution_faster():
    p, n = _sphere_grasps(256, 12, seed=1)
    c = torch.zeros(3, dtype=torch.float64)
    first = solve_box_qp(grasp_matrix(p, n, c))
    g = torch.Generator().manual_seed(2)
    n2 = n + 0.01 * torch.randn(n.shape, generator=g, dtype=n.dtype)
    G2 = grasp_matrix(p + 0.001 * torch.randn(p.shape, generator=g, dtype=p.dtype), n2 / n2.norm(dim=-1, keepdim=True), c)
    cold = solve_box_qp(G2)
    warm = solve_box_qp(G2, warm_start=first.l)
    assert cold.converged.all() and warm.converged.all()
    torch.testing.assert_close(warm.value, cold.value, rtol=1e-10, atol=0)
    torch.testing.assert_close(warm.l, cold.l, rtol=0, atol=1e-6)
    assert warm.iterations.float().mean() < 0.6 * cold.iterations.float().mean()
    # a warm start from the exact solution needs no Newton step
    assert (solve_box_qp(G2, warm_start=cold.l).iterations == 0).all()
    # a useless warm start (random point, NaN rows) still gives the same answer
    junk = LO + (HI - LO) * torch.rand(first.l.shape, generator=g, dtype=torch.float64)
    junk[::7] = float("nan")
    bad = solve_box_qp(G2, warm_start=junk)
    torch.testing.assert_close(bad.value, cold.value, rtol=1e-10, atol=0)


def test_float32_input_solved_in_float64():
    G = torch.tensor(problem_families(np.random.default_rng(3))["sphere K=12"])
    G32 = G.float()
    r32, r64 = solve_box_qp(G32), solve_box_qp(G32.double())
    assert r32.l.dtype == torch.float32 and r32.value.dtype == torch.float32
    assert r32.converged.all()
    torch.testing.assert_close(r32.value.double(), r64.value, rtol=1e-6, atol=0)
    torch.testing.assert_close(r32.l.double(), r64.l, rtol=0, atol=1e-5)


def test_non_finite_problems_are_flagged_and_isolated():
    rng = np.random.default_rng(4)
    G = torch.tensor(rng.normal(size=(8, 6, 48)))
    clean = solve_box_qp(G)
    Gb = G.clone()
    Gb[2, 3, 5] = float("nan")
    Gb[5, 0, 0] = float("inf")
    res = solve_box_qp(Gb, warm_start=clean.l)
    bad = torch.tensor([i in (2, 5) for i in range(8)])
    assert torch.equal(res.finite, ~bad)
    assert not res.converged[bad].any() and res.converged[~bad].all()
    assert torch.isfinite(res.l).all() and (res.l[bad] == LO).all()
    assert torch.isinf(res.value[bad]).all() and not torch.isnan(res.value).any()
    torch.testing.assert_close(res.value[~bad], clean.value[~bad], rtol=1e-12, atol=0)
    torch.testing.assert_close(res.l[~bad], clean.l[~bad], rtol=0, atol=1e-9)


def test_unconverged_iterates_are_feasible_and_certified(families):
    G = families["random contacts K=12"]
    res = solve_box_qp(torch.tensor(G), max_iter=2)
    assert not res.converged.all()
    ref = reference_values(G)
    assert (res.l >= LO).all() and (res.l <= HI).all()
    # weak duality: value - V <= gap, whatever the iterate
    assert (res.value.numpy() - ref <= res.gap.numpy() * (1 + 1e-9) + 1e-12).all()


def test_detached_and_shapes():
    G = torch.randn(3, 6, 8, dtype=torch.float64, requires_grad=True)
    res = solve_box_qp(G, lower=0.5, upper=2.0, eps=1e-3)
    assert not res.l.requires_grad and res.l.grad_fn is None
    assert res.l.shape == (3, 8) and res.value.shape == (3,) and res.iterations.shape == (3,)
    assert (res.l >= 0.5).all() and (res.l <= 2.0).all()
    ref = reference_values(G.detach().numpy(), 0.5, 2.0, 1e-3)
    np.testing.assert_allclose(res.value.numpy(), ref, rtol=1e-9)
    # one contact (M = 4), any number of rows, and an empty batch
    one = solve_box_qp(torch.randn(2, 6, 4, dtype=torch.float64))
    assert one.converged.all()
    empty = solve_box_qp(torch.zeros(0, 6, 48))
    assert empty.l.shape == (0, 48) and empty.value.shape == (0,)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(W=torch.zeros(6, 48)),
        dict(W=torch.zeros(2, 6, 48, dtype=torch.int64)),
        dict(W=np.zeros((2, 6, 48))),
        dict(W=torch.zeros(2, 6, 0)),
        dict(W=torch.zeros(2, 6, 48), lower=2.0, upper=1.0),
        dict(W=torch.zeros(2, 6, 48), upper=float("inf")),
        dict(W=torch.zeros(2, 6, 48), eps=0.0),
        dict(W=torch.zeros(2, 6, 48), warm_start=torch.zeros(2, 47)),
        dict(W=torch.zeros(2, 6, 48), max_iter=0),
        dict(W=torch.zeros(2, 6, 48), rtol=-1.0),
    ],
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        solve_box_qp(**kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(families):
    G = torch.tensor(families["sphere K=12"])
    cpu = solve_box_qp(G)
    gpu = solve_box_qp(G.cuda().float())
    assert gpu.l.is_cuda and gpu.converged.all()
    torch.testing.assert_close(gpu.value.cpu().double(), cpu.value, rtol=1e-5, atol=0)


def test_numba_and_torch_paths_agree():
    """The CPU kernel runs the same iteration as the pure-torch path (used on GPUs)."""
    import graspforge.energy.qp as qp_mod
    from graspforge.energy.force_closure import grasp_matrix

    if not qp_mod._qp_numba.HAVE_NUMBA:
        pytest.skip("numba not installed")
    g = torch.Generator().manual_seed(5)
    p = torch.nn.functional.normalize(torch.randn(64, 12, 3, generator=g, dtype=torch.float64), dim=-1) * 0.04
    n = torch.nn.functional.normalize(p + 0.3 * torch.randn(64, 12, 3, generator=g, dtype=torch.float64), dim=-1)
    G = grasp_matrix(p, n, torch.zeros(3, dtype=torch.float64))
    G[3, 0, 0] = float("nan")
    ws = torch.full((64, 48), 3.0, dtype=torch.float64)
    ws[::2] = float("nan")
    out = []
    try:
        for flag in (True, False):
            qp_mod._qp_numba.HAVE_NUMBA = flag
            out.append((qp_mod.solve_box_qp(G), qp_mod.solve_box_qp(G, warm_start=ws)))
    finally:
        qp_mod._qp_numba.HAVE_NUMBA = True
    for a, b in zip(out[0], out[1]):
        assert torch.equal(a.finite, b.finite) and torch.equal(a.converged, b.converged)
        torch.testing.assert_close(a.value, b.value, rtol=1e-12, atol=0)
        torch.testing.assert_close(a.l, b.l, rtol=1e-9, atol=1e-9)
        assert torch.equal(a.iterations, b.iterations)
