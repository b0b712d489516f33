"""Dataset metrics (METHOD.md s. 8), on plain arrays; no simulation needed.

- success rate;
- unique grasps: successful grasps that stay distinct after quantising the root position
  (``ugr_position`` m), the root orientation as Euler xyz angles (``ugr_orientation_deg`` each) and
  every joint (``ugr_joint``). The reference swaps the position/joint thresholds and never
  quantises orientation; here all three are quantised as METHOD.md states.
- Unique Grasp Rate UGR = unique successful grasps / grasps generated;
- entropy H: 32-bin histogram entropy (natural log) of each joint within its limits, averaged over
  joints, over successful grasps; also of the root position (+-``position_range`` per axis) and of
  the Euler angles (-pi..pi), each averaged over the three axes;
- unique grasps vs number of seeds: the count among the first n grasps (the paper's Figure 4).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ..config import MetricsConfig


def euler_xyz(quaternions: np.ndarray) -> np.ndarray:
    """(N, 4) w-x-y-z quaternions -> (N, 3) extrinsic x-y-z Euler angles, radians in (-pi, pi]."""
    q = np.asarray(quaternions, np.float64).reshape(-1, 4)
    if len(q) == 0:
        return np.zeros((0, 3))
    return Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_euler("xyz")


def grasp_keys(root_position: np.ndarray, root_quaternion: np.ndarray, joints: np.ndarray,
               config: MetricsConfig | None = None) -> np.ndarray:
    """(N, 6 + D) integer cells of each grasp on the unique-grasp grid."""
    c = config or MetricsConfig()
    p = np.floor(np.asarray(root_position, np.float64).reshape(-1, 3) / c.ugr_position)
    e = np.floor(np.degrees(euler_xyz(root_quaternion)) / c.ugr_orientation_deg)
    q = np.floor(np.asarray(joints, np.float64).reshape(len(p), -1) / c.ugr_joint)
    return np.concatenate([p, e, q], 1).astype(np.int64)


def unique_count(keys: np.ndarray, mask: np.ndarray | None = None) -> int:
    """Number of distinct rows of ``keys`` (N, M) among those where ``mask`` (N,) is true."""
    k = np.asarray(keys)
    if mask is not None:
        k = k[np.asarray(mask, bool)]
    return int(len(np.unique(k, axis=0))) if len(k) else 0


def unique_grasp_rate(root_position, root_quaternion, joints, success, config: MetricsConfig | None = None) -> float:
    """Distinct successful grasps / all grasps (0 for an empty set)."""
    success = np.asarray(success, bool)
    if len(success) == 0:
        return 0.0
    return unique_count(grasp_keys(root_position, root_quaternion, joints, config), success) / len(success)


def unique_vs_seeds(root_position, root_quaternion, joints, success, seeds, config: MetricsConfig | None = None) -> dict[int, int]:
    """Unique successful grasps among the first n grasps, for each n in ``seeds`` (n <= N)."""
    keys = grasp_keys(root_position, root_quaternion, joints, config)
    success = np.asarray(success, bool)
    return {int(n): unique_count(keys[:n], success[:n]) for n in seeds if n <= len(success)}


def histogram_entropy(x: np.ndarray, lower: float, upper: float, bins: int = 32) -> float:
    """Entropy (nats) of the ``bins``-bin histogram of ``x`` on [lower, upper] (values outside are clipped).
    0 for fewer than one sample or an empty range; at most log(bins)."""
    x = np.asarray(x, np.float64).ravel()
    if len(x) == 0 or not upper > lower:
        return 0.0
    counts, _ = np.histogram(np.clip(x, lower, upper), bins=bins, range=(lower, upper))
    p = counts[counts > 0] / len(x)
    return float(-(p * np.log(p)).sum())


def joint_entropy(joints: np.ndarray, lower: np.ndarray, upper: np.ndarray, bins: int = 32) -> float:
    """Mean over joints (with a non-empty range) of the histogram entropy within the joint limits."""
    q = np.asarray(joints, np.float64)
    q = q.reshape(len(q), -1) if q.size else np.zeros((0, len(np.atleast_1d(lower))))
    h = [histogram_entropy(q[:, j], lo, hi, bins) for j, (lo, hi) in enumerate(zip(np.atleast_1d(lower), np.atleast_1d(upper))) if hi > lo]
    return float(np.mean(h)) if h else 0.0


def pose_entropies(root_position, root_quaternion, config: MetricsConfig | None = None) -> tuple[float, float]:
    """(position entropy, orientation entropy): per-axis histogram entropies averaged over axes."""
    c = config or MetricsConfig()
    p = np.asarray(root_position, np.float64).reshape(-1, 3)
    e = euler_xyz(root_quaternion)
    hp = np.mean([histogram_entropy(p[:, a], -c.position_range, c.position_range, c.entropy_bins) for a in range(3)])
    ho = np.mean([histogram_entropy(e[:, a], -np.pi, np.pi, c.entropy_bins) for a in range(3)])
    return float(hp), float(ho)


def summarize(root_position, root_quaternion, joints, success, lower, upper, config: MetricsConfig | None = None,
              penetration_depth=None, self_penetration_depth=None, contact_distance=None) -> dict[str, float]:
    """The summary figures of one grasp set (or of several stacked): ``grasps``, ``success_rate``,
    ``unique``, ``ugr``, ``joint_entropy``, ``position_entropy``, ``orientation_entropy`` (over
    successful grasps), and the means of the given depths / distances in mm (``D_mm``, ...)."""
    c = config or MetricsConfig()
    success = np.asarray(success, bool)
    N = len(success)
    keys = grasp_keys(root_position, root_quaternion, joints, c)
    ok = success
    hp, ho = pose_entropies(np.asarray(root_position)[ok], np.asarray(root_quaternion)[ok], c)
    out = {
        "grasps": N,
        "success_rate": float(success.mean()) if N else 0.0,
        "unique": unique_count(keys, success),
        "ugr": unique_count(keys, success) / N if N else 0.0,
        "joint_entropy": joint_entropy(np.asarray(joints)[ok], lower, upper, c.entropy_bins),
        "position_entropy": hp,
        "orientation_entropy": ho,
    }
    for name, arr in (("D_mm", penetration_depth), ("self_penetration_mm", self_penetration_depth), ("contact_distance_mm", contact_distance)):
        if arr is not None:
            a = np.asarray(arr, np.float64)
            out[name] = float(np.nanmean(a) * 1000) if len(a) else float("nan")
    return out
