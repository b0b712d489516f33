"""Energy terms: known answers, gradients against float64 finite differences, self-collision."""

from __future__ import annotations

import math

import pytest
import torch

from graspforge.config import EnergyConfig
from graspforge.energy.model import GraspEnergy
from graspforge.energy.scene import ObjectBatch
from graspforge.energy.terms import contact_distance_energy, dexgraspnet_force_closure, random_unit_wrenches, tdg_force_closure
from graspforge.energy.force_closure import grasp_matrix
from graspforge.hands import HandModel, load_hand_description
from graspforge.objects import load_object

CUBE_FACES = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=torch.float64)


def test_contact_distance_variants():
    d = torch.tensor([[0.01, -0.02]], dtype=torch.float64)
    n_o = torch.tensor([[[0, 0, 1.0], [0, 0, 1.0]]], dtype=torch.float64)
    facing = -n_o
    assert torch.allclose(contact_distance_energy(d, n_o, facing, "exp"), torch.tensor([0.03], dtype=torch.float64))
    away = n_o
    assert torch.allclose(contact_distance_energy(d, n_o, away, "exp"), torch.exp(torch.tensor(2.0, dtype=torch.float64)) * 0.03)
    assert torch.allclose(contact_distance_energy(d, n_o, away, "plain"), torch.tensor([0.03], dtype=torch.float64))
    with pytest.raises(ValueError):
        contact_distance_energy(d, n_o, away, "nope")


def test_dexgraspnet_force_closure_includes_torque():
    p = (CUBE_FACES * 0.03)[None]
    c = torch.zeros(1, 3, dtype=torch.float64)
    assert dexgraspnet_force_closure(p, CUBE_FACES[None], c).item() < 1e-20  # balanced
    one_sided = torch.tensor([[[0.03, 0.01, 0], [0.03, -0.01, 0]]], dtype=torch.float64)
    n = torch.tensor([[[1.0, 0, 0], [1.0, 0, 0]]], dtype=torch.float64)
    assert dexgraspnet_force_closure(one_sided, n, c).item() == pytest.approx(4.0)
    # opposite forces off-axis: forces cancel, torques do not -> the torque rows count
    p2 = torch.tensor([[[0.03, 0.02, 0], [-0.03, -0.02, 0]]], dtype=torch.float64)
    n2 = torch.tensor([[[1.0, 0, 0], [-1.0, 0, 0]]], dtype=torch.float64)
    # torques (0.03, 0.02, 0) x (1, 0, 0) = (-0.03, -0.02, 0) x (-1, 0, 0) = (0, 0, -0.02): |sum|^2 = 0.04^2
    assert dexgraspnet_force_closure(p2, n2, c).item() == pytest.approx(0.0016, rel=1e-12)


def test_tdg_force_closure_prefers_enclosing_grasps():
    u = random_unit_wrenches(500, dtype=torch.float64)
    c = torch.zeros(1, 3, dtype=torch.float64)
    G_good = grasp_matrix((CUBE_FACES * 0.03)[None], CUBE_FACES[None], c)
    G_bad = grasp_matrix(torch.tensor([[[0.03, 0.01, 0.0], [0.03, -0.01, 0.0]]], dtype=torch.float64),
                         torch.tensor([[[1.0, 0, 0], [1.0, 0, 0]]], dtype=torch.float64), c)
    assert tdg_force_closure(G_good, u).item() < tdg_force_closure(G_bad, u).item() - 0.2


def test_tdg_known_values_on_a_hand_built_wrench_set():
    """Primitive wrenches +-e_1..+-e_6: the best one along u is sign(u_j) e_j for the largest |u_j|,
    so 1 - cos = 1 - max_j |u_j|. Directions e_1, (e_1 + e_2)/sqrt 2, (1, 1, 1, 1, 0, 0)/2 and
    (1, ..., 1)/sqrt 6 give 0, 1 - 1/sqrt 2, 1/2 and 1 - 1/sqrt 6."""
    eye = torch.eye(6, dtype=torch.float64)
    G = torch.cat([eye, -eye], 1)[None]  # (1, 6, 12)
    u = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, -1, 1, -1, 1],
                                                    [1, 1, 1, 1, 1, 1]], dtype=torch.float64), dim=-1)
    want = [0.0, 1 - 1 / math.sqrt(2), 0.5, 1 - 1 / math.sqrt(6)]
    for i, w in enumerate(want):
        assert tdg_force_closure(G, u[i:i + 1]).item() == pytest.approx(w, abs=1e-12)
    assert tdg_force_closure(G, u).item() == pytest.approx(sum(want) / 4, abs=1e-12)
    # only +e_1..+e_6: along -e_1 every primitive wrench is orthogonal or opposite, cos <= 0
    assert tdg_force_closure(G[:, :, :6], -u[:1]).item() == pytest.approx(1.0, abs=1e-12)


