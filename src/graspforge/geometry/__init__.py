"""Geometry shared by hands and objects: rotations, exact mesh distances, SDF grids, sampling."""

from .exact import exact_signed_distance, exact_signed_distance_union
from .grid import SDFGrid, build_sdf_grid, grid_node_positions
from .rotations import (
    matrix_to_quaternion,
    matrix_to_rot6d,
    quaternion_to_matrix,
    rot6d_to_matrix,
    rpy_to_matrix,
)
from .sampling import farthest_point_sampling, sample_surface

__all__ = [
    "SDFGrid",
    "build_sdf_grid",
    "grid_node_positions",
    "exact_signed_distance",
    "exact_signed_distance_union",
    "farthest_point_sampling",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "quaternion_to_matrix",
    "rot6d_to_matrix",
    "rpy_to_matrix",
    "sample_surface",
]
