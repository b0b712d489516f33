"""Evaluation: physics validation in MuJoCo (:mod:`.scene`, :mod:`.simulate`), exact-mesh geometry
(:mod:`.exact`), dataset metrics (:mod:`.metrics`) and the end-to-end runner (:mod:`.run`)."""

from .exact import ExactHandMeshes, exact_grasp_metrics
from .metrics import grasp_keys, histogram_entropy, joint_entropy, pose_entropies, summarize, unique_count, unique_grasp_rate, unique_vs_seeds
from .run import EvaluationError, EvaluationResult, evaluate_grasp_set, read_sidecar, write_evaluation
from .scene import GraspScene, SceneError, build_scene
from .simulate import GraspInputs, GraspSimulator, simulate_grasps

__all__ = [
    "EvaluationError", "EvaluationResult", "ExactHandMeshes", "GraspInputs", "GraspScene", "GraspSimulator", "SceneError",
    "build_scene", "evaluate_grasp_set", "exact_grasp_metrics", "grasp_keys", "histogram_entropy", "joint_entropy",
    "pose_entropies", "read_sidecar", "simulate_grasps", "summarize", "unique_count", "unique_grasp_rate", "unique_vs_seeds",
    "write_evaluation",
]
