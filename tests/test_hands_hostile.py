"""Hostile and corrupted hand files: every loader either succeeds or raises HandLoadError
(or UnknownNameError) with a message - never another exception, never a hang."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import HANDS_DIR, corrupt_bytes, need_shared
from graspforge.errors import GraspforgeError, HandLoadError
from graspforge.hands import HandDescription, load_hand_description
from graspforge.hands.mjcf import parse_mjcf
from graspforge.hands.reference_layout import read_contact_points, read_eigengrasps, read_penetration_points
from graspforge.hands.urdf import parse_urdf

VALID_URDF = """<?xml version="1.0"?>
<robot name="toy">
  <link name="base"><collision><geometry><box size="0.04 0.04 0.02"/></geometry></collision></link>
  <link name="finger"><collision><origin xyz="0 0 0.02"/><geometry><cylinder radius="0.008" length="0.04"/></geometry></collision></link>
  <link name="tip"><collision><geometry><sphere radius="0.01"/></geometry></collision></link>
  <joint name="j1" type="revolute"><parent link="base"/><child link="finger"/><origin xyz="0 0 0.01"/>
    <axis xyz="1 0 0"/><limit lower="0" upper="1.5" effort="1" velocity="1"/></joint>
  <joint name="j2" type="revolute"><parent link="finger"/><child link="tip"/><origin xyz="0 0 0.04"/>
    <axis xyz="1 0 0"/><limit lower="0" upper="1.5" effort="1" velocity="1"/><mimic joint="j1" multiplier="0.5"/></joint>
</robot>
"""

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate(text: str, data) -> str:
    ops = data.draw(st.lists(st.tuples(st.sampled_from(["del", "ins", "dup"]), st.integers(0, len(text) - 1), st.text(min_size=0, max_size=8)), min_size=1, max_size=6))
    for op, i, s in ops:
        i = min(i, max(len(text) - 1, 0))
        if op == "del":
            text = text[:i] + text[i + 1 + len(s):]
        elif op == "ins":
            text = text[:i] + s + text[i:]
        else:
            text = text[:i] + text[i:i + 30] + text[i:]
    return text


def test_valid_toy_urdf_loads(tmp_path):
    p = tmp_path / "toy.urdf"
    p.write_text(VALID_URDF)
    d = load_hand_description(p)
    assert d.dof == 1 and d.tree.link_names == ["base", "finger", "tip"]
    per = d.candidates_per_link()
    assert per["finger"] == 8 and 6 <= per["tip"] <= 8  # palmar side only; a buried one may be dropped
    T = d.tree.forward_numpy(d.canonical_q)
    finger = d.contact_links == 1
    n = np.einsum("cij,cj->ci", T[d.contact_links[finger], :3, :3], d.contact_normals[finger])
    assert (n[:, 1] < -0.3).mean() >= 0.7  # j1 (+x axis, closes positive) sweeps the finger towards -y
    np.testing.assert_allclose(d.approach_axis, [0, -1, 0], atol=1e-6)


@SETTINGS
@given(data=st.data())
def test_mutated_urdf_loads_or_raises_hand_error(tmp_path, data):
    p = tmp_path / "h.urdf"
    p.write_text(_mutate(VALID_URDF, data))
    try:
        parsed = parse_urdf(p)
    except HandLoadError as e:
        assert str(e)
        return
    parsed.tree.validate()
    assert parsed.tree.num_links >= 1


@SETTINGS
@given(blob=st.binary(max_size=400))
def test_random_bytes_as_urdf_or_mjcf(tmp_path, blob):
    for name, parse in (("h.urdf", parse_urdf), ("h.xml", parse_mjcf)):
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(HandLoadError):
            parse(p)


@SETTINGS
@given(obj=st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=6),
                        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=12))
def test_hostile_reference_json_files(tmp_path, obj):
    (tmp_path / "meshes").mkdir(exist_ok=True)
    for name, read in (("contact_points.json", lambda p: read_contact_points(p, tmp_path)),
                       ("penetration_points.json", read_penetration_points),
                       ("eigengrasps.json", read_eigengrasps)):
        p = tmp_path / name
        p.write_text(json.dumps(obj))
        try:
            read(p)
        except HandLoadError as e:
            assert name in str(e)


def test_invalid_json_is_named(tmp_path):
    p = tmp_path / "eigengrasps.json"
    p.write_text("{ not json")
    with pytest.raises(HandLoadError, match="eigengrasps.json: invalid JSON"):
        read_eigengrasps(p)


@SETTINGS
@given(data=st.data())
def test_corrupted_hand_folder(tmp_path, data):
    src = tmp_path / "src"
    if not src.exists():
        load_hand_description("allegro").save(src)
    dst = tmp_path / "h"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    target = dst / data.draw(st.sampled_from(["hand.json", "geometry.npz"]))
    target.write_bytes(corrupt_bytes(target.read_bytes(), data))
    try:
        d = HandDescription.load(dst)
    except HandLoadError as e:
        assert str(dst) in str(e) or target.name in str(e)
        return
    d.validate()


def test_hand_json_with_wrong_shapes_is_rejected(tmp_path):
    load_hand_description("allegro").save(tmp_path / "h")
    meta = json.loads((tmp_path / "h" / "hand.json").read_text())
    meta["canonical_q"] = meta["canonical_q"][:3]
    (tmp_path / "h" / "hand.json").write_text(json.dumps(meta))
    with pytest.raises(HandLoadError, match="canonical pose has the wrong length"):
        HandDescription.load(tmp_path / "h")
    meta["canonical_q"] = [float("nan")] * 16
    (tmp_path / "h" / "hand.json").write_text(json.dumps(meta).replace("NaN", "1e999"))
    with pytest.raises(GraspforgeError):
        HandDescription.load(tmp_path / "h")


def test_urdf_structure_errors(tmp_path):
    cases = {
        "two roots": VALID_URDF.replace('<joint name="j1"', '<joint name="j1x" type="fixed"><parent link="tip"/><child link="nowhere"/></joint><joint name="j1"'),
        "cycle": VALID_URDF.replace("</robot>", '<joint name="j3" type="fixed"><parent link="tip"/><child link="base"/></joint></robot>'),
        "missing mimic": VALID_URDF.replace('mimic joint="j1"', 'mimic joint="nope"'),
        "bad limits": VALID_URDF.replace('lower="0" upper="1.5" effort="1" velocity="1"/></joint>\n  <joint name="j2"', 'lower="2" upper="1" effort="1" velocity="1"/></joint>\n  <joint name="j2"'),
        "unknown type": VALID_URDF.replace('name="j1" type="revolute"', 'name="j1" type="planar"'),
        "missing mesh": VALID_URDF.replace('<sphere radius="0.01"/>', '<mesh filename="package://x/meshes/tip.stl"/>'),
    }
    for what, text in cases.items():
        p = tmp_path / "h.urdf"
        p.write_text(text)
        with pytest.raises(HandLoadError) as ei:
            parse_urdf(p)
        assert "h.urdf" in str(ei.value), what
    assert "tip.stl" in str(pytest.raises(HandLoadError, parse_urdf, p).value)


def test_reference_contact_file_with_missing_mesh(tmp_path):
    src = need_shared(HANDS_DIR / "panda")
    dst = tmp_path / "panda"
    shutil.copytree(src, dst)
    (dst / "contacts" / "contact_panda_finger.obj").unlink()
    with pytest.raises(HandLoadError, match="contact_points.json.*contact_panda_finger.obj"):
        load_hand_description(dst)
