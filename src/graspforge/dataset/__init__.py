"""Old import paths, kept for users' code: the dataset pipeline (``graspforge dataset build``) moved
to :mod:`graspforge.pipelines.dataset_build` (alias: :mod:`.build`), the grasp-set file format and
exports to :mod:`graspforge.io` (aliases: :mod:`.grasp_set`, :mod:`.export`).

``GraspSet`` is re-exported here so that ``from graspforge.dataset import GraspSet`` keeps working.
"""

from ..io.grasp_set import FORMAT_VERSION, GraspSet, GraspSetError

__all__ = ["FORMAT_VERSION", "GraspSet", "GraspSetError"]
