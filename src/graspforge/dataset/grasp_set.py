"""Moved to :mod:`graspforge.io.grasp_set`; this alias keeps old imports working."""

from ..io.grasp_set import *  # noqa: F401,F403
from ..io.grasp_set import FORMAT_VERSION, GraspSet, GraspSetError  # noqa: F401
