"""Evaluation building blocks: physics validation in MuJoCo (:mod:`.scene`, :mod:`.simulate`),
exact-mesh geometry (:mod:`.exact`), dataset metrics (:mod:`.metrics`) and the grasp set / hand /
object match checks (:mod:`.checks`).

The run over a grasp set (simulate each protocol, measure, summarise, write sidecars) is a pipeline:
:mod:`graspforge.pipelines.evaluation`. Its names stay importable from here for old code, and the
package stays callable: ``graspforge.evaluate(grasp_set)`` is
:func:`graspforge.pipelines.evaluation.evaluate_grasps`. Both reach the pipeline only when used
(:func:`_pipeline`): the pipeline imports this package, so importing it here would be a cycle.
"""

import sys
import types
from typing import Any

from .checks import EvaluationError, check_hand, grasp_set_object
from .exact import ExactHandMeshes, exact_grasp_metrics
from .metrics import grasp_keys, histogram_entropy, joint_entropy, pose_entropies, summarize, unique_count, unique_grasp_rate, unique_vs_seeds
from .scene import GraspScene, SceneError, build_scene
from .simulate import GraspInputs, GraspSimulator, simulate_grasps

#: names of :mod:`graspforge.pipelines.evaluation` that were importable from here before it moved
_PIPELINE_NAMES = ("EvaluationResult", "evaluate_grasp_set", "evaluate_grasps", "read_sidecar", "write_evaluation")

__all__ = [
    "EvaluationError", "EvaluationResult", "ExactHandMeshes", "GraspInputs", "GraspScene", "GraspSimulator", "SceneError",
    "build_scene", "check_hand", "evaluate_grasp_set", "evaluate_grasps", "exact_grasp_metrics", "grasp_keys", "grasp_set_object",
    "histogram_entropy", "joint_entropy", "pose_entropies", "read_sidecar", "simulate_grasps", "summarize", "unique_count",
    "unique_grasp_rate", "unique_vs_seeds", "write_evaluation",
]


def _pipeline() -> types.ModuleType:
    """:mod:`graspforge.pipelines.evaluation`, imported on first use: it sits a layer above this
    package and imports it, so a module-level import here would be an import cycle."""
    from ..pipelines import evaluation

    return evaluation


def __getattr__(name: str) -> Any:
    if name in _PIPELINE_NAMES:
        return getattr(_pipeline(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallablePackage(types.ModuleType):
    # a package cannot be a function, and graspforge.evaluate must stay this package (importing a
    # subpackage rebinds the parent's attribute), so the package itself answers the call
    def __call__(self, *args, **kwargs) -> Any:
        return _pipeline().evaluate_grasps(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
