"""Grasp sets and their files."""

from .grasp_set import FORMAT_VERSION, GraspSet, GraspSetError

__all__ = ["FORMAT_VERSION", "GraspSet", "GraspSetError"]
