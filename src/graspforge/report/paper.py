"""Moved to :mod:`graspforge.pipelines.paper`; this alias keeps old imports working."""

from ..pipelines.paper import *  # noqa: F401,F403
