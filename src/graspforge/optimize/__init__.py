"""Optimisers: convex-hull initialisation, DexGraspNet annealing ("MALA") and MALA*."""

from .init import HullSampler, initial_joints, sample_contacts
from .mala import GraspOptimizer, OptimizerStats

__all__ = ["GraspOptimizer", "HullSampler", "OptimizerStats", "initial_joints", "sample_contacts"]
