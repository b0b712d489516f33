"""Does a grasp set belong to this hand and this object? Checked before anything is simulated or drawn.

Here, below the pipelines, because the pictures (:mod:`graspforge.viz.heatmap`) run the same check
as the evaluation pipeline (:mod:`graspforge.pipelines.evaluation`).
"""

from __future__ import annotations

from ..errors import GraspforgeError, ObjectMismatchError
from ..hands.description import HandDescription
from ..io.grasp_set import GraspSet
from ..objects import ObjectModel, load_recorded_object


class EvaluationError(GraspforgeError, ValueError):
    """A grasp file that cannot be evaluated (hand or object mismatch, missing object, ...)."""


def check_hand(grasps: GraspSet, desc: HandDescription, where: str = "grasp set") -> None:
    """Raise :class:`EvaluationError` unless the grasp set's joints are the hand's, in order."""
    if list(grasps.joint_names) != list(desc.joint_names):
        extra = sorted(set(grasps.joint_names) - set(desc.joint_names))[:4]
        missing = sorted(set(desc.joint_names) - set(grasps.joint_names))[:4]
        raise EvaluationError(
            f"{where}: its {len(grasps.joint_names)} joints do not match hand {desc.name!r} ({len(desc.joint_names)} DoF)"
            + (f"; unknown to the hand: {extra}" if extra else "") + (f"; missing: {missing}" if missing else "")
            + ("; same joints in another order" if not extra and not missing else ""))


def grasp_set_object(grasps: GraspSet, override: str | None = None, where: str = "grasp set") -> ObjectModel:
    """The object a grasp set was made for (its recorded source and scale), checked against the
    recorded content hash; or ``override`` (a mesh or built-in spec), unchecked."""
    if override:
        return load_recorded_object(override, None)  # unchecked, at the spec's own scale
    try:
        return load_recorded_object(grasps.object_source, grasps.object_scale, grasps.object_hash, where)
    except ObjectMismatchError as e:
        raise EvaluationError(f"{e}; pass --object to choose one") from None
