"""The Triton (GPU) collision kernels against the numba CPU kernels, run on the CPU by Triton's
interpreter: values, gradients, and no host synchronisation (CUDA-graph safety).

Triton reads TRITON_INTERPRET when a kernel is *decorated* (``triton.jit`` checks
``triton.knobs.runtime.interpret``, i.e. the environment, at that moment), so it must be set before
:mod:`graspforge.hands._collision_triton` is first imported; in a shared pytest process that import
may already have happened, and switching the module to interpreted kernels would leak into other
tests. The comparison therefore runs once in a subprocess (this file run as a script) that sets the
variable first and hands its arrays back in an .npz; the tests here only assert on them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HAVE_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAVE_TRITON, reason="triton is not installed")
MODULE = Path(__file__).resolve().parents[1] / "src" / "graspforge" / "hands" / "_collision_triton.py"

B, P = 4, 500  # P not a multiple of the point block: the tail is masked
OUTSIDE = -0.01
SAMPLES_BLOCK = 8192  # interpreter speed (one Python op per block op); 20480 items -> a masked tail


# ---------------------------------------------------------------------------------------------
# worker (subprocess, TRITON_INTERPRET=1)
# ---------------------------------------------------------------------------------------------
def _poses(hand, torch):
    """B poses with penetrations: canonical joints jittered, index and middle fingers spread into
    each other, and the two most self-penetrating of 64 seeded random joint vectors; random root
    rotations and offsets so that no frame is axis-aligned."""
    from graspforge.geometry.rotations import matrix_to_rot6d
    from graspforge.hands import _collision_kernels as K

    g = torch.Generator().manual_seed(0)
    lo, hi = hand.lower, hand.upper
    cand = hand.canonical_pose(64)
    cand[:, 9:] = lo + (hi - lo) * torch.rand(64, hand.dof, generator=g)
    st = hand.forward_kinematics(cand)
    npen = (K.SamplesVsLinks.apply(st.links.rot, st.links.pos, hand._grid_args, hand._self_args) > 0).sum(1)
    pose = hand.canonical_pose(B)
    pose[:, 9:] = (pose[:, 9:] + 0.2 * torch.randn(B, hand.dof, generator=g)).clamp(lo, hi)
    names = hand.description.joint_names
    pose[1, 9 + names.index("index_joint_0")] = -0.3
    pose[1, 9 + names.index("middle_joint_0")] = 0.3
    pose[2:, 9:] = cand[npen.argsort(descending=True)[:2], 9:]
    A = torch.linalg.qr(torch.randn(B, 3, 3, generator=g))[0]
    A = A * torch.linalg.det(A).sign()[:, None, None]
    pose[:, 3:9] = matrix_to_rot6d(A)
    pose[:, :3] = 0.05 * torch.randn(B, 3, generator=g)
    return pose, g


def _worker(out_path: str) -> None:
    assert os.environ.get("TRITON_INTERPRET") == "1"
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    from graspforge.hands import _collision_kernels as K
    from graspforge.hands import _collision_triton as T
    from graspforge.hands import load_hand

    T.BLOCK_N = SAMPLES_BLOCK
    t0 = time.perf_counter()
    hand = load_hand("allegro")
    data = T.TritonCollisionData.from_hand(hand)
    pose, g = _poses(hand, torch)
    with torch.no_grad():
        st = hand.forward_kinematics(pose)
        surf = hand.surface_points(st)
    # object points: hand surface samples jittered by 4 mm (about half end up inside a link), kept in
    # a non-contiguous (3, B, P) layout to exercise the strides
    idx = torch.randperm(surf.shape[1], generator=g)[:P]
    pts = (surf[:, idx] + 0.004 * torch.randn(B, P, 3, generator=g)).permute(2, 0, 1).contiguous().permute(1, 2, 0)
    links = hand.collision_links
    R, t = st.links.rot[:, links].contiguous(), st.links.pos[:, links].contiguous()
    w = torch.randn(B, P, generator=g)
    w[:, ::3] = 0.0  # zero upstream: those lanes must stay inactive
    Rall, tall = st.links.rot.contiguous(), st.links.pos.contiguous()
    N = data.num_items
    u_items = torch.randn(B, N, generator=g)
    u_items[:, ::2] = 0.0
    u_energy = torch.tensor([0.7, 1.3, -0.4, 2.0])
    setup_s = time.perf_counter() - t0

    res, times, ops = {}, {}, {}

    def run(name, f, inputs, upstream, needs_grad=None):
        needs_grad = needs_grad or [True] * len(inputs)
        leaves = [x.detach().clone().requires_grad_(n) for x, n in zip(inputs, needs_grad)]
        tic = time.perf_counter()
        if name.startswith("tri"):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                out = f(*leaves)
                out.backward(upstream)
            ops[name] = sorted({e.name for e in prof.events() if e.name.startswith("aten::")})
        else:
            out = f(*leaves)
            out.backward(upstream)
        times[name] = time.perf_counter() - tic
        res[f"{name}_out"] = out.detach().numpy()
        for i, x in enumerate(leaves):
            if x.requires_grad:
                res[f"{name}_grad{i}"] = x.grad.numpy()

    run("tri_points", lambda p, r, t_: T.points_vs_links(p, r, t_, data, OUTSIDE), (pts, R, t), w)
    run("nb_points", lambda p, r, t_: K.PointsVsLinks.apply(p, r, t_, hand._grid_args, OUTSIDE, None), (pts, R, t), w)
    # again with one program per grasp and fixed points (no point gradient written), points
    # broadcast over the batch (stride 0) as when every grasp sees the same object
    T.BLOCK_P = 512
    pts0 = pts[:1].expand(B, -1, -1)
    fixed = [False, True, True]
    run("tri_points_fixed", lambda p, r, t_: T.points_vs_links(p, r, t_, data, OUTSIDE), (pts0, R, t), w, fixed)
    run("nb_points_fixed", lambda p, r, t_: K.PointsVsLinks.apply(p, r, t_, hand._grid_args, OUTSIDE, None), (pts0, R, t), w, fixed)
    run("tri_items", lambda r, t_: T.samples_vs_links(r, t_, data), (Rall, tall), u_items)
    run("nb_items", lambda r, t_: K.SamplesVsLinks.apply(r, t_, hand._grid_args, hand._self_args), (Rall, tall), u_items)
    run("tri_energy", lambda r, t_: T.samples_vs_links(r, t_, data, reduce=True), (Rall, tall), u_energy)
    run("nb_energy", lambda r, t_: K.SamplesVsLinks.apply(r, t_, hand._grid_args, hand._self_args, True), (Rall, tall), u_energy)
    res["meta"] = np.array(json.dumps({"setup_s": setup_s, "times": times, "ops": ops}))
    np.savez(out_path, **res)


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def results(tmp_path_factory):
    pytest.importorskip("numba")
    out = tmp_path_factory.mktemp("collision_triton") / "results.npz"
    env = dict(os.environ, TRITON_INTERPRET="1", NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"interpreter worker failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    with np.load(out) as z:
        r = {k: z[k] for k in z.files}
    r["meta"] = json.loads(str(r["meta"]))
    return r


def _close_rel(a, b, rtol=1e-4):
    """Elementwise within rtol of the largest reference entry, and the whole within rtol (norm)."""
    scale = float(np.abs(b).max())
    assert scale > 0, "reference gradient is zero: the check could not fail"
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)
    assert np.linalg.norm(a - b) <= rtol * np.linalg.norm(b)


@needs_triton
def test_points_vs_links_matches_numba(results):
    d, d_ref = results["tri_points_out"], results["nb_points_out"]
    assert d.shape == (B, P) and d.dtype == np.float32
    np.testing.assert_allclose(d, d_ref, rtol=0, atol=1e-5)
    # the comparison means something: many points inside a link, many near one, some far from all
    assert 0.1 < (d_ref > 0).mean() < 0.9
    assert (d_ref > OUTSIDE).mean() > 0.5
    assert (d_ref == OUTSIDE).any()
    for i in range(3):  # points, R, t
        _close_rel(results[f"tri_points_grad{i}"], results[f"nb_points_grad{i}"])


@needs_triton
def test_points_vs_links_fixed_points_other_block(results):
    """Points shared by all grasps (stride 0), not requiring a gradient; 512 points per program."""
    d, d_ref = results["tri_points_fixed_out"], results["nb_points_fixed_out"]
    np.testing.assert_allclose(d, d_ref, rtol=0, atol=1e-5)
    assert 0.02 < (d_ref > 0).mean() < 0.9
    assert "tri_points_fixed_grad0" not in results
    for i in (1, 2):
        _close_rel(results[f"tri_points_fixed_grad{i}"], results[f"nb_points_fixed_grad{i}"])


@needs_triton
def test_samples_vs_links_matches_numba(results):
    d, d_ref = results["tri_items_out"], results["nb_items_out"]
    assert d.shape == d_ref.shape and d.dtype == np.float32
    np.testing.assert_array_equal(d > -1, d_ref > -1)  # same items near (inside link b's grid box)
    np.testing.assert_allclose(d, d_ref, rtol=0, atol=1e-5)
    penetrating = (d_ref > 0).sum(1)
    assert (penetrating >= 20).sum() >= 2, penetrating  # self-collision in at least two grasps
    for i in range(2):  # R, t
        _close_rel(results[f"tri_items_grad{i}"], results[f"nb_items_grad{i}"])


@needs_triton
def test_self_penetration_energy_matches_numba(results):
    e, e_ref = results["tri_energy_out"], results["nb_energy_out"]
    assert e.shape == (B,) and (e_ref > 0).sum() >= 2
    np.testing.assert_allclose(e, e_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(e, np.maximum(results["nb_items_out"], 0).sum(1), rtol=1e-5, atol=1e-6)
    for i in range(2):
        _close_rel(results[f"tri_energy_grad{i}"], results[f"nb_energy_grad{i}"])


@needs_triton
def test_no_host_sync(results):
    """One forward + backward of each kernel (autograd wrappers included) issues no op that reads a
    tensor back on the host (``.item()``, ``nonzero``, boolean masks): capturable in a CUDA graph.
    The interpreter itself only copies (``aten::copy_``), so the check sees the wrappers' ops."""
    for name, ops in results["meta"]["ops"].items():
        bad = [o for o in ops if o in ("aten::_local_scalar_dense", "aten::nonzero", "aten::item", "aten::masked_select")]
        assert not bad, f"{name}: {bad}"