def test_tdg_of_an_antipodal_pinch_matches_its_closed_form():
    """Two frictionless contacts at (+-3 cm, 0, 0) pressing along the x axis: every primitive wrench
    is +-e_1 (no torque about the centre), so TDG = E[1 - |u_1|] over the directions. For u uniform
    on the unit sphere of R^6, E|u_1| = Gamma(3) / (sqrt(pi) Gamma(7/2)) = 0.33953; 20000 seeded
    directions estimate it to ~0.002 (one standard error), and the test also checks them exactly."""
    p = torch.tensor([[[0.03, 0.0, 0.0], [-0.03, 0.0, 0.0]]], dtype=torch.float64)
    n = torch.tensor([[[1.0, 0, 0], [-1.0, 0, 0]]], dtype=torch.float64)
    G = grasp_matrix(p, n, torch.zeros(1, 3, dtype=torch.float64), mu=0.0)
    torch.testing.assert_close(G[0, 0].abs(), torch.ones(8, dtype=torch.float64))
    assert G[0, 1:].abs().max() == 0
    u = random_unit_wrenches(20000, dtype=torch.float64)
    e = tdg_force_closure(G, u).item()
    assert e == pytest.approx(1 - u[:, 0].abs().mean().item(), abs=1e-12)
    assert e == pytest.approx(1 - math.gamma(3) / (math.sqrt(math.pi) * math.gamma(3.5)), abs=0.01)
    assert EnergyConfig().tdg_weight == 100.0  # METHOD.md: E_fc = 100 mean_u (1 - cos(w(u), u))


@pytest.fixture(scope="module")
def allegro64():
    return HandModel(load_hand_description("allegro"), dtype=torch.float64)


def _near_pose(hand: HandModel, obj, B: int = 3, seed: int = 0) -> torch.Tensor:
    """Poses with the palm ~2-4 cm from a small object, fingers half closed: every term is active."""
    g = torch.Generator().manual_seed(seed)
    pose = hand.canonical_pose(B)
    pose[:, 9:] += 0.3 * torch.rand(B, hand.dof, generator=g, dtype=torch.float64)
    pose[:, 3:9] += 0.1 * torch.randn(B, 6, generator=g, dtype=torch.float64)
    # palm faces +z of the root; put the object centre ~5 cm in front, between the fingers
    pose[:, :3] = -torch.tensor([0.0, 0.06, 0.035], dtype=torch.float64) + 0.005 * torch.randn(B, 3, generator=g, dtype=torch.float64)
    return pose


@pytest.mark.parametrize("method", ["graspqp", "dexgraspnet", "tdg"])
def test_every_term_gradient_matches_finite_differences(allegro64, method):
    obj = load_object("sphere:radius=0.035")
    batch = ObjectBatch([obj], 3, dtype=torch.float64, surface_points=400)
    energy = GraspEnergy(allegro64, batch, EnergyConfig(method=method, object_points=400, tdg_directions=200))
    pose = _near_pose(allegro64, obj)
    contacts = torch.randint(0, allegro64.num_candidates, (3, 6), generator=torch.Generator().manual_seed(1))
    _, terms = energy(pose, contacts)
    assert terms["E_pen"].max() > 0 and terms["E_hpen"].max() > 0 and terms["E_dis"].min() > 0  # the terms under test are active
    for name in ("E_dis", "E_fc", "E_pen", "E_hpen", "E_joints", "E_spen"):
        def f(p, name=name):
            return energy(p, contacts)[1][name]

        x = pose.clone().requires_grad_()
        (grad,) = torch.autograd.grad(f(x).sum(), x)
        # E_hpen sums hundreds of clamped trilinear lookups: some sample lies within 1e-6 m of a
        # kink (a grid cell face or the surface), so its difference quotient needs a smaller step
        eps = 1e-7 if name == "E_hpen" else 1e-6
        fd = torch.zeros_like(pose)
        for j in range(pose.shape[1]):
            dp = torch.zeros_like(pose)
            dp[:, j] = eps
            fd[:, j] = (f(pose + dp) - f(pose - dp)) / (2 * eps)
        scale = fd.abs().max().clamp_min(1e-6)
        assert ((grad - fd).abs().max() / scale) < 2e-3, f"{method} {name}"


