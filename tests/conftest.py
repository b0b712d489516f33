"""Shared test setup: one torch thread (small batched ops slow down badly with 2 threads under
load), a private cache folder, and the shared real-world assets when they are present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_ASSETS = REPO.parent / "shared" / "assets"
HANDS_DIR = SHARED_ASSETS / "hands"
YCB_DIR = SHARED_ASSETS / "objects" / "ycb"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    # tests never read or pollute the user's cache; one folder per session keeps reruns fast
    if "GRASPFORGE_CACHE_DIR" not in os.environ:
        os.environ["GRASPFORGE_CACHE_DIR"] = str(tmp_path_factory.mktemp("gf-cache"))
    yield


def need_shared(path: Path) -> Path:
    """Skip the calling test cleanly when ../shared (or a part of it) is absent."""
    if not path.exists():
        pytest.skip(f"shared assets not found at {path}")
    return path


def corrupt_bytes(raw: bytes, data) -> bytes:
    """A hypothesis-drawn corruption of a file's bytes: truncated, bits flipped, emptied or replaced."""
    from hypothesis import strategies as st

    raw = bytearray(raw)
    how = data.draw(st.sampled_from(["truncate", "flip", "empty", "random"]))
    if how == "truncate":
        return bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 30))):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
        return bytes(raw)
    if how == "empty":
        return b""
    return data.draw(st.binary(max_size=300))


#: a two-finger gripper of two mirrored slides, the right one coupled to the left (tests of MJCF import
#: and of squeeze targets)
GRIPPER_MJCF = """<mujoco model="toy_gripper">
  <worldbody>
    <body name="base">
      <geom type="box" size="0.04 0.06 0.01"/>
      <body name="left" pos="0 -0.015 0.01">
        <joint name="left_slide" type="slide" axis="0 -1 0" range="0 0.02"/>
        <geom type="box" size="0.01 0.005 0.03" pos="0 0 0.03"/>
      </body>
      <body name="right" pos="0 0.015 0.01">
        <joint name="right_slide" type="slide" axis="0 1 0" range="0 0.02"/>
        <geom type="box" size="0.01 0.005 0.03" pos="0 0 0.03"/>
      </body>
    </body>
  </worldbody>
  <equality><joint joint1="right_slide" joint2="left_slide" polycoef="0 1 0 0 0"/></equality>
</mujoco>
"""
