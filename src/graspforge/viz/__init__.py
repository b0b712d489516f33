"""Pictures: hands, grasps, contact maps (matplotlib, no display needed)."""

from .hand import render_hand

__all__ = ["render_hand"]
