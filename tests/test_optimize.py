"""MALA / MALA*: reproducibility, population statistics, resets, NaN handling, and that it optimises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from graspforge.config import GenerateConfig, OptimizerConfig, load_config
from graspforge.hands import load_hand
from graspforge.objects import load_object
from graspforge.optimize.init import (REFERENCE_OFFSET, REFERENCE_REACH, HullSampler, init_offset, init_setback, initial_joints,
                                      initial_root_poses)
from graspforge.optimize.mala import GraspOptimizer
from graspforge.optimize.rng import CounterRNG
from graspforge.geometry.rotations import rot6d_to_matrix
from graspforge.pipelines.synthesis import synthesize


@pytest.fixture(scope="module")
def hand():
    return load_hand("allegro")


def _cfg(**kw) -> GenerateConfig:
    over = {"grasps": 4, "contacts": 6, "optimizer.iterations": 15, "energy.object_points": 300}
    over.update(kw)
    return load_config(overrides=over)


def test_same_seed_same_result_bit_for_bit(hand):
    obj = load_object("box")
    a = synthesize(hand, [obj], _cfg(seed=3)).grasp_sets[0]
    b = synthesize(hand, [obj], _cfg(seed=3)).grasp_sets[0]
    c = synthesize(hand, [obj], _cfg(seed=4)).grasp_sets[0]
    assert np.array_equal(a.joint_positions, b.joint_positions) and np.array_equal(a.root_position, b.root_position)
    assert np.array_equal(a.contact_indices, b.contact_indices) and np.array_equal(a.energy, b.energy)
    assert not np.array_equal(a.joint_positions, c.joint_positions)


def test_several_objects_and_grasp_types_in_one_batch(hand):
    objs = [load_object("box"), load_object("sphere:radius=0.04")]
    res = synthesize(hand, objs, _cfg(), grasp_type="pinch")
    assert [g.object_name for g in res.grasp_sets] == [o.name for o in objs]
    for gs in res.grasp_sets:
        assert len(gs) == 4 and gs.num_contacts == 6
        assert set(np.unique(gs.contact_links)) <= {"index_link_3", "thumb_link_3"}
        assert np.all(np.isfinite(gs.energy))


def test_initial_poses_face_the_object(hand):
    obj = load_object("box")
    hull = obj.convex_hull
    s = HullSampler(np.asarray(hull.vertices), np.asarray(hull.faces), 0.01)
    p, n = s.pick_spread(64, start=5)
    cfg = GenerateConfig().init
    rng = CounterRNG(torch.arange(64))
    root = initial_root_poses(hand, torch.as_tensor(p), torch.as_tensor(n), cfg, rng.uniform(0, 1, 4))
    R = rot6d_to_matrix(root[:, 3:9])
    assert torch.allclose(torch.det(R), torch.ones(64), atol=1e-5)  # proper rotations
    approach = R @ torch.as_tensor(hand.description.approach_axis, dtype=torch.float32)
    cosang = -(approach * torch.as_tensor(n, dtype=torch.float32)).sum(-1)
    # tilt <= 45 deg and pitch <= 15 deg about perpendicular axes: the angle stays below ~47.5 deg
    assert torch.all(cosang > math.cos(math.radians(48)))
    dist = ((root[:, :3] - torch.as_tensor(p, dtype=torch.float32)) * torch.as_tensor(n, dtype=torch.float32)).sum(-1)
    assert torch.all((dist > 0.05 - 1e-5) & (dist < 0.10 + 1e-5))
    q = initial_joints(hand, hand.description.grasp_type("precision").curl_joints, cfg, rng.uniform(0, 2, hand.dof))
    assert torch.all((q >= hand.lower) & (q <= hand.upper))
    ring = [hand.description.joint_names.index(f"ring_joint_{i}") for i in (1, 2, 3)]
    assert torch.all(q[:, ring] > hand.canonical_q[ring] + 0.3)  # the unused finger is curled


STALK_GRIPPER = """<mujoco model="stalk"><compiler angle="radian"/>
  <worldbody>
    <body name="flange">
      <geom type="cylinder" fromto="0 0 0 0 0 0.2" size="0.02"/>
      <body name="left" pos="-0.03 0 0.2">
        <joint name="left_j" axis="0 1 0" range="0 0.7"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.05" size="0.006"/>
      </body>
      <body name="right" pos="0.03 0 0.2">
        <joint name="right_j" axis="0 -1 0" range="0 0.7"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.05" size="0.006"/>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


