"""Forward kinematics and Jacobians against independent references: MuJoCo's own FK of the same
URDF, a plain per-link numpy FK, finite differences, and autograd."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from conftest import HANDS_DIR, need_shared
from graspforge.hands.description import BuildOptions
from graspforge.geometry.rotations import matrix_to_quaternion, matrix_to_rot6d, quaternion_to_matrix, rot6d_to_matrix
from graspforge.hands import HandModel, load_hand_description
from graspforge.hands.description import _apply_couplings
from graspforge.hands.kinematics import TorchKinematics, point_jacobian
from graspforge.hands.known import KNOWN_HANDS
from graspforge.hands.mjcf import parse_mjcf
from graspforge.hands.urdf import parse_urdf
from mujoco_reference import mujoco_link_poses, mujoco_model_from_urdf

HANDS = {
    "allegro": ("allegro_hand.urdf", 16),
    "shadow_hand": ("shadow_hand.urdf", 24),
    "ability_hand": ("ability_hand.urdf", 6),
    "panda": ("franka_panda.urdf", 1),
    "robotiq2": ("robotiq_2f140.urdf", 1),
    "robotiq3": ("robotiq_3finger_flat.urdf", 11),
    "schunk_2f": ("schunk.urdf", 1),
}


def _tree(hand: str):
    f, _ = HANDS[hand]
    path = need_shared(HANDS_DIR / hand / f)
    parsed = parse_urdf(path, require_meshes=False)
    return path, _apply_couplings(parsed.tree, KNOWN_HANDS.get(parsed.name, {}).get("couplings", {}), path)


@pytest.mark.parametrize("hand", sorted(HANDS))
def test_fk_matches_mujoco(hand):
    path, tree = _tree(hand)
    assert tree.dof == HANDS[hand][1]
    model = mujoco_model_from_urdf(path)
    rng = np.random.default_rng(0)
    q = rng.uniform(tree.lower, tree.upper, size=(25, tree.dof))
    kin = TorchKinematics(tree, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(len(q), 3, 3)
    ours = kin.forward(torch.zeros(len(q), 3, dtype=torch.float64), eye, torch.as_tensor(q))
    for i in range(len(q)):
        qv = tree.joint_values(q[i])
        values = {tree.joint_names[l]: qv[l] for l in range(tree.num_links) if tree.q_index[l] >= 0}
        ref = mujoco_link_poses(model, values, tree.link_names)
        np.testing.assert_allclose(ours.pos[i].numpy(), ref[:, :3, 3], atol=1e-9)
        np.testing.assert_allclose(ours.rot[i].numpy(), ref[:, :3, :3], atol=1e-9)
        # the plain numpy FK agrees too
        np.testing.assert_allclose(tree.forward_numpy(q[i]), ref, atol=1e-9)


def test_builtin_allegro_matches_urdf_allegro():
    """The built-in hand (no file outside the package) is the real hand: same links, joints, FK."""
    builtin = load_hand_description("allegro")
    assert builtin.source is None and builtin.dof == 16
    mesh = load_hand_description(need_shared(HANDS_DIR / "allegro"), options=BuildOptions(link_geometry="mesh"))
    assert builtin.tree.link_names == mesh.tree.link_names
    assert builtin.joint_names == mesh.joint_names
    hb, hm = HandModel(builtin, dtype=torch.float64), HandModel(mesh, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    lo, hi = hb.lower, hb.upper
    pose = torch.zeros(1000, hb.pose_dim, dtype=torch.float64)
    pose[:, :3] = torch.rand(1000, 3, generator=g, dtype=torch.float64) - 0.5
    pose[:, 3:9] = torch.randn(1000, 6, generator=g, dtype=torch.float64)
    pose[:, 9:] = lo + (hi - lo) * torch.rand(1000, 16, generator=g, dtype=torch.float64)
    sb, sm = hb.forward_kinematics(pose), hm.forward_kinematics(pose)
    assert (sb.links.pos - sm.links.pos).abs().max() < 1e-6
    assert (sb.links.rot - sm.links.rot).abs().max() < 1e-6
    pb, nb = hb.all_contact_candidates(sb)
    pm, nm = hm.all_contact_candidates(sm)
    assert (pb - pm).abs().max() < 1e-6
    assert (nb - nm).abs().max() < 1e-6


@pytest.mark.parametrize("hand", ["allegro", "ability_hand", "panda", "robotiq2"])
def test_contact_jacobian_matches_finite_differences(hand):
    d = load_hand_description(need_shared(HANDS_DIR / hand))
    m = HandModel(d, dtype=torch.float64)
    B, K = 4, 6
    g = torch.Generator().manual_seed(1)
    pose = m.canonical_pose(B)
    pose[:, :3] = torch.randn(B, 3, generator=g, dtype=torch.float64) * 0.1
    pose[:, 3:9] = torch.randn(B, 6, generator=g, dtype=torch.float64)
    pose[:, 9:] = m.lower + (m.upper - m.lower) * torch.rand(B, m.dof, generator=g, dtype=torch.float64)
    idx = torch.randint(0, m.num_candidates, (B, K), generator=g)
    J = m.contact_jacobian(m.forward_kinematics(pose), idx)
    assert J.shape == (B, K, 3, m.dof)
    eps = 1e-6
    for j in range(m.dof):
        dp = torch.zeros_like(pose)
        dp[:, 9 + j] = eps
        plus, _ = m.contact_points(m.forward_kinematics(pose + dp), idx)
        minus, _ = m.contact_points(m.forward_kinematics(pose - dp), idx)
        fd = (plus - minus) / (2 * eps)
        torch.testing.assert_close(J[..., j], fd, atol=1e-7, rtol=1e-6)
    assert J.abs().max() > 1e-3  # the joints do move the contacts


def test_contact_points_autograd_matches_jacobian():
    m = HandModel(load_hand_description("allegro"), dtype=torch.float64)
    pose = m.canonical_pose(2)
    pose[:, 9:] += 0.1
    idx = torch.tensor([[0, 10, 40, 80], [5, 15, 50, 91]])
    J = m.contact_jacobian(m.forward_kinematics(pose), idx)
    q = pose[:, 9:].clone().requires_grad_()

    def f(qq):
        p = torch.cat([pose[:, :9], qq], 1)
        return m.contact_points(m.forward_kinematics(p), idx)[0]

    Ja = torch.autograd.functional.jacobian(f, q)  # (B, K, 3, B, D)
    for b in range(2):
        torch.testing.assert_close(J[b], Ja[b, :, :, b], atol=1e-10, rtol=1e-8)


def test_full_pose_gradient_matches_finite_differences():
    m = HandModel(load_hand_description("allegro"), dtype=torch.float64)
    pose = m.canonical_pose(3)
    pose[:, :3] = torch.tensor([[0.01, 0.02, -0.1]])
    pose[:, 3:9] += torch.randn(3, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.3
    idx = torch.randint(0, m.num_candidates, (3, 5), generator=torch.Generator().manual_seed(3))
    w = torch.randn(3, 5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def f(p):
        pts, nrm = m.contact_points(m.forward_kinematics(p), idx)
        return (pts * w).sum() + (nrm * w).sum() * 0.1

    assert torch.autograd.gradcheck(f, (pose.clone().requires_grad_(),), eps=1e-6, atol=1e-6)


def test_robotiq2_linkage_keeps_pads_parallel_and_mirrored():
    _, tree = _tree("robotiq2")
    names = tree.link_names
    L, R = names.index("left_inner_finger_pad"), names.index("right_inner_finger_pad")
    T0 = tree.forward_numpy(np.array([0.0]))
    widths = []
    for th in np.linspace(0, 0.7, 8):
        T = tree.forward_numpy(np.array([th]))
        np.testing.assert_allclose(T[L, :3, :3], T0[L, :3, :3], atol=1e-6)  # pads translate only
        np.testing.assert_allclose(T[R, :3, :3], T0[R, :3, :3], atol=1e-6)
        assert abs(T[L, 1, 3] + T[R, 1, 3]) < 1e-6 and abs(T[L, 2, 3] - T[R, 2, 3]) < 1e-6  # mirrored
        widths.append(T[R, 1, 3] - T[L, 1, 3])
    assert np.all(np.diff(widths) < 0)  # closing the driver closes the gripper


def test_mjcf_round_trip_matches_urdf(tmp_path):
    """URDF -> MuJoCo -> saved MJCF -> our MJCF parser: same kinematics (MJCF text keeps ~6 digits)."""
    path, tree = _tree("ability_hand")
    out = tmp_path / "hand.xml"
    mujoco.mj_saveLastXML(str(out), mujoco_model_from_urdf(path))
    parsed = parse_mjcf(out)
    tm = parsed.tree
    assert tm.dof == tree.dof == 6  # the mimic joints came back as joint equalities
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(tree.lower, tree.upper)
        qm = np.array([dict(zip(tree.actuated_joints, q))[j] for j in tm.actuated_joints])
        Tu, Tm = tree.forward_numpy(q), tm.forward_numpy(qm)
        for i, n in enumerate(tree.link_names):
            np.testing.assert_allclose(Tm[tm.link_names.index(n)], Tu[i], atol=2e-5)


def test_rotation_conversions_round_trip():
    g = torch.Generator().manual_seed(0)
    R = rot6d_to_matrix(torch.randn(100, 6, generator=g, dtype=torch.float64))
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(100, 3, 3))
    assert torch.all(torch.det(R) > 0.999)
    torch.testing.assert_close(rot6d_to_matrix(matrix_to_rot6d(R)), R)
    q = matrix_to_quaternion(R)
    torch.testing.assert_close(quaternion_to_matrix(q), R)
    assert torch.all(q[:, 0] >= 0)
    # against MuJoCo's conversion
    for i in range(5):
        ref = np.zeros(4)
        mujoco.mju_mat2Quat(ref, R[i].numpy().ravel())
        ref = ref if ref[0] >= 0 else -ref
        np.testing.assert_allclose(q[i].numpy(), ref, atol=1e-9)
