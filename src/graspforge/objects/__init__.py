"""Objects to grasp: mesh loading (files in metres, or millimetres guessed), built-in procedural
shapes, and :class:`ObjectModel` with cached signed distance, surface points and mass properties.

>>> obj = load_object("mug")                      # built-in
>>> obj = load_object("path/to/003_cracker_box")  # YCB folder or a mesh file
>>> d, n = obj.signed_distance(points)            # (...,) m positive inside, (..., 3) outward
"""

from .decomposition import coacd_pieces, collision_pieces, shipped_pieces
from .loading import MESH_SUFFIXES, LoadedMesh, find_mesh_files, load_mesh
from .model import ObjectModel, load_object, load_objects, load_recorded_object, make_object, occupancy_mass_properties
from .procedural import BUILTIN_OBJECTS, builtin_parameters, parse_object_spec

__all__ = [
    "BUILTIN_OBJECTS",
    "MESH_SUFFIXES",
    "LoadedMesh",
    "ObjectModel",
    "builtin_parameters",
    "coacd_pieces",
    "collision_pieces",
    "find_mesh_files",
    "load_mesh",
    "load_object",
    "load_objects",
    "load_recorded_object",
    "make_object",
    "occupancy_mass_properties",
    "parse_object_spec",
    "shipped_pieces",
]