def test_joint_limit_gradient(allegro64):
    obj = load_object("sphere:radius=0.035")
    energy = GraspEnergy(allegro64, ObjectBatch([obj], 2, dtype=torch.float64, surface_points=100), EnergyConfig(object_points=100))
    pose = allegro64.canonical_pose(2)
    pose[0, 9] = allegro64.upper[0] + 0.1
    pose[1, 10] = allegro64.lower[1] - 0.2
    x = pose.clone().requires_grad_()
    _, terms = energy(x, torch.zeros(2, 4, dtype=torch.long))
    assert terms["E_joints"].tolist() == pytest.approx([0.1, 0.2])
    (g,) = torch.autograd.grad(terms["E_joints"].sum(), x)
    assert g[0, 9] == 1 and g[1, 10] == -1 and g[:, 11:].abs().sum() == 0


def test_crossed_fingers_score_clearly_positive_self_penetration(allegro64):
    names = allegro64.description.joint_names
    pose = allegro64.canonical_pose(3)
    # index swung towards the middle finger and the middle towards the index: they pass through each other
    pose[1, 9 + names.index("index_joint_0")] = -0.55
    pose[1, 9 + names.index("middle_joint_0")] = 0.55
    pose[2, 9 + names.index("middle_joint_0")] = -0.55
    pose[2, 9 + names.index("ring_joint_0")] = 0.55
    st = allegro64.forward_kinematics(pose)
    e = allegro64.self_penetration(st)
    depth = allegro64.self_penetration_depth(st)
    assert depth[0] < 0.0005  # the open hand does not collide with itself
    assert torch.all(depth[1:] > 0.005) and torch.all(e[1:] > 100 * e[0].clamp_min(1e-6))


def test_hand_inside_a_large_object_is_penalised_only_by_e_hpen(allegro64):
    """A hand buried in a 40 cm box has no box surface inside it (E_pen = 0): only E_hpen, the
    hand's samples inside the object, sees it, and its gradient pushes the hand out."""
    obj = load_object("box:extents=0.4")
    energy = GraspEnergy(allegro64, ObjectBatch([obj], 1, dtype=torch.float64, surface_points=2000), EnergyConfig(object_points=2000))
    pose = allegro64.canonical_pose(1)
    pose[:, :3] = torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)  # 10 cm from the +x face, the hand fits inside
    x = pose.clone().requires_grad_()
    total, terms = energy(x, torch.zeros(1, 4, dtype=torch.long))
    assert terms["E_pen"].item() == 0.0
    assert terms["E_hpen"].item() > 1.0  # hundreds of samples, each centimetres deep
    (g,) = torch.autograd.grad(terms["E_hpen"].sum(), x)
    assert g[0, 0] < 0  # moving towards +x (out through the nearest face) lowers it


def test_depth_inside_skips_only_points_that_cannot_be_inside():
    """The bounding-box shortcut of E_hpen gives exactly the clamped grid distance and its gradient,
    for points inside, on and around two objects (the margin of one SDF cell included)."""
    objs = [load_object("box:extents=0.06x0.04x0.1"), load_object("sphere:radius=0.03")]
    batch = ObjectBatch(objs, 2, dtype=torch.float64, surface_points=200)
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(4, 3000, 3, generator=g, dtype=torch.float64) - 0.5) * 0.16  # to 3 cm beyond the box
    a = pts.clone().requires_grad_()
    b = pts.clone().requires_grad_()
    ref = batch.signed_distance(a)[0].clamp_min(0)
    fast = batch.depth_inside(b)
    assert (ref > 0).sum() > 100 and (ref == 0).sum() > 100
    assert torch.equal(ref, fast)
    w = torch.rand(4, 3000, generator=g, dtype=torch.float64)
    (ga,) = torch.autograd.grad((ref * w).sum(), a)
    (gb,) = torch.autograd.grad((fast * w).sum(), b)
    assert torch.equal(ga, gb)
    assert torch.equal(batch.depth_inside(pts + 1.0), torch.zeros(4, 3000, dtype=torch.float64))  # all far: no lookup at all


def test_grouped_to_world_matches_to_world(allegro64):
    pose = _near_pose(allegro64, None, 2, seed=3)
    state = allegro64.forward_kinematics(pose)
    links = torch.tensor([0, 3, 7])
    local = torch.randn(3, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grouped = HandModel.grouped_to_world(state, local, links)
    flat = HandModel.to_world(state, local.reshape(-1, 3), links.repeat_interleave(5))
    torch.testing.assert_close(grouped.reshape(2, -1, 3), flat, rtol=0, atol=1e-12)
