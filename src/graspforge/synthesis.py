"""Moved to :mod:`graspforge.pipelines.synthesis`; this alias keeps old imports working."""

from .pipelines.synthesis import *  # noqa: F401,F403
