"""Facts about the seven hands of the reference asset layout that their files do not state.

The reference implementation keeps these in per-hand Python modules (default joint state, the
approach/"forward" and up axes of the root frame, joints driven together). They are kinematic facts
about the hardware, recorded here as data so that the same URDF + JSON files load unchanged.
Keyed by the URDF's robot name.
"""

from __future__ import annotations

# Each entry may give:
#   canonical: {joint: value}  open/default pose (reference ``default_state``)
#   approach_axis, up_axis:    unit vectors in the root-link frame (reference forward_axis / up_axis)
#   couplings: {joint: (driver, multiplier, offset)}  joints driven by another (no <mimic> in the URDF)
KNOWN_HANDS: dict[str, dict] = {
    "allegro_hand": {
        "canonical": {
            "index_joint_0": 0.0, "index_joint_1": 0.2, "index_joint_2": 0.5, "index_joint_3": 0.5,
            "middle_joint_0": 0.0, "middle_joint_1": 0.2, "middle_joint_2": 0.5, "middle_joint_3": 0.5,
            "ring_joint_0": 0.0, "ring_joint_1": 0.2, "ring_joint_2": 0.5, "ring_joint_3": 0.5,
            "thumb_joint_0": 1.0, "thumb_joint_1": 0.5, "thumb_joint_2": 0.5, "thumb_joint_3": 0.2,
        },
        "approach_axis": [0.0, 0.0, 1.0],
        "up_axis": [1.0, 0.0, 0.0],
    },
    "shadow_hand": {
        "canonical": {
            "robot0_FFJ3": 0.1, "robot0_FFJ1": 0.6, "robot0_LFJ3": -0.2, "robot0_LFJ1": 0.6,
            "robot0_MFJ1": 0.6, "robot0_RFJ3": -0.1, "robot0_RFJ1": 0.6, "robot0_THJ3": 1.2, "robot0_THJ1": -0.2,
        },
        "approach_axis": [0.0, 0.0, 1.0],
        "up_axis": [1.0, 0.0, 0.0],
    },
    "hand": {  # PSYONIC Ability Hand (its URDF's robot name)
        "canonical": {"index_q1": 0.3, "middle_q1": 0.3, "pinky_q1": 0.3, "ring_q1": 0.3, "thumb_q1": 1.0, "thumb_q2": 0.0},
        "approach_axis": [0.0, 0.0, 1.0],
        "up_axis": [1.0, 0.0, 0.0],
    },
    "franka_panda": {
        "canonical": {"panda_finger_joint1": 0.04},
        "approach_axis": [0.0, 0.0, 1.0],
        "up_axis": [1.0, 0.0, 0.0],
        "couplings": {"panda_finger_joint2": ("panda_finger_joint1", 1.0, 0.0)},
    },
    "ROBOTIQ_2F_CFG140_simple": {
        "canonical": {"finger_joint": 0.0},
        "approach_axis": [0.0, 0.0, 1.0],
        "up_axis": [1.0, 0.0, 0.0],
        # Parallel four-bar linkage: pads stay parallel, the right side mirrors the left. Signs follow
        # this URDF's frames: the only choice that keeps pads and knuckles parallel and the sides
        # mirrored (tests/test_hands.py checks it through FK).
        "couplings": {
            "left_inner_finger_joint": ("finger_joint", 1.0, 0.0),
            "left_inner_knuckle_joint": ("finger_joint", -1.0, 0.0),
            "right_outer_knuckle_joint": ("finger_joint", -1.0, 0.0),
            "right_inner_finger_joint": ("finger_joint", 1.0, 0.0),
            "right_inner_knuckle_joint": ("finger_joint", -1.0, 0.0),
        },
    },
    "ROBOTIQ_3F_CFGinger_flat": {
        "canonical_list": [0.2, 0.2, 0.2, 0.2, 0.5, 0.5, 0.3, 0.3, 0.3, 0.0, 0.0],
        "approach_axis": [0.0, 0.0, 1.0],
        "up_axis": [1.0, 0.0, 0.0],
    },
    "egu_50": {  # Schunk EGU-50 two-finger gripper
        "canonical": {"egu_50_prismatic_1": 0.0},
        "approach_axis": [0.0, 0.0, 1.0],
        "up_axis": [1.0, 0.0, 0.0],
    },
}
