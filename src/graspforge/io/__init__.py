"""File formats, between the core and the pipelines: grasp-set files (:mod:`.grasp_set`), a
dataset folder's layout and index (:mod:`.dataset_index`), and exports to other projects' formats
(:mod:`.export`). Nothing here synthesises or simulates.

>>> gs = GraspSet.load("grasps/box__allegro__full.npz")   # numpy only
"""

from .grasp_set import FORMAT_VERSION, GraspSet, GraspSetError

__all__ = ["FORMAT_VERSION", "GraspSet", "GraspSetError"]
