"""Synthesis on a CUDA GPU: kernels against the torch reference, the captured step, and the same
grasps as the CPU. Skipped without a GPU (CI has none); ``bench/gpu_check.sh`` runs them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graspforge.backend import HAVE_TRITON, use_kernels
from graspforge.config import load_config
from graspforge.hands import load_hand
from graspforge.objects import load_object
from graspforge.pipelines.synthesis import make_optimizer, synthesize

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def _cfg(**kw):
    over = {"grasps": 16, "contacts": 12, "optimizer.iterations": 40, "energy.object_points": 1000, "seed": 2}
    over.update(kw)
    return load_config(overrides=over)


@pytest.fixture(scope="module")
def hands():
    return load_hand("allegro", device="cuda"), load_hand("allegro")


def _posed(hand, B=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    pose = hand.canonical_pose(B).cpu()
    pose[:, 9:] += 0.5 * torch.rand(B, hand.dof, generator=g)
    pose[:, :3] = -torch.tensor([0.0, 0.06, 0.03]) + 0.01 * torch.randn(B, 3, generator=g)
    pose[:, 9:] = torch.minimum(torch.maximum(pose[:, 9:], hand.lower.cpu()), hand.upper.cpu())
    return pose.to(hand.device)


@pytest.mark.skipif(not HAVE_TRITON, reason="triton not installed")
def test_triton_collision_kernels_match_torch(hands):
    hand, _ = hands
    pts = torch.as_tensor(np.array(load_object("sphere:radius=0.04").surface_points[:1500]), dtype=torch.float32, device="cuda")
    pose = _posed(hand)
    out = {}
    for name in ("triton", "torch"):
        with use_kernels(name):
            x = pose.clone().requires_grad_()
            st = hand.forward_kinematics(x)
            d = hand.signed_distance(st, pts.expand(16, -1, -1).contiguous())
            s = hand.self_penetration(st)
            (d.clamp_min(0).sum() + 3 * s.sum()).backward()
            out[name] = (d.detach(), s.detach(), x.grad)
    assert out["torch"][0].max() > 0 and out["torch"][1].max() > 0  # both terms active
    for a, b in zip(out["triton"], out["torch"]):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def test_qp_on_cuda_matches_the_cpu_solver():
    from graspforge.energy import grasp_matrix, solve_box_qp

    g = torch.Generator().manual_seed(0)
    n = torch.nn.functional.normalize(torch.randn(256, 12, 3, generator=g, dtype=torch.float64), dim=-1)
    G = grasp_matrix(0.04 * n, n, torch.zeros(3, dtype=torch.float64))
    ref = solve_box_qp(G)
    res = solve_box_qp(G.cuda(), max_iter=60)
    assert bool(res.converged.all())
    torch.testing.assert_close(res.value.cpu(), ref.value, rtol=1e-9, atol=1e-12)


def test_cuda_step_is_captured_and_matches_the_cpu(hands):
    """Counter-based random numbers: the CUDA run starts from the CPU run's grasps and takes the
    same random decisions; its first steps agree to rounding, and the captured graph replays the step."""
    hand, cpu_hand = hands
    objs = [load_object("box"), load_object("sphere:radius=0.04")]
    cfg = _cfg()
    opt_c, _, _ = make_optimizer(cpu_hand, objs, cfg)
    opt_g, _, _ = make_optimizer(hand, objs, cfg)
    torch.testing.assert_close(opt_g.pose.cpu(), opt_c.pose, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(opt_g.energy.cpu(), opt_c.energy, rtol=1e-3, atol=1e-4)
    for _ in range(5):
        opt_c.step()
        opt_g.step()
    assert opt_g._runner.status == "captured", opt_g._runner.status
    torch.testing.assert_close(opt_g.pose.cpu(), opt_c.pose, rtol=2e-3, atol=5e-4)
    for _ in range(60):
        opt_g.step()
    st = opt_g.sync()
    assert torch.isfinite(opt_g.energy).all() and 0.05 < st.accept_rate < 1.0


def test_captured_step_has_no_host_sync(hands):
    from torch.profiler import ProfilerActivity, profile

    hand, _ = hands
    opt, _, _ = make_optimizer(hand, [load_object("box")], _cfg())
    opt.step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        opt._step_body()
    names = [e.name for e in prof.events()]
    assert names.count("aten::_local_scalar_dense") == 0 and names.count("aten::nonzero") == 0


def test_synthesis_on_cuda_lowers_the_energy_and_writes_grasps(hands):
    hand, _ = hands
    res = synthesize(hand, [load_object("sphere:radius=0.04")], _cfg(**{"optimizer.iterations": 200, "optimizer.refine_fraction": 0.5}))
    gs = res.grasp_sets[0]
    curve = res.stats.energy_curve
    assert np.mean(curve[-1][1]) < 0.5 * np.mean(curve[0][1])
    assert np.isfinite(gs.energy).all() and len(gs) == 16
    assert np.all(np.abs(np.linalg.norm(gs.root_quaternion, axis=1) - 1) < 1e-5)
