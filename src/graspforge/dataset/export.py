"""Moved to :mod:`graspforge.io.export`; this alias keeps old imports working."""

from ..io.export import *  # noqa: F401,F403
