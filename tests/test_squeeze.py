"""Pre-grasp and squeeze joint targets (METHOD.md s. 7, :func:`graspforge.pipelines.synthesis.pregrasp_and_squeeze`)
on grasps whose answer is computed by hand: a one-joint parallel gripper, where each pad contact
moves along +-y at 1 m per metre of joint travel, and an Allegro contact whose squeeze needs more
than the 0.3 rad clip.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import GRIPPER_MJCF
from graspforge.hands import load_hand
from graspforge.pipelines.synthesis import (BALANCED_SQUEEZE_DEPTH, DAMPING, MAX_JOINT_OFFSET, PREGRASP_OPEN, SQUEEZE_DEPTH,
                                  SQUEEZE_MIN_FORCE, SQUEEZE_REACH, pregrasp_and_squeeze, servo_stiffness)

# GRIPPER_MJCF: two pads 3 cm apart on slides coupled 1:1; q = 0 closed, q = 0.02 m fully open


def test_method_md_constants():
    assert (PREGRASP_OPEN, SQUEEZE_DEPTH, BALANCED_SQUEEZE_DEPTH, SQUEEZE_REACH) == (0.015, 0.005, 0.01, 0.01)
    assert (MAX_JOINT_OFFSET, DAMPING) == (0.3, 1e-3)


@pytest.fixture(scope="module")
def gripper(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy_gripper.xml"
    path.write_text(GRIPPER_MJCF)
    return load_hand(path, dtype=torch.float64)


def _pads(hand) -> torch.Tensor:
    """(1, 2) candidate indices: one on the left pad, one on the right pad."""
    names = np.array(hand.description.tree.link_names)[hand.description.contact_links]
    return torch.tensor([[int(np.flatnonzero(names == "left")[0]), int(np.flatnonzero(names == "right")[0])]])


def _pose(hand, q: float) -> torch.Tensor:
    pose = hand.canonical_pose(1)
    pose[0, 9] = q
    return pose


# the object between the pads: its outward normal at the left contact is -y, at the right one +y
OBJECT_NORMALS = torch.tensor([[[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)


def test_gripper_geometry_is_what_the_hand_computation_assumes(gripper):
    """Contact Jacobians (0, -1, 0) on the left pad and (0, 1, 0) on the right: d(contact)/dq."""
    J = gripper.contact_jacobian(gripper.forward_kinematics(_pose(gripper, 0.01)), _pads(gripper))
    torch.testing.assert_close(J[0, :, :, 0], torch.tensor([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64))
    assert gripper.dof == 1 and float(gripper.lower[0]) == 0.0 and float(gripper.upper[0]) == 0.02


# Damped least squares with A = [J_left; J_right] (6 x 1): dq = A^T delta / (A^T A + 1e-3), A^T A = 2,
# A^T delta = -delta_left_y + delta_right_y. Closing is dq < 0.
@pytest.mark.parametrize("q0,distance,forces,pre_want,squeeze_want", [
    # reference squeeze: both contacts 5 mm in along -n (A^T delta = -0.01); pre-grasp: both 1.5 cm
    # out (A^T delta = 0.03). Nearly closed, the squeeze stops at the lower limit q = 0 ...
    (0.004, None, None, 0.004 + 0.03 / 2.001, 0.0),
    # ... and nearly open, the pre-grasp stops at the upper limit 0.02 m
    (0.018, None, None, 0.02, 0.018 - 0.01 / 2.001),
    # touching: the left contact 3 mm short closes its gap and presses 5 mm (8 mm), the right one 5 mm
    (0.018, [-0.003, 0.001], None, 0.02, 0.018 - 0.013 / 2.001),
    # touching: the right contact 3 cm off the surface (beyond SQUEEZE_REACH) holds still (delta 0)
    (0.018, [-0.003, -0.03], None, 0.02, 0.018 - 0.008 / 2.001),
    # balanced: gap closing (A^T delta = -0.003) plus J^T F scaled to a 1 cm mean press: with the
    # forces (0, 2, 0) and (0, -6, 0), J^T F = -8 moves each pad 8 along its force, so the scale is
    # 0.01 / 8 and that part is -0.01
    (0.018, [-0.003, 0.001], [[0.0, 2.0, 0.0], [0.0, -6.0, 0.0]], 0.02, 0.018 - 0.003 / 2.001 - 0.01),
    # the same from q = 0.015 (no limit in reach of either target)
    (0.015, [-0.003, 0.001], [[0.0, 2.0, 0.0], [0.0, -6.0, 0.0]], 0.02, 0.015 - 0.003 / 2.001 - 0.01),
    (0.004, [-0.003, 0.001], [[0.0, 2.0, 0.0], [0.0, -6.0, 0.0]], 0.004 + 0.03 / 2.001, 0.0),
])
def test_gripper_squeeze_and_pregrasp_known_values(gripper, q0, distance, forces, pre_want, squeeze_want):
    d = None if distance is None else torch.tensor([distance], dtype=torch.float64)
    F = None if forces is None else torch.tensor([forces], dtype=torch.float64)
    # the press depth alone (min_force 0); the force floor has its own test below
    pre, squeeze = pregrasp_and_squeeze(gripper, _pose(gripper, q0), _pads(gripper), OBJECT_NORMALS, d, F, min_force=0.0)
    assert float(pre[0, 0]) == pytest.approx(pre_want, abs=1e-12)
    assert float(squeeze[0, 0]) == pytest.approx(squeeze_want, abs=1e-12)


@pytest.mark.parametrize("min_force, press", [
    # the 1 cm press: servo force kp x 0.01 m = 500 N/m x 0.01 = 5 N = s J^T F = 8 s, so s = 0.625 and
    # the pads hold with s (2 + 6) = 5 N in all; a floor below that changes nothing
    (0.0, -0.01), (4.0, -0.01), (5.0, -0.01),
    # a 6 N floor: s = 6 / 8, offset s J^T F / kp = 0.75 x -8 / 500 = -0.012
    (6.0, -0.012),
    # the default 20 N: s = 2.5, offset -0.04 (then clipped at the 2 cm prismatic bound and the lower limit 0)
    (SQUEEZE_MIN_FORCE, -0.04),
])
def test_gripper_balanced_squeeze_force_floor(gripper, min_force, press):
    """Balanced squeeze of the toy gripper (prismatic, servo stiffness kp_prismatic = 500 N/m) with
    the forces (0, 2, 0) and (0, -6, 0): the press deepens until the servo holds ``min_force`` N."""
    assert float(servo_stiffness(gripper)[0]) == 500.0
    d = torch.tensor([[-0.003, 0.001]], dtype=torch.float64)
    F = torch.tensor([[[0.0, 2.0, 0.0], [0.0, -6.0, 0.0]]], dtype=torch.float64)
    _, squeeze = pregrasp_and_squeeze(gripper, _pose(gripper, 0.018), _pads(gripper), OBJECT_NORMALS, d, F, min_force=min_force)
    want = min(max(0.018 + min(max(-0.003 / 2.001 + press, -0.02), 0.02), 0.0), 0.02)
    assert float(squeeze[0, 0]) == pytest.approx(want, abs=1e-12)


def test_allegro_default_squeeze_is_clipped_at_0_3_rad():
    """The default ("balanced") squeeze of one index-finger contact 2 mm short of the surface, pressing
    along its normal: gap closing dq_c = (J^T J + 1e-3 I)^-1 J^T (2 mm along -n), plus J^T F scaled so
    the contact moves 1 cm along F, dq_b = 0.01 J^T F / |J J^T F| (F = -n). Near a joint axis J is
    small and dq_b large: of the finger's candidates the test takes the one needing the most travel
    (> 0.5 rad), and each joint offset must be the numpy value clipped to +-0.3 rad, then to the
    joint limits. (Damped least squares alone cannot exceed 0.3 rad for one contact: its gain is at
    most 1 / (2 sqrt(1e-3)) = 15.8 rad/m.)"""
    hand = load_hand("allegro", dtype=torch.float64)
    d = hand.description
    pose = hand.canonical_pose(1)
    state = hand.forward_kinematics(pose)
    q = pose[0, 9:].numpy()
    gap = 0.002
    candidates = np.flatnonzero(np.isin(d.contact_links, [d.tree.link_names.index(f"index_link_{i}") for i in (1, 2, 3)]))

    def unclipped(c: int) -> tuple[np.ndarray, torch.Tensor]:
        contacts = torch.tensor([[c]])
        _, hand_normals = hand.contact_points(state, contacts)
        normals = -hand_normals  # the object's surface faces the contact
        n = normals[0, 0].numpy()
        J = hand.contact_jacobian(state, contacts)[0, 0].numpy()  # (3, D)
        dq_close = np.linalg.solve(J.T @ J + 1e-3 * np.eye(hand.dof), J.T @ (-n * gap))
        tau = J.T @ -n
        dq_press = 0.01 * tau / float(-n @ J @ tau) if float(-n @ J @ tau) > 1e-12 else np.zeros_like(tau)
        return dq_close + dq_press, normals

    c = int(max(candidates, key=lambda c: np.abs(unclipped(c)[0]).max()))
    dq, normals = unclipped(c)
    assert np.abs(dq).max() > 0.5  # the clip matters here
    _, squeeze = pregrasp_and_squeeze(hand, pose, torch.tensor([[c]]), normals, torch.tensor([[-gap]], dtype=torch.float64),
                                      forces=-normals)
    want = np.clip(q + np.clip(dq, -0.3, 0.3), hand.lower.numpy(), hand.upper.numpy())
    np.testing.assert_allclose(squeeze[0].numpy(), want, atol=1e-9)
    assert np.abs(squeeze[0].numpy() - q).max() == pytest.approx(0.3, abs=1e-12)  # a clipped joint moved exactly 0.3 rad
