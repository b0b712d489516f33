"""Hands: kinematics, contact candidates, collision geometry; built-in hands and loaders."""

from .description import BuildOptions, GraspType, HandDescription, build_hand_description
from .kinematics import KinematicTree, TorchKinematics
from .loading import builtin_hand_names, import_hand, load_hand, load_hand_description, user_hand_names, user_hands_dir
from .model import HandModel, HandState

__all__ = [
    "BuildOptions",
    "GraspType",
    "HandDescription",
    "HandModel",
    "HandState",
    "KinematicTree",
    "TorchKinematics",
    "build_hand_description",
    "builtin_hand_names",
    "import_hand",
    "load_hand",
    "load_hand_description",
    "user_hand_names",
    "user_hands_dir",
]
