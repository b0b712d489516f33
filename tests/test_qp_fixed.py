"""The sync-free box-QP solvers (``energy._qp_fixed``: fixed-shape torch; ``energy._qp_triton``: one
Triton program per problem) against the numba solver and an exact active-set reference: cold and
warm starts, the iteration cap, non-finite inputs, no host synchronisation (profiler), and the Triton
kernel in Triton's interpreter on the CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from test_qp import problem_families, reference_values

from graspforge.energy import grasp_matrix, solve_box_qp
from graspforge.energy import _qp_fixed, _qp_triton
from graspforge.energy.qp import _result

LO, HI, EPS = 1.0, 21.0, 1e-4
HAVE_DAQP = importlib.util.find_spec("daqp") is not None
GRASP_FAMILIES = ("sphere", "hemisphere", "random contacts", "one point", "same normal")


def fixed_result(G, warm_start=None, iterations=30, lower=LO, upper=HI, eps=EPS, rtol=1e-15, solve=None):
    """BoxQPResult of a fixed-iteration solver, assembled as ``qp._solve`` does for its torch backend."""
    solve = solve or _qp_fixed.solve_fixed
    Gd = G.detach().to(torch.float64)
    finite = torch.isfinite(Gd).flatten(1).all(1)
    Gd = Gd.masked_fill(~finite[:, None, None], 0.0)
    l, y, iters, conv = solve(Gd, lower, upper, eps, warm_start, iterations, rtol)
    l = l.masked_fill(~finite[:, None], lower)
    return _result(Gd, l, y, iters, conv, finite, lower, upper, eps, G.dtype)


def exact_solutions(G: np.ndarray, lo=LO, hi=HI, eps=EPS) -> np.ndarray:
    """Minimisers (B, M) from daqp (dual active-set, exact up to its tolerance)."""
    import daqp

    B, R, M = G.shape
    H = np.einsum("brm,brn->bmn", G, G) + eps * np.eye(M)
    out = np.empty((B, M))
    for b in range(B):
        x, _, flag, _ = daqp.solve(H[b], np.zeros(M), np.zeros((0, M)), np.full(M, hi), np.full(M, lo),
                                   np.zeros(M, dtype=np.int32), primal_tol=1e-12, eps_prox=0)
        assert flag >= 1
        out[b] = x
    return out


def sphere_grasps(B, seed, K=12):
    g = torch.Generator().manual_seed(seed)
    n = torch.nn.functional.normalize(torch.randn(B, K, 3, generator=g, dtype=torch.float64), dim=-1)
    return 0.08 * n + 0.01 * torch.randn(B, K, 3, generator=g, dtype=torch.float64), n


def perturbed(p, n, seed, scale=0.01):
    """G of grasps moved a little (an optimiser step) and the G before."""
    g = torch.Generator().manual_seed(seed)
    c = torch.zeros(3, dtype=torch.float64)
    n2 = torch.nn.functional.normalize(n + scale * torch.randn(n.shape, generator=g, dtype=n.dtype), dim=-1)
    p2 = p + 0.1 * scale * torch.randn(p.shape, generator=g, dtype=p.dtype)
    return grasp_matrix(p, n, c), grasp_matrix(p2, n2, c)


@pytest.fixture(scope="module")
def families():
    return problem_families(np.random.default_rng(0))


def test_cold_start_matches_numba_and_the_exact_solver(families):
    total = conv = same_iters = 0
    for name, Gn in families.items():
        G = torch.tensor(Gn)
        res = fixed_result(G, iterations=30)
        ref = solve_box_qp(G, max_iter=30)  # numba: the same iteration, run to convergence
        exact = reference_values(Gn)
        c = res.converged
        total += len(c)
        conv += int(c.sum())
        same_iters += int((res.iterations == ref.iterations).sum())
        assert (res.l >= LO).all() and (res.l <= HI).all(), name
        v, vr = res.value[c], ref.value[c]
        torch.testing.assert_close(v, vr, rtol=1e-12, atol=1e-300, msg=name)
        rel = (v.numpy() - exact[c.numpy()]) / exact[c.numpy()]
        assert rel.max() <= 1e-9 and rel.min() >= -1e-9, f"{name}: value off the exact minimum by {abs(rel).max():.1e}"
        assert (res.gap[c] <= 1e-12 * res.value[c]).all(), name
        # l: both iterate to ~1e-8 (rounding amplified by 1/eps along flat directions, see test_qp)
        torch.testing.assert_close(res.l[c], ref.l[c], rtol=0, atol=1e-7, msg=name)
        assert (res.kkt_residual[c] <= 1e-6).all(), name
        if HAVE_DAQP and (name.startswith(GRASP_FAMILIES) or name == "gauss x1.0"):
            # well-conditioned families: l to 1e-9 of the exact minimiser
            x = torch.tensor(exact_solutions(Gn))
            torch.testing.assert_close(res.l[c], x[c], rtol=0, atol=1e-9, msg=name)
    assert total >= 1000
    assert conv >= 0.99 * total
    assert same_iters >= 0.99 * total  # the same iteration as the numba solver


def test_warm_start_on_realistic_grasps():
    p, n = sphere_grasps(256, seed=1)
    G1, G2 = perturbed(p, n, seed=2)
    first = solve_box_qp(G1)
    cold = solve_box_qp(G2)
    warm_ref = solve_box_qp(G2, warm_start=first.l)
    warm = fixed_result(G2, warm_start=first.l, iterations=6)
    assert warm.converged.float().mean() >= 0.99
    c = warm.converged
    torch.testing.assert_close(warm.value[c], cold.value[c], rtol=1e-10, atol=0)
    torch.testing.assert_close(warm.l[c], cold.l[c], rtol=0, atol=1e-8)
    assert torch.equal(warm.iterations[c], warm_ref.iterations[c])  # same iteration as numba
    assert warm.iterations.float().mean() < 0.6 * cold.iterations.float().mean()
    if HAVE_DAQP:
        x = torch.tensor(exact_solutions(G2.numpy()))
        torch.testing.assert_close(warm.l[c], x[c], rtol=0, atol=1e-9)
    # from the exact solution: no Newton step
    again = fixed_result(G2, warm_start=cold.l, iterations=6)
    assert (again.iterations == 0).all() and again.converged.all()
    # a useless warm start (random point, NaN and inf rows) gives the cold answer, with enough iterations
    g = torch.Generator().manual_seed(3)
    junk = LO + (HI - LO) * torch.rand(first.l.shape, generator=g, dtype=torch.float64)
    junk[::7] = float("nan")
    junk[3::7, 5] = float("inf")
    bad = fixed_result(G2, warm_start=junk, iterations=30)
    assert bad.converged.float().mean() >= 0.99
    torch.testing.assert_close(bad.value[bad.converged], cold.value[bad.converged], rtol=1e-10, atol=0)


def test_cold_start_converges_on_grasps_within_30_iterations():
    p, n = sphere_grasps(512, seed=4)
    res = fixed_result(grasp_matrix(p, n, torch.zeros(3, dtype=torch.float64)), iterations=30)
    assert res.converged.float().mean() >= 0.99


def test_iteration_cap_counts_and_frozen_rows():
    """Capped at n iterations: a row converges iff the numba solver needs <= n, and says when; rows
    that converged no longer change (bit for bit); the others stay feasible and certified."""
    p, n = sphere_grasps(128, seed=5)
    G = grasp_matrix(p, n, torch.zeros(3, dtype=torch.float64))
    need = solve_box_qp(G).iterations
    exact = reference_values(G.numpy())
    prev = None
    for cap in (1, 2, 3, 5, 8):
        res = fixed_result(G, iterations=cap)
        assert torch.equal(res.converged, need <= cap)
        assert torch.equal(res.iterations, need.clamp(max=cap))
        assert (res.l >= LO).all() and (res.l <= HI).all()
        assert (res.value.numpy() - exact <= res.gap.numpy() * (1 + 1e-9) + 1e-12).all()  # weak duality
        if prev is not None:
            done = prev.converged
            assert torch.equal(res.l[done], prev.l[done]) and torch.equal(res.gap[done], prev.gap[done])
        prev = res


def test_non_finite_problems_are_flagged_and_isolated():
    rng = np.random.default_rng(6)
    G = torch.tensor(rng.normal(size=(8, 6, 48)))
    clean = fixed_result(G)
    Gb = G.clone()
    Gb[2, 3, 5] = float("nan")
    Gb[5, 0, 0] = float("inf")
    ws = clean.l.clone()
    ws[6, 7] = float("nan")
    for w in (None, ws):
        l, y, it, cv = _qp_fixed.solve_fixed(Gb, LO, HI, EPS, w, 30, 1e-15)  # raw output: no NaN anywhere
        assert torch.isfinite(l).all() and torch.isfinite(y).all()
        res = fixed_result(Gb, warm_start=w)
        bad = torch.tensor([i in (2, 5) for i in range(8)])
        assert torch.equal(res.finite, ~bad)
        assert not res.converged[bad].any() and res.converged[~bad].all()
        assert torch.isfinite(res.l).all() and (res.l[bad] == LO).all()
        assert torch.isinf(res.value[bad]).all() and not torch.isnan(res.value).any()
        torch.testing.assert_close(res.value[~bad], clean.value[~bad], rtol=1e-12, atol=0)
        torch.testing.assert_close(res.l[~bad], clean.l[~bad], rtol=0, atol=1e-9)


@pytest.mark.parametrize("R,M", [(6, 4), (6, 16), (3, 10), (6, 48)])
def test_other_shapes_bounds_and_dtypes(R, M):
    rng = np.random.default_rng(7)
    Gn = rng.normal(size=(24, R, M))
    lo, hi, eps = 0.3, 2.7, 1e-3  # not representable in float32: any float32 rounding would show
    G = torch.tensor(Gn)
    ref = solve_box_qp(G, lo, hi, eps)
    for inp in (G, G.float()):
        res = fixed_result(inp, iterations=30, lower=lo, upper=hi, eps=eps)
        assert res.l.dtype == inp.dtype and res.converged.all()
        if inp.dtype == torch.float64:
            torch.testing.assert_close(res.value, ref.value, rtol=1e-12, atol=0)
            np.testing.assert_allclose(res.value.numpy(), reference_values(Gn, lo, hi, eps), rtol=1e-9)
    ws = ref.l + 0.01 * torch.randn(ref.l.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    res = fixed_result(G, warm_start=ws.clamp(lo, hi), iterations=30, lower=lo, upper=hi, eps=eps)
    torch.testing.assert_close(res.value, ref.value, rtol=1e-12, atol=0)
    empty = fixed_result(torch.zeros(0, R, M, dtype=torch.float64), warm_start=torch.zeros(0, M, dtype=torch.float64))
    assert empty.l.shape == (0, M) and empty.iterations.shape == (0,)


# ----- no host synchronisation, few operations -----

# metadata-only ops (no kernel on a GPU)
_VIEWS = {"aten::view", "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::as_strided",
          "aten::expand", "aten::transpose", "aten::t", "aten::mT", "aten::alias", "aten::detach", "aten::to",
          "aten::_reshape_alias", "aten::reshape", "aten::flatten", "aten::permute", "aten::empty",
          "aten::empty_strided", "aten::empty_like", "aten::lift_fresh", "aten::resize_", "aten::result_type"}


def profile_ops(fn):
    """(kernel-launching top-level aten ops by name, every aten op by name) of one call."""
    from collections import Counter

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    top = Counter(e.name for e in events if e.name not in _VIEWS
                  and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))
    return top, Counter(e.name for e in events)


def test_no_host_sync_and_op_count():
    p, n = sphere_grasps(64, seed=8)
    G1, G2 = perturbed(p, n, seed=9)
    ws = solve_box_qp(G1).l
    per_call = {}
    for iters in (2, 3, 8):
        top, every = profile_ops(lambda: _qp_fixed.solve_fixed(G2, LO, HI, EPS, ws, iters, 1e-15))
        for bad in ("aten::_local_scalar_dense", "aten::item", "aten::is_nonzero", "aten::nonzero",
                    "aten::masked_select", "aten::index", "aten::index_put_", "aten::sort", "aten::linalg_cholesky_ex"):
            assert every[bad] == 0, f"{bad} in a call with {iters} iterations"
        per_call[iters] = sum(top.values())
    per_iteration = per_call[3] - per_call[2]
    assert per_iteration <= 60, f"{per_iteration} operations per Newton iteration"
    assert per_call[8] == per_call[2] + 6 * per_iteration  # the same operations every iteration
    assert per_call[2] - 2 * per_iteration <= 110  # setup, warm start and results


# ----- the Triton kernel, in Triton's interpreter on the CPU -----

_TRITON_SCRIPT = textwrap.dedent(
    r"""
    import json, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[1])
    from test_qp import problem_families
    from graspforge.energy import _qp_fixed, _qp_triton, grasp_matrix, solve_box_qp
    assert _qp_triton.HAVE_TRITON
    LO, HI, EPS = 1.0, 21.0, 1e-4
    report = {}

    def compare(tag, G, ws=None, iterations=30, lo=LO, hi=HI, eps=EPS):
        a = _qp_fixed.solve_fixed(G, lo, hi, eps, ws, iterations, 1e-15)
        b = _qp_triton.solve_fixed(G, lo, hi, eps, ws, iterations, 1e-15)
        assert b[0].shape == a[0].shape and b[1].shape == a[1].shape, tag
        assert b[2].dtype == torch.int64 and b[3].dtype == torch.bool, tag
        assert torch.isfinite(b[0]).all() and torch.isfinite(b[1]).all(), tag
        assert torch.equal(a[3], b[3]), (tag, a[3], b[3])
        assert torch.equal(a[2], b[2]), (tag, a[2], b[2])
        dl = float((a[0] - b[0]).abs().max()) if a[0].numel() else 0.0
        assert dl <= 1e-9, (tag, dl)
        report[tag] = dict(iters=b[2].tolist(), converged=float(b[3].float().mean()), dl=dl)
        return b

    fam = problem_families(np.random.default_rng(0))
    _qp_triton.LS_CHUNK = 64  # one line-search tile: fewer interpreted steps
    G = torch.tensor(np.concatenate([fam[k][:2] for k in ("gauss x1.0", "gauss x10.0", "rank 2", "duplicated columns",
                                                          "sphere K=12", "hemisphere K=12", "one point K=12", "zero")]))
    compare("families cold", G)
    # realistic grasps, cold then warm-started after a small move
    g = torch.Generator().manual_seed(1)
    n = torch.nn.functional.normalize(torch.randn(12, 12, 3, generator=g, dtype=torch.float64), dim=-1)
    p = 0.08 * n + 0.01 * torch.randn(12, 12, 3, generator=g, dtype=torch.float64)
    c = torch.zeros(3, dtype=torch.float64)
    n2 = torch.nn.functional.normalize(n + 0.01 * torch.randn(n.shape, generator=g, dtype=n.dtype), dim=-1)
    G1, G2 = grasp_matrix(p, n, c), grasp_matrix(p + 0.001 * torch.randn(p.shape, generator=g, dtype=p.dtype), n2, c)
    first = compare("grasps cold", G1)
    ws = first[0].clone()
    ws[0] = float("nan")  # starts cold
    warm = compare("grasps warm", G2, ws, iterations=6)
    ref = solve_box_qp(G2, warm_start=ws)
    assert torch.equal(warm[2], ref.iterations), (warm[2], ref.iterations)
    assert (warm[0] - ref.l).abs().max() <= 1e-7
    # capped iterations, non-finite G
    compare("grasps capped", G2, iterations=2)
    Gb = G2[:6].clone()
    Gb[1, 2, 3] = float("nan")
    Gb[4, 0, 0] = float("inf")
    compare("non-finite", Gb, ws[:6])
    compare("no iteration", G2[:4], ws[:4], iterations=0)
    compare("empty", G[:0])
    # the chunked line search (the default on GPUs), other shapes (a partial last chunk) and bounds
    # not representable in float32
    _qp_triton.LS_CHUNK = 8
    compare("chunked line search", G[4:10])
    Gs = torch.tensor(np.random.default_rng(2).normal(size=(5, 3, 10)))
    compare("R=3 M=10", Gs, lo=0.3, hi=2.7, eps=1e-3)
    print("REPORT " + json.dumps(report))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_triton_kernel_in_the_interpreter():
    # TRITON_INTERPRET is read when @triton.jit runs (at import): a fresh interpreter with it set
    env = dict(os.environ, TRITON_INTERPRET="1", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    tests_dir = str(Path(__file__).resolve().parent)
    out = subprocess.run([sys.executable, "-c", _TRITON_SCRIPT, tests_dir], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout.split("REPORT ", 1)[1])
    assert report["families cold"]["converged"] == 1.0 and report["grasps warm"]["converged"] >= 0.9


_COMPILE_SCRIPT = textwrap.dedent(
    r"""
    import json, os, re, subprocess
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from graspforge.energy import _qp_triton as qt

    report = {}
    for has_ws in (False, True):
        sig = {"W_ptr": "*fp64", "ws_ptr": "*fp64", "l_ptr": "*fp64", "y_ptr": "*fp64", "it_ptr": "*i64",
               "cv_ptr": "*i8", "lower": "fp64", "upper": "fp64", "eps": "fp64", "rtol": "fp64", "band": "fp64",
               "dual0": "fp64", "n_iter": "i32", "R": "constexpr", "M": "constexpr", "HAS_WS": "constexpr",
               "BR": "constexpr", "BM": "constexpr", "CH": "constexpr"}
        consts = {"R": 6, "M": 48, "HAS_WS": has_ws, "BR": 8, "BM": 64, "CH": qt.LS_CHUNK}
        cc = triton.compile(ASTSource(fn=qt._box_qp_kernel, signature=sig, constexprs=consts),
                            target=GPUTarget("cuda", 90, 32), options={"num_warps": qt.NUM_WARPS})
        assert cc.asm.get("cubin"), "no cubin"
        ptx = os.path.join(os.environ["TRITON_CACHE_DIR"], f"k{int(has_ws)}.ptx")
        open(ptx, "w").write(cc.asm["ptx"])
        ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
        if os.path.exists(ptxas):
            info = subprocess.run([ptxas, "-v", "--gpu-name=sm_90a", ptx, "-o", ptx + ".cubin"],
                                  capture_output=True, text=True).stderr
            regs, spill = re.search(r"Used (\d+) registers", info), re.search(r"(\d+) bytes spill stores", info)
            report[f"warm_start={has_ws}"] = dict(registers=int(regs.group(1)) if regs else None,
                                                  spill_stores=int(spill.group(1)) if spill else None)
    print("REPORT " + json.dumps(report))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_triton_kernel_compiles_for_sm90(tmp_path):
    """Compiled (not interpreted) for an H100/H200 without a GPU: catches what the interpreter lets
    through (types of loop-carried values, unsupported float64 operations)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0 and ("ImportError" in out.stderr or "ModuleNotFoundError" in out.stderr):
        pytest.skip("triton's CUDA backend is not available: " + out.stderr.strip().splitlines()[-1])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    print(out.stdout.split("REPORT ", 1)[1])


def test_triton_module_imports_without_triton():
    code = ("import sys; sys.modules['triton'] = None\n"
            "from graspforge.energy import _qp_triton as m\n"
            "assert not m.HAVE_TRITON\n"
            "import torch\n"
            "try:\n    m.solve_fixed(torch.zeros(1, 6, 4, dtype=torch.float64), 1.0, 2.0, 1e-4)\n"
            "except RuntimeError:\n    print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# ----- on a CUDA GPU (skipped without one; bench/gpu_check.sh runs them) -----

_SOLVERS = {"torch": lambda: _qp_fixed.solve_fixed, "triton": lambda: _qp_triton.solve_fixed}


def _cuda_solver(name):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if name == "triton" and not _qp_triton.HAVE_TRITON:
        pytest.skip("triton not installed")
    return _SOLVERS[name]()


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["torch", "triton"])
def test_cuda_matches_the_cpu(name):
    solve = _cuda_solver(name)
    p, n = sphere_grasps(4096, seed=10)
    G1, G2 = perturbed(p, n, seed=11)
    first = solve_box_qp(G1)
    for ws, iters in ((None, 30), (first.l, 6)):
        ref = _qp_fixed.solve_fixed(G2, LO, HI, EPS, ws, iters, 1e-15)
        out = solve(G2.cuda(), LO, HI, EPS, None if ws is None else ws.cuda(), iters, 1e-15)
        out = [t.cpu() for t in out]
        assert (out[3] == ref[3]).float().mean() >= 0.999 and (out[2] == ref[2]).float().mean() >= 0.999
        both = out[3] & ref[3]
        torch.testing.assert_close(out[0][both], ref[0][both], rtol=0, atol=1e-8)


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["torch", "triton"])
def test_cuda_graph_capture_and_replay(name):
    solve = _cuda_solver(name)
    p, n = sphere_grasps(1024, seed=12)
    G1, G2 = perturbed(p, n, seed=13)
    _, G3 = perturbed(p, n, seed=14, scale=0.02)
    ws = solve_box_qp(G1).l.cuda()
    static_G, static_ws = G2.cuda(), ws.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (compiles the kernel) before capturing
        for _ in range(2):
            solve(static_G, LO, HI, EPS, static_ws, 6, 1e-15)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = solve(static_G, LO, HI, EPS, static_ws, 6, 1e-15)
    for G in (G2, G3):
        static_G.copy_(G.cuda())
        graph.replay()
        eager = solve(G.cuda(), LO, HI, EPS, ws, 6, 1e-15)
        torch.cuda.synchronize()
        for a, b in zip(captured, eager):
            assert torch.equal(a, b)
        static_ws.copy_(captured[0])  # next step warm-starts from this one, in place
        ws = captured[0].clone()
