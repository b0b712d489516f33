"""Evaluation: physics validation in MuJoCo (:mod:`.scene`, :mod:`.simulate`), exact-mesh geometry
(:mod:`.exact`), dataset metrics (:mod:`.metrics`) and the end-to-end runner (:mod:`.run`).

The package is callable: ``graspforge.evaluate(grasp_set)`` is :func:`evaluate_grasps`.
"""

import sys
import types

from ..config import EvaluateConfig
from ..hands import HandDescription, HandModel, load_hand_description
from ..io.grasp_set import GraspSet
from ..objects import ObjectModel
from .exact import ExactHandMeshes, exact_grasp_metrics
from .metrics import grasp_keys, histogram_entropy, joint_entropy, pose_entropies, summarize, unique_count, unique_grasp_rate, unique_vs_seeds
from .run import EvaluationError, EvaluationResult, evaluate_grasp_set, grasp_set_object, read_sidecar, write_evaluation
from .scene import GraspScene, SceneError, build_scene
from .simulate import GraspInputs, GraspSimulator, simulate_grasps

__all__ = [
    "EvaluationError", "EvaluationResult", "ExactHandMeshes", "GraspInputs", "GraspScene", "GraspSimulator", "SceneError",
    "build_scene", "evaluate_grasp_set", "evaluate_grasps", "exact_grasp_metrics", "grasp_keys", "histogram_entropy", "joint_entropy",
    "pose_entropies", "read_sidecar", "simulate_grasps", "summarize", "unique_count", "unique_grasp_rate", "unique_vs_seeds",
    "write_evaluation",
]


def evaluate_grasps(grasps: GraspSet, hand: HandDescription | HandModel | str | None = None, obj: ObjectModel | None = None,
                    config: EvaluateConfig | None = None, protocols: tuple[str, ...] = ("strict",), workers: int = 1,
                    geometry: bool = True) -> EvaluationResult:
    """:func:`evaluate_grasp_set` with the hand and object found from the grasp set when not given:
    the hand by its recorded name (built-in or imported), the object from its recorded source,
    checked against its recorded content hash. Returns per-grasp arrays (N,) and per-protocol summaries."""
    if hand is None or isinstance(hand, str):
        desc = load_hand_description(hand or grasps.hand)
    else:
        desc = hand.description if isinstance(hand, HandModel) else hand
    obj = grasp_set_object(grasps) if obj is None else obj
    return evaluate_grasp_set(grasps, desc, obj, config, protocols=protocols, workers=workers, geometry=geometry)


class _CallablePackage(types.ModuleType):
    # a package cannot be a function, and graspforge.evaluate must stay this package (importing a
    # subpackage rebinds the parent's attribute), so the package itself answers the call
    def __call__(self, *args, **kwargs) -> EvaluationResult:
        return evaluate_grasps(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