def test_float32_only_and_shapes():
    """Checked before any launch (so no interpreter needed)."""
    pytest.importorskip("triton")
    import torch

    from graspforge.hands import _collision_triton as T
    from graspforge.hands import load_hand

    hand = load_hand("allegro")
    data = T.TritonCollisionData.from_hand(hand)
    G, L, N = hand.collision_links.numel(), hand.kinematics.tree.num_links, hand.self_pair_point.numel()
    assert data.num_links == G and data.num_items == N and data.item_local.shape == (3, N)
    assert data.grid_data.dtype == torch.float32 and data.grid_off.dtype == torch.int32
    assert int(data.item_grid.min()) >= 0 and int(data.item_a.max()) < L
    st = hand.forward_kinematics(hand.canonical_pose(2))
    R, t = st.links.rot[:, hand.collision_links], st.links.pos[:, hand.collision_links]
    pts = torch.zeros(2, 5, 3)
    with pytest.raises(TypeError, match="float32"):
        T.points_vs_links(pts.double(), R, t, data)
    with pytest.raises(TypeError, match="float32"):
        T.samples_vs_links(st.links.rot.double(), st.links.pos.double(), data)
    with pytest.raises(ValueError):
        T.points_vs_links(pts, st.links.rot, st.links.pos, data)  # all L links instead of the G


def test_module_imports_without_triton(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # makes `import triton` raise ImportError
    monkeypatch.setitem(sys.modules, "triton.language", None)
    spec = importlib.util.spec_from_file_location("_collision_triton_without_triton", MODULE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.HAVE_TRITON is False
    assert hasattr(mod, "TritonCollisionData") and callable(mod.points_vs_links)


if __name__ == "__main__":  # the interpreter worker: python test_collision_triton.py OUT.npz
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    _worker(sys.argv[1])
