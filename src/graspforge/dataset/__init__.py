"""The dataset pipeline: ``graspforge dataset build`` (:mod:`.build`): plan (object, hand, grasp
type) jobs, synthesise and evaluate them resumably, in a process pool or on Ray.

The grasp-set file format moved to :mod:`graspforge.io`; ``GraspSet`` is re-exported here so that
``from graspforge.dataset import GraspSet`` keeps working.
"""

from ..io.grasp_set import FORMAT_VERSION, GraspSet, GraspSetError

__all__ = ["FORMAT_VERSION", "GraspSet", "GraspSetError"]
