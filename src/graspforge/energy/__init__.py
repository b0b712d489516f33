"""The grasp energy (METHOD.md s. 2-3): :class:`GraspEnergy` (:mod:`.model`) sums the terms of
:mod:`.terms` (contact distance, penetration, joint limits, baseline force closures) and GraspQP's
force closure (:mod:`.force_closure`, the QP solvers in :mod:`.qp`) for a batch of grasps of the
objects in an :class:`ObjectBatch` (:mod:`.scene`: their SDF grids and surface samples on the device).
"""

from .force_closure import (
    ForceClosureConfig,
    ForceClosureQP,
    force_closure_energy,
    friction_cone_edges,
    grasp_matrix,
    qp_value,
    singular_value_mean,
    tangent_basis,
)
from .model import GraspEnergy
from .qp import BoxQPResult, solve_box_qp
from .scene import ObjectBatch

__all__ = [
    "BoxQPResult",
    "ForceClosureConfig",
    "ForceClosureQP",
    "GraspEnergy",
    "ObjectBatch",
    "force_closure_energy",
    "friction_cone_edges",
    "grasp_matrix",
    "qp_value",
    "singular_value_mean",
    "solve_box_qp",
    "tangent_basis",
]
