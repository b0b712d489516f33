"""Evaluation: geometric checks against exact meshes (physics validation comes with issue 4)."""

from .exact import ExactHandMeshes, exact_grasp_metrics

__all__ = ["ExactHandMeshes", "exact_grasp_metrics"]
