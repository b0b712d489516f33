"""Energy terms of the grasp objective (METHOD.md section 2-3). So far: GraspQP force closure."""

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
from .qp import BoxQPResult, solve_box_qp

__all__ = [
    "BoxQPResult",
    "ForceClosureConfig",
    "ForceClosureQP",
    "force_closure_energy",
    "friction_cone_edges",
    "grasp_matrix",
    "qp_value",
    "singular_value_mean",
    "solve_box_qp",
    "tangent_basis",
]
