"""Dataset metrics on hand-built grasp sets with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from graspforge.config import MetricsConfig
from graspforge.evaluate import metrics


def quats_about_x(deg):
    q = Rotation.from_euler("x", np.radians(np.asarray(deg, float))[:, None]).as_quat()  # x y z w
    return q[:, [3, 0, 1, 2]]


def test_euler_round_trip():
    e = np.array([[0.3, -0.2, 1.0], [-2.0, 0.5, 3.0]])
    q = Rotation.from_euler("xyz", e).as_quat()[:, [3, 0, 1, 2]]
    np.testing.assert_allclose(metrics.euler_xyz(q), e, atol=1e-12)


def test_unique_counts_position_orientation_and_joints():
    # 6 grasps: 0 and 1 share every cell (1 cm apart inside one 2 cm cell), 2 is one position cell
    # over, 3 differs by 10 deg about x, 4 by 0.25 rad in one joint, 5 repeats 0 but failed.
    pos = np.array([[0.001, 0, 0], [0.011, 0, 0], [0.031, 0, 0], [0.001, 0, 0], [0.001, 0, 0], [0.001, 0, 0]])
    quat = quats_about_x([1.0, 3.0, 1.0, 11.0, 1.0, 1.0])
    q = np.zeros((6, 2)) + 0.05
    q[4, 1] += 0.25
    success = np.array([1, 1, 1, 1, 1, 0], bool)
    keys = metrics.grasp_keys(pos, quat, q)
    assert metrics.unique_count(keys, success) == 4  # {0,1}, 2, 3, 4
    assert metrics.unique_grasp_rate(pos, quat, q, success) == pytest.approx(4 / 6)
    # a coarser grid merges everything
    coarse = MetricsConfig(ugr_position=1.0, ugr_orientation_deg=90.0, ugr_joint=1.0)
    assert metrics.unique_grasp_rate(pos, quat, q, success, coarse) == pytest.approx(1 / 6)
    # failures never count
    assert metrics.unique_grasp_rate(pos, quat, q, np.zeros(6, bool)) == 0.0


def test_orientation_is_quantised():
    # the reference never quantises orientation: two grasps 20 deg apart would count once there
    pos = np.zeros((2, 3))
    q = np.zeros((2, 1))
    assert metrics.unique_grasp_rate(pos, quats_about_x([1.0, 21.0]), q, np.ones(2, bool)) == 1.0


def test_unique_vs_seeds_is_a_prefix_count():
    pos = np.array([[0.0, 0, 0], [0.1, 0, 0], [0.0, 0, 0], [0.2, 0, 0]])
    quat = quats_about_x([0, 0, 0, 0])
    q = np.zeros((4, 1))
    success = np.array([1, 1, 1, 0], bool)
    assert metrics.unique_vs_seeds(pos, quat, q, success, [1, 2, 3, 4, 8]) == {1: 1, 2: 2, 3: 2, 4: 2}


def test_histogram_entropy_known_values():
    bins = 32
    uniform = (np.arange(bins) + 0.5) / bins  # one sample per bin of [0, 1]
    assert metrics.histogram_entropy(uniform, 0.0, 1.0, bins) == pytest.approx(math.log(bins))
    assert metrics.histogram_entropy(np.full(10, 0.3), 0.0, 1.0, bins) == 0.0
    assert metrics.histogram_entropy(np.array([0.1, 0.1, 0.9, 0.9]), 0.0, 1.0, bins) == pytest.approx(math.log(2))
    assert metrics.histogram_entropy(np.array([]), 0.0, 1.0) == 0.0


def test_joint_entropy_averages_joints_within_limits():
    # joint 0 spread over 4 equal bins, joint 1 constant, joint 2 has an empty range (skipped)
    q = np.stack([np.repeat([0.1, 0.3, 0.6, 0.9], 2), np.full(8, 0.5), np.zeros(8)], 1)
    h = metrics.joint_entropy(q, np.array([0.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0]), bins=32)
    assert h == pytest.approx((math.log(4) + 0.0) / 2)


def test_summary_counts_only_successful_grasps_in_entropy():
    rng = np.random.default_rng(0)
    N = 64
    pos = rng.uniform(-0.05, 0.05, (N, 3))
    quat = Rotation.random(N, random_state=1).as_quat()[:, [3, 0, 1, 2]]
    q = rng.uniform(0, 1, (N, 3))
    success = np.zeros(N, bool)
    success[:8] = True
    s = metrics.summarize(pos, quat, q, success, np.zeros(3), np.ones(3), penetration_depth=np.full(N, 0.001))
    assert s["grasps"] == N and s["success_rate"] == pytest.approx(8 / N)
    assert s["unique"] == 8 and s["ugr"] == pytest.approx(8 / N)
    assert 0 < s["joint_entropy"] <= math.log(8) + 1e-9  # 8 samples fill at most 8 bins
    assert s["D_mm"] == pytest.approx(1.0)
    none = metrics.summarize(pos, quat, q, np.zeros(N, bool), np.zeros(3), np.ones(3))
    assert none["ugr"] == 0.0 and none["joint_entropy"] == 0.0