def test_long_reaching_gripper_starts_set_back_the_reference_hands_do_not(hand, tmp_path, monkeypatch):
    """A gripper whose root is a flange 0.2 m behind its fingers starts that much further out, so its
    fingertips, not its flange, start 5-10 cm from the object; the reference hands are unchanged."""
    from graspforge.hands import BuildOptions, import_hand
    from graspforge.hands.model import HandModel

    assert init_setback(hand) == 0.0  # Allegro reaches ~0.08 m ahead of its root
    monkeypatch.setenv("GRASPFORGE_HANDS_DIR", str(tmp_path / "hands"))
    monkeypatch.setenv("GRASPFORGE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "stalk.xml").write_text(STALK_GRIPPER)
    d, _ = import_hand(tmp_path / "stalk.xml", "stalk", options=BuildOptions(approach="z", up="x"))
    stalk = HandModel(d)
    # fingertips at z = 0.25 + capsule radius, curled a little in the open pose
    sb = init_setback(stalk)
    assert 0.25 - REFERENCE_REACH - 0.01 < sb < 0.256 - REFERENCE_REACH + 1e-3
    p = torch.tensor([[0.0, 0.0, 0.1]])
    n = torch.tensor([[0.0, 0.0, 1.0]])
    u = torch.full((1, 4), 0.5)
    cfg = GenerateConfig().init
    near = initial_root_poses(stalk, p, n, cfg, u)
    far = initial_root_poses(stalk, p, n, cfg, u, sb)
    assert float(far[0, 2] - near[0, 2]) == pytest.approx(sb, abs=1e-6)


def test_hand_rooted_off_its_geometry_starts_centred_the_reference_hands_do_not(hand, tmp_path, monkeypatch):
    """A hand whose geometry lies far off the approach line through its root (here the stalk
    gripper told to approach along x: its flange and fingers sit 0.1-0.25 m up z) is started with
    its surface centroid REFERENCE_OFFSET from the line through the object point, not its root on it;
    the reference hands are unchanged."""
    from graspforge.hands import BuildOptions, import_hand
    from graspforge.hands.model import HandModel

    assert not init_offset(hand).any()  # Allegro: 0.057 m off its root's line
    monkeypatch.setenv("GRASPFORGE_HANDS_DIR", str(tmp_path / "hands"))
    monkeypatch.setenv("GRASPFORGE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "stalk.xml").write_text(STALK_GRIPPER)
    d, _ = import_hand(tmp_path / "stalk.xml", "sideways", options=BuildOptions(approach="x", up="y"))
    side = HandModel(d)
    c = side.surface_points(side.forward_kinematics(side.canonical_pose(1)))[0].mean(0)
    lateral = c - torch.tensor([1.0, 0.0, 0.0]) * c[0]
    assert float(torch.linalg.norm(lateral)) > 0.1
    off = init_offset(side)
    torch.testing.assert_close(off, lateral * (1 - REFERENCE_OFFSET / torch.linalg.norm(lateral)))
    p = torch.tensor([[0.0, 0.0, 0.1]])
    n = torch.tensor([[0.0, 0.0, 1.0]])
    u = torch.full((1, 4), 0.5)  # no jitter
    root = initial_root_poses(side, p, n, GenerateConfig().init, u, 0.0, off)
    R, t = rot6d_to_matrix(root[:, 3:9])[0], root[0, :3]
    cw = R @ c + t  # the centroid in the world: REFERENCE_OFFSET from the line through p along n
    assert float(torch.linalg.norm((cw - p[0]) - n[0] * ((cw - p[0]) @ n[0]))) == pytest.approx(REFERENCE_OFFSET, abs=1e-5)
    assert float(torch.linalg.norm(R @ off + t - p[0] - n[0] * ((R @ off + t - p[0]) @ n[0]))) < 1e-6


class _Quadratic:
    """E = |x - target|^2 per row, with an optional NaN injected at one call."""

    def __init__(self, B, dim, nan_at=None, nan_rows=()):
        self.target = torch.linspace(-1, 1, dim)
        self.calls, self.nan_at, self.nan_rows = 0, nan_at, list(nan_rows)

    def __call__(self, pose, contacts):
        self.calls += 1
        e = (pose - self.target).square().sum(-1)
        if self.calls == self.nan_at:
            e = e.clone()
            e[self.nan_rows] = float("nan")
        return e, {"E_dis": e}


def _opt(energy, B, G, cfg, seed=0):
    rng = CounterRNG(torch.arange(B) + 1000 * seed)
    dim = 9 + 2
    pose = rng.normal(0, 5, dim).float()
    contacts = torch.zeros(B, 3, dtype=torch.long)
    fresh = lambda counter: (rng.normal(counter, 6, dim).float(), torch.zeros(B, 3, dtype=torch.long))  # noqa: E731
    draw = lambda u: torch.zeros(B, 3, dtype=torch.long)  # noqa: E731
    return GraspOptimizer(energy, pose, contacts, G, cfg, fresh, draw, rng)


def test_nan_grasps_are_reset_and_counted():
    cfg = OptimizerConfig(iterations=10, name="mala")
    opt = _opt(_Quadratic(8, 11, nan_at=3, nan_rows=[1, 5]), 8, 4, cfg)
    opt.run()
    assert opt.stats.nan_resets == 2
    assert torch.isfinite(opt.energy).all() and opt.iteration == 10


def test_one_grasp_per_object_does_not_break():
    cfg = OptimizerConfig(iterations=30, name="mala_star", reset_every=5, reset_stop_before_end=0)
    opt = _opt(_Quadratic(3, 11), 3, 1, cfg)
    T0 = opt.temperature()
    assert torch.allclose(T0, torch.full((3,), 18.0, dtype=torch.float64))  # no population scaling
    opt.run()
    assert opt.stats.resets == 0 and torch.isfinite(opt.energy).all()


def test_mala_star_scales_temperature_and_resets_laggards():
    cfg = OptimizerConfig(iterations=12, name="mala_star", reset_every=4, reset_stop_before_end=0)
    opt = _opt(_Quadratic(16, 11), 16, 8, cfg)
    z = opt.z_scores()
    T = opt.temperature()
    phi = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    assert torch.allclose(T, 18.0 * (1 + phi))
    # per object: z-scores have zero mean within each object's 8 grasps
    assert torch.allclose(z.view(2, 8).mean(1), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    # make grasp 3 lag far behind its siblings: the next reset round re-initialises it
    opt.energy[3] = 1e6
    opt.pose[3] = 100.0
    opt.run(4)
    assert opt.stats.resets >= 1 and float(opt.pose[3].abs().max()) < 50


def test_optimisation_lowers_the_energy(hand):
    obj = load_object("sphere:radius=0.04")
    cfg = _cfg(grasps=8, contacts=4, **{"optimizer.iterations": 150})
    res = synthesize(hand, [obj], cfg)
    curve = res.stats.energy_curve
    first, last = np.mean(curve[0][1]), np.mean(curve[-1][1])
    assert last < 0.5 * first, (first, last)
    assert 0.05 < res.stats.accept_rate < 1.0


def test_self_penetration_gradient_uncrosses_fingers(hand):
    """Start with index and middle fingers swung into each other (~5 mm overlap, the way crossings
    begin during optimisation); annealing on E_spen (greedy temperature) pulls them apart. (Fingers
    pushed more than half-way through each other would be pushed on through, as with any
    distance-field penalty: the point of a dense penalty is that crossings never get that deep.)"""
    from graspforge.config import EnergyConfig
    from graspforge.energy.model import GraspEnergy
    from graspforge.energy.scene import ObjectBatch

    names = hand.description.joint_names
    pose = hand.canonical_pose(4)
    pose[:, :3] = torch.tensor([0.0, 0.0, 0.5])  # object far away: only the hand's own terms act
    pose[:, 9 + names.index("index_joint_0")] = -0.25
    pose[:, 9 + names.index("middle_joint_0")] = 0.25
    st = hand.forward_kinematics(pose)
    assert torch.all(hand.self_penetration_depth(st) > 0.004)
    energy = GraspEnergy(hand, ObjectBatch([load_object("sphere:radius=0.03")], 4, surface_points=100),
                         EnergyConfig(method="dexgraspnet", w_dis=0, w_fc=0, w_pen=0, object_points=100))
    cfg = OptimizerConfig(name="mala", iterations=300, temperature=1e-4, resample_prob=0.0)
    opt = GraspOptimizer(energy, pose, torch.zeros(4, 4, dtype=torch.long), 4, cfg,
                         fresh=lambda counter: (pose, torch.zeros(4, 4, dtype=torch.long)),
                         draw_contacts=lambda u: torch.zeros(4, 4, dtype=torch.long), rng=CounterRNG(torch.arange(4)))
    opt.run()
    depth = hand.self_penetration_depth(hand.forward_kinematics(opt.pose))
    assert torch.all(depth < 0.001), depth


def test_thumb_slots_hold_thumb_contacts(hand):
    res = synthesize(hand, [load_object("box")], _cfg(**{"optimizer.iterations": 20}))
    gs = res.grasp_sets[0]
    assert all(str(l).startswith("thumb") for l in gs.contact_links[:, :2].ravel())
    plain = synthesize(hand, [load_object("box")], _cfg(**{"init.thumb_contacts": 0, "optimizer.iterations": 20})).grasp_sets[0]
    assert not all(str(l).startswith("thumb") for l in plain.contact_links[:, :2].ravel())


def test_refinement_never_raises_the_energy_and_pulls_contacts_in(hand):
    from graspforge.energy.model import GraspEnergy
    from graspforge.energy.scene import ObjectBatch
    from graspforge.optimize.refine import refine_poses

    obj = load_object("sphere:radius=0.04")
    base = synthesize(hand, [obj], _cfg(grasps=6, contacts=4, **{"optimizer.iterations": 60, "optimizer.refine_fraction": 0}))
    refined = synthesize(hand, [obj], _cfg(grasps=6, contacts=4, **{"optimizer.iterations": 60, "optimizer.refine_fraction": 80 / 60}))
    a, b = base.grasp_sets[0], refined.grasp_sets[0]
    assert np.array_equal(a.contact_indices, b.contact_indices)  # same annealing, contacts fixed
    assert np.all(b.energy <= a.energy + 1e-4) and b.energy.mean() < a.energy.mean()
    assert np.abs(b.contact_distance).mean() < np.abs(a.contact_distance).mean()
    # a NaN energy row keeps its pose
    energy = GraspEnergy(hand, ObjectBatch([obj], 6, surface_points=300), load_config().energy)
    pose = torch.as_tensor(a.hand_poses(), dtype=torch.float32)

    def poisoned(x, c):
        e, t = energy(x, c)
        return torch.where(torch.arange(6) == 0, e * float("nan"), e), t

    out = refine_poses(poisoned, pose, torch.as_tensor(a.contact_indices), 5)
    assert torch.equal(out[0], pose[0]) and torch.isfinite(out).all()


def test_pregrasp_opens_and_squeeze_presses_only_touching_contacts(hand):
    from graspforge.pipelines.synthesis import pregrasp_and_squeeze

    d = hand.description
    index_tip = int(np.flatnonzero(d.contact_links == d.tree.link_names.index("index_link_3"))[0])
    thumb_tip = int(np.flatnonzero(d.contact_links == d.tree.link_names.index("thumb_link_3"))[0])
    pose = hand.canonical_pose(1).to(torch.float64)
    pose = pose.to(hand.dtype)
    contacts = torch.tensor([[index_tip, thumb_tip]])
    with torch.no_grad():
        p0 = hand.contact_points(hand.forward_kinematics(pose), contacts)[0][0]  # (points, normals) -> (K, 3)
    with torch.no_grad():  # outward normals the fingers can press along: against the flexion of a middle joint
        J = hand.contact_jacobian(hand.forward_kinematics(pose), contacts)[0]  # (2, 3, D)
    flex = torch.stack([J[0, :, d.joint_names.index("index_joint_2")], J[1, :, d.joint_names.index("thumb_joint_2")]])
    normals = (-flex / flex.norm(dim=-1, keepdim=True)).unsqueeze(0)
    dist = torch.tensor([[-0.002, -0.03]], dtype=pose.dtype)  # 2 mm short; 3 cm away (not touching)
    pre, squeeze = pregrasp_and_squeeze(hand, pose, contacts, normals, dist)
    with torch.no_grad():
        move = lambda q: hand.contact_points(hand.forward_kinematics(torch.cat([pose[:, :9], q], 1)), contacts)[0][0] - p0  # noqa: E731
        m_sq, m_pre = move(squeeze), move(pre)
    assert float(-(m_sq[0] * normals[0, 0]).sum()) == pytest.approx(0.007, abs=0.0015)  # 2 mm to reach + 5 mm press
    assert float(m_sq[1].norm()) < 0.001  # the far contact holds still
    assert float((m_pre[0] * normals[0, 0]).sum()) == pytest.approx(0.015, abs=0.003)
    assert float((m_pre[1] * normals[0, 1]).sum()) == pytest.approx(0.015, abs=0.003)


def test_balanced_squeeze_torques_follow_the_forces(hand):
    """The balanced squeeze's joint offsets are J^T F scaled to the requested mean press; forces at
    contacts that do not press play no part."""
    from graspforge.pipelines.synthesis import balanced_squeeze_offsets

    d = hand.description
    g = torch.Generator().manual_seed(3)
    contacts = torch.stack([torch.as_tensor(np.flatnonzero(d.contact_links == d.tree.link_names.index(n))[:2]) for n in
                            ("index_link_3", "thumb_link_3", "middle_link_2")]).reshape(1, -1).repeat(2, 1)
    pose = hand.canonical_pose(2).to(hand.dtype)
    with torch.no_grad():
        J = hand.contact_jacobian(hand.forward_kinematics(pose), contacts).to(torch.float64)  # (2, 6, 3, D)
    F = torch.randn(2, 6, 3, generator=g, dtype=torch.float64)
    pressing = torch.tensor([[True] * 5 + [False], [True] * 6])
    dq = balanced_squeeze_offsets(J, F, pressing, 0.01)
    Fm = torch.where(pressing.unsqueeze(-1), F, torch.zeros_like(F))
    tau = torch.einsum("bkcd,bkc->bd", J, Fm)
    cos = torch.nn.functional.cosine_similarity(dq, tau, dim=1)
    assert torch.allclose(cos, torch.ones(2, dtype=torch.float64), atol=1e-12)
    move = torch.einsum("bkcd,bd->bkc", J, dq)
    press = (move * F / F.norm(dim=-1, keepdim=True)).sum(-1)
    for b in range(2):
        assert float(press[b][pressing[b]].mean()) == pytest.approx(0.01, rel=1e-9)
    F2 = F.clone()
    F2[0, 5] *= 100  # a contact that does not press
    assert torch.allclose(balanced_squeeze_offsets(J, F2, pressing, 0.01)[0], dq[0])
    assert torch.equal(balanced_squeeze_offsets(J, F, torch.zeros_like(pressing), 0.01), torch.zeros_like(dq))


def test_balanced_squeeze_force_floor_sets_the_servo_torques(hand):
    """With joint stiffness K, offsets are K^-1 J^T F scaled: the servo torques K dq are s J^T F, and
    when the depth's press would hold with less than ``min_force`` N, s sum|F| = min_force exactly;
    otherwise the press depth decides, as without a floor."""
    from graspforge.pipelines.synthesis import balanced_squeeze_offsets

    d = hand.description
    g = torch.Generator().manual_seed(5)
    contacts = torch.stack([torch.as_tensor(np.flatnonzero(d.contact_links == d.tree.link_names.index(n))[:2]) for n in
                            ("index_link_3", "thumb_link_3")]).reshape(1, -1).repeat(2, 1)
    pose = hand.canonical_pose(2).to(hand.dtype)
    with torch.no_grad():
        J = hand.contact_jacobian(hand.forward_kinematics(pose), contacts).to(torch.float64)
    F = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    pressing = torch.tensor([[True] * 4, [True, True, True, False]])
    K = 1.0 + 9.0 * torch.rand(hand.dof, generator=g, dtype=torch.float64)
    tau = torch.einsum("bkcd,bkc->bd", J, torch.where(pressing.unsqueeze(-1), F, torch.zeros_like(F)))
    total = (F.norm(dim=-1) * pressing).sum(1)
    big = tau.abs().argmax(1, keepdim=True)

    def scale(dq):  # the force scale s of offsets dq, checked to be one per grasp: K dq = s J^T F
        s = (K * dq).gather(1, big) / tau.gather(1, big)
        torch.testing.assert_close(K * dq, s * tau, rtol=1e-9, atol=1e-12)
        return s[:, 0]

    plain = balanced_squeeze_offsets(J, F, pressing, 0.01, K)
    s_plain = scale(plain)  # what the 1 cm press alone gives
    for floor, binds in ((0.5 * float((s_plain * total).min()), False), (10.0 * float((s_plain * total).max()), True)):
        dq = balanced_squeeze_offsets(J, F, pressing, 0.01, K, floor)
        s = scale(dq)
        if binds:
            torch.testing.assert_close(s * total, torch.full((2,), floor, dtype=torch.float64), rtol=1e-9, atol=0)
        else:
            torch.testing.assert_close(dq, plain, rtol=1e-12, atol=0)


def test_initial_joints_follow_the_truncated_normal(hand):
    """METHOD.md s. 5: joints ~ N(canonical, (0.1 (upper - lower))^2) truncated to the limits (drawn
    by inverse CDF, so no mass piles up on a limit): a Kolmogorov-Smirnov test per joint."""
    from scipy import stats

    cfg = GenerateConfig().init
    n = 4000
    q = initial_joints(hand, [], cfg, CounterRNG(torch.arange(n)).uniform(0, 2, hand.dof)).double().numpy()
    lo, hi, c = (x.double().numpy() for x in (hand.lower, hand.upper, hand.canonical_q))
    sigma = cfg.joint_sigma * (hi - lo)
    assert np.all(q >= lo - 1e-6) and np.all(q <= hi + 1e-6)
    for j in range(hand.dof):
        dist = stats.truncnorm((lo[j] - c[j]) / sigma[j], (hi[j] - c[j]) / sigma[j], loc=c[j], scale=sigma[j])
        assert stats.kstest(q[:, j], dist.cdf).pvalue > 1e-3, j
        assert np.mean(np.abs(q[:, j] - lo[j]) < 1e-6) < 0.01 and np.mean(np.abs(q[:, j] - hi[j]) < 1e-6) < 0.01


def test_snap_contacts_moves_far_contacts_only_where_the_energy_drops():
    from graspforge.config import load_config
    from graspforge.pipelines.synthesis import candidate_groups, make_optimizer, snap_contacts

    hand = load_hand("allegro")
    cfg = load_config(overrides={"grasps": 8, "contacts": 12, "optimizer.iterations": 60, "energy.object_points": 400, "seed": 3})
    opt, energy, _ = make_optimizer(hand, [load_object("box")], cfg)
    opt.run(60)
    pose, before = opt.pose.clone(), opt.contacts.clone()
    allowed, thumb = candidate_groups(hand, "full")
    assert 0 < len(thumb) < len(allowed)
    threshold = 0.002
    everyone = torch.ones(len(pose), dtype=torch.bool)
    with torch.no_grad():
        energy.reset(everyone)  # both totals from a cold QP start, comparable
        e0 = energy(pose, before)[0]
        state = hand.forward_kinematics(pose)
        d0 = energy.contact_geometry(state, before)[2]
    after, changed = snap_contacts(energy, pose, before, allowed, thumb, 2, threshold)
    energy.reset(everyone)
    with torch.no_grad():
        e1 = energy(pose, after)[0]
        d1 = energy.contact_geometry(state, after)[2]
    moved = after != before
    assert bool(changed.any()), "after 60 steps some contacts hang far off the box and a nearer one lowers the energy"
    assert torch.equal(changed, moved.any(1))
    # only far slots move, each to a candidate nearer the surface, of the same kind
    assert bool((d0.abs()[moved] > threshold).all())
    assert bool((d1.abs()[moved] < d0.abs()[moved]).all())
    assert bool(torch.isin(after[:, :2], thumb).all()) and bool(torch.isin(after, allowed).all())
    # a move is kept only where it lowered the total (inside, the QP is warm-started: 2 % slack)
    assert bool((e1[changed] <= e0[changed] * 1.02 + 1e-6).all()), (e0, e1)
    assert torch.equal(after[~changed], before[~changed])
    # nothing is farther than a huge threshold: nothing moves
    same, none = snap_contacts(energy, pose, before, allowed, thumb, 2, 1.0)
    assert torch.equal(same, before) and not bool(none.any())
