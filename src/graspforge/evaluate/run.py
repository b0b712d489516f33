"""Moved to :mod:`graspforge.pipelines.evaluation`; this alias keeps old imports working."""

from ..pipelines.evaluation import *  # noqa: F401,F403
