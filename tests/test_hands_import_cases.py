"""``hands import`` on the cases real hand files present (issue 17), each as a small MJCF written
here: angles in radians without ``<compiler angle>``, tendon couplings (with joint ``ref``), a prefixed
thumb (``robot0:th...``), a forearm above the palm, symmetric joint ranges whose servos say which way
they close. Real MuJoCo parsing throughout; MuJoCo itself is the reference for kinematics."""

from __future__ import annotations

import json

import mujoco
import numpy as np
import pytest

from graspforge.cli.main import main
from graspforge.errors import HandLoadError
from graspforge.hands import BuildOptions, import_hand, load_hand_description
from graspforge.hands.description import HandDescription, is_thumb_link, parse_axis
from graspforge.hands.mjcf import parse_mjcf


@pytest.fixture
def hands_dir(tmp_path, monkeypatch):
    d = tmp_path / "user_hands"
    monkeypatch.setenv("GRASPFORGE_HANDS_DIR", str(d))
    monkeypatch.setenv("GRASPFORGE_CACHE_DIR", str(tmp_path / "cache"))
    return d


def gripper_xml(compiler: str = "", servos: bool = True) -> str:
    """Two hinged fingers on a base, ranges symmetric (written in radians); servos close them inwards."""
    act = """<actuator>
    <position name="l" joint="left_j" kp="10" ctrlrange="0 0.7"/>
    <position name="r" joint="right_j" kp="10" ctrlrange="-0.7 0"/>
  </actuator>""" if servos else ""
    return f"""<mujoco model="hinge_gripper">{compiler}
  <worldbody>
    <body name="base">
      <geom type="box" size="0.05 0.02 0.01"/>
      <body name="left" pos="-0.03 0 0.01">
        <joint name="left_j" type="hinge" axis="0 1 0" range="-0.7 0.7"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.05" size="0.006"/>
      </body>
      <body name="right" pos="0.03 0 0.01">
        <joint name="right_j" type="hinge" axis="0 1 0" range="-0.7 0.7"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.05" size="0.006"/>
      </body>
    </body>
  </worldbody>
  {act}
</mujoco>
"""


def finger(prefix: str, name: str, x: float, y: float, sign: float, j0: str = "", ref: float = 0.0) -> str:
    """A two-link finger at (x, y) on the palm's edge, extending along sign*y, curling towards +z."""
    ax = f"{sign:g} 0 0"
    return f"""
      <body name="{prefix}{name}proximal" pos="{x} {y} 0">
        <joint name="{prefix}{name.upper()}J2" axis="{ax}" range="0 1.5" ref="{ref}"/>
        <geom type="capsule" fromto="0 0 0 0 {sign * 0.03:g} 0" size="0.008"/>
        <body name="{prefix}{name}distal" pos="0 {sign * 0.035:g} 0">
          <joint name="{prefix}{name.upper()}J1" axis="{ax}" range="0 1.5"/>
          <geom type="capsule" fromto="0 0 0 0 {sign * 0.025:g} 0" size="0.007"/>
        </body>
      </body>"""


def hand_xml(prefix: str = "robot0:", forearm: bool = True, tendons: str = "", refs: float = 0.0) -> str:
    """A three-finger hand (ff, mf, thumb ``th``) on a palm facing +z, optionally on a forearm with a wrist joint."""
    fingers = finger(prefix, "ff", -0.02, 0.04, 1, ref=refs) + finger(prefix, "mf", 0.02, 0.04, 1, ref=refs) + finger(prefix, "th", 0.0, -0.04, -1, ref=refs)
    palm = f"""<body name="{prefix}palm" pos="0 0 0.15">
        {'<joint name="' + prefix + 'WRJ" axis="1 0 0" range="-0.5 0.5"/>' if forearm else ''}
        <geom type="box" size="0.04 0.04 0.01"/>{fingers}
      </body>"""
    body = f"""<body name="{prefix}forearm"><geom type="box" size="0.03 0.03 0.07" pos="0 0 0.05"/>{palm}</body>""" if forearm else palm
    return f"""<mujoco model="toy_hand"><compiler angle="radian"/>
  <worldbody>{body}</worldbody>{tendons}
</mujoco>
"""


def write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    return p


# -- angle units -----------------------------------------------------------------------------------

def test_radians_without_compiler_angle_detected_from_servos(tmp_path):
    p = parse_mjcf(write(tmp_path, "g.xml", gripper_xml()))
    np.testing.assert_allclose(p.tree.upper, [0.7, 0.7])  # read as radians, not 0.7 deg
    assert p.notes["angle"].startswith("radian (detected")
    assert any("--angle degree" in w for w in p.warnings)
    assert np.degrees(parse_mjcf(write(tmp_path, "g2.xml", gripper_xml()), angle="degree").tree.upper[0]) == pytest.approx(0.7)


def test_implausible_degrees_without_servos_warn_and_flag_fixes(tmp_path):
    path = write(tmp_path, "g.xml", gripper_xml(servos=False))
    p = parse_mjcf(path)
    assert p.tree.upper[0] == pytest.approx(np.radians(0.7))  # MuJoCo's reading, kept...
    assert any("--angle radian" in w for w in p.warnings)  # ...but said
    assert parse_mjcf(path, angle="radian").tree.upper[0] == pytest.approx(0.7)
    with pytest.raises(HandLoadError, match="angle unit"):
        parse_mjcf(path, angle="grad")


def test_explicit_degrees_are_not_second_guessed(tmp_path):
    xml = gripper_xml(compiler='<compiler angle="degree"/>').replace('range="-0.7 0.7"', 'range="-40 40"')
    p = parse_mjcf(write(tmp_path, "g.xml", xml))
    np.testing.assert_allclose(p.tree.upper, np.radians([40, 40]))
    assert not any("angle" in w for w in p.warnings)


def test_rigid_tool_is_refused_as_not_a_hand(tmp_path, hands_dir):
    xml = """<mujoco model="wiper"><worldbody><body name="mount"><geom type="box" size="0.02 0.02 0.02"/>
      <body name="pad" pos="0 0 0.03"><geom type="box" size="0.03 0.03 0.005"/></body></body></worldbody></mujoco>"""
    with pytest.raises(HandLoadError, match="no movable joint.*not a hand or gripper"):
        import_hand(write(tmp_path, "wiper.xml", xml), "wiper")


def test_included_fragment_imports_through_its_includer_and_alone_says_why_not(tmp_path, hands_dir):
    """gymnasium-robotics' Shadow: robot.xml is a <body> fragment that reach.xml <include>s."""
    body = gripper_xml().split("<worldbody>")[1].split("</worldbody>")[0]
    write(tmp_path, "robot.xml", f"<!-- a fragment --><mujoco>{body}</mujoco>")
    act = gripper_xml().split("</worldbody>")[1].replace("</mujoco>", "")
    main_xml = f"""<mujoco model="scene"><compiler angle="radian"/>
      <worldbody><geom name="floor" type="plane" size="1 1 0.1" pos="0 0 -0.5"/><include file="robot.xml"/></worldbody>{act}</mujoco>"""
    d, _ = import_hand(write(tmp_path, "scene.xml", main_xml), "scene")
    assert d.tree.link_names[0] == "base" and d.dof == 2
    with pytest.raises(HandLoadError, match="fragment written to be <include>d"):
        import_hand(tmp_path / "robot.xml", "frag")


# -- closing directions from servos ----------------------------------------------------------------

def test_symmetric_ranges_close_the_way_the_servos_go(tmp_path, hands_dir):
    d, _ = import_hand(write(tmp_path, "g.xml", gripper_xml()), "g")
    inf = d.provenance["inferred"]
    assert inf["closing"] == {"left_j": {"sign": 1, "from": "servo ctrlrange"}, "right_j": {"sign": -1, "from": "servo ctrlrange"}}
    # closing really brings the fingertips together (MuJoCo's kinematics as the reference)
    m = mujoco.MjModel.from_xml_path(str(tmp_path / "g.xml"))
    data = mujoco.MjData(m)
    for q in ([0.0, 0.0], [0.3, -0.3]):
        data.qpos[:] = q
        mujoco.mj_kinematics(m, data)
        T = d.tree.forward_numpy(np.array(q))
        np.testing.assert_allclose(T[d.tree.link_index("left"), :3, 3], data.xpos[m.body("left").id] - data.xpos[m.body("base").id], atol=1e-9)
    tips = lambda q: [d.tree.forward_numpy(np.array(q))[d.tree.link_index(n)] @ [0, 0, 0.05, 1] for n in ("left", "right")]  # noqa: E731
    a, b = tips([0.0, 0.0]), tips([0.3, -0.3])
    assert np.linalg.norm(b[0] - b[1]) < np.linalg.norm(a[0] - a[1]) - 0.02
    assert {d.tree.link_names[l] for l in d.contact_links} == {"left", "right"}


def test_symmetric_ranges_without_servos_name_the_closing_flag(tmp_path, hands_dir):
    path = write(tmp_path, "g.xml", gripper_xml(compiler='<compiler angle="radian"/>', servos=False))
    with pytest.raises(HandLoadError):  # no joint closes: no palmar side anywhere, no candidates
        import_hand(path, "g0")
    d, _ = import_hand(path, "g1", options=BuildOptions(closing={"left_j": 1, "right_j": -1}))
    assert d.provenance["inferred"]["closing"]["right_j"] == {"sign": -1, "from": "--closing"}
    d2, _ = import_hand(path, "g2", options=BuildOptions(closing={"left_j": 1}))
    assert any("--closing right_j=" in w for w in d2.warnings)
    with pytest.raises(HandLoadError, match="not an actuated joint"):
        import_hand(path, "g3", options=BuildOptions(closing={"nope": 1}))


def drawn_open_gripper_xml(ref: float) -> str:
    """Two hinged fingers drawn (at joint ``ref``) spread apart; range 0..1.5 all positive, and
    *decreasing* the joint closes them - the Jaco's layout (robosuite closes it by lowering ctrl)."""
    return f"""<mujoco model="drawn_open"><compiler angle="radian"/>
  <worldbody>
    <body name="base">
      <geom type="box" size="0.05 0.02 0.01"/>
      <body name="left" pos="-0.03 0 0.01" euler="0 -0.6 0">
        <joint name="left_j" axis="0 -1 0" range="0 1.5" ref="{ref}"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.05" size="0.006"/>
      </body>
      <body name="right" pos="0.03 0 0.01" euler="0 0.6 0">
        <joint name="right_j" axis="0 1 0" range="0 1.5" ref="{ref}"/>
        <geom type="capsule" fromto="0 0 0 0 0 0.05" size="0.006"/>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


def test_ranges_are_measured_from_the_drawn_pose_ref(tmp_path, hands_dir):
    d, _ = import_hand(write(tmp_path, "g.xml", drawn_open_gripper_xml(ref=1.1)), "g")
    inf = d.provenance["inferred"]["closing"]
    assert inf["left_j"] == {"sign": -1, "from": "range from ref"} and inf["right_j"]["sign"] == -1
    # MuJoCo is the reference: lowering the joints really brings the fingertips together
    m = mujoco.MjModel.from_xml_path(str(tmp_path / "g.xml"))
    data = mujoco.MjData(m)

    def gap(q: float) -> float:
        data.qpos[:] = q
        mujoco.mj_kinematics(m, data)
        tips = [data.xpos[m.body(n).id] + data.xmat[m.body(n).id].reshape(3, 3) @ [0, 0, 0.05] for n in ("left", "right")]
        return float(np.linalg.norm(tips[0] - tips[1]))

    assert gap(0.0) < gap(1.5) - 0.05
    # the open pose is curled a little from the drawn pose towards closed, not parked at the closed end 0
    np.testing.assert_allclose(d.canonical_q, [1.1 * 0.85] * 2, atol=1e-9)
    assert gap(float(d.canonical_q[0])) > gap(0.0) + 0.04
    # without a ref the same range reads as flexion from 0 (URDF convention), closing upwards
    d0, _ = import_hand(write(tmp_path, "g0.xml", drawn_open_gripper_xml(ref=0.0)), "g0")
    assert d0.provenance["inferred"]["closing"]["left_j"] == {"sign": 1, "from": "range"}


LINKAGE_GRIPPER = """<mujoco model="linkage"><compiler angle="radian"/>
  <worldbody>
    <body name="base">
      <geom type="box" size="0.05 0.02 0.01"/>
      <body name="left" pos="-0.04 0 0.01">
        <joint name="left_j" axis="0 1 0" range="0 0.7"/>
        <geom type="box" size="0.004 0.01 0.04" pos="0 0 0.04"/>
      </body>
      <body name="left_bar" pos="-0.02 0 0.01">
        <joint name="left_bar_j" axis="0 1 0" range="-1 1"/>
        <geom type="box" size="0.004 0.01 0.012" pos="0 0 0.012"/>
      </body>
      <body name="right" pos="0.04 0 0.01">
        <joint name="right_j" axis="0 -1 0" range="0 0.7"/>
        <geom type="box" size="0.004 0.01 0.04" pos="0 0 0.04"/>
      </body>
      <body name="right_bar" pos="0.02 0 0.01">
        <joint name="right_bar_j" axis="0 -1 0" range="-1 1"/>
        <geom type="box" size="0.004 0.01 0.012" pos="0 0 0.012"/>
      </body>
    </body>
  </worldbody>
  <equality>
    <joint joint1="left_bar_j" joint2="left_j" polycoef="0 -0.3 0 0 0"/>
    <joint joint1="right_bar_j" joint2="right_j" polycoef="0 -0.3 0 0 0"/>
  </equality>
</mujoco>
"""


def test_linkage_bar_swinging_outwards_gets_no_candidates_on_its_outside(tmp_path, hands_dir):
    """A bar beside each finger, driven by the finger's joint but swinging the other way (robosuite's
    Robotiq 2F-140 inner knuckles): its closing side is its outside; no candidate may face away from
    the fingertips there."""
    from graspforge.hands import structure

    d, _ = import_hand(write(tmp_path, "lk.xml", LINKAGE_GRIPPER), "lk")
    assert [f for f in d.provenance["inferred"]["fingers"]] == [["left"], ["right"]]  # the bars are linkage, not fingers
    t, q = d.tree, d.canonical_q
    T = t.forward_numpy(q)
    L = d.contact_links
    p = np.einsum("cij,cj->ci", T[L, :3, :3], d.contact_points) + T[L, :3, 3]
    n = np.einsum("cij,cj->ci", T[L, :3, :3], d.contact_normals)
    tips = [t.link_index("left"), t.link_index("right")]
    centre = np.mean([T[l, :3, 3] + T[l, :3, :3] @ [0, 0, 0.04] for l in tips], 0)
    on_bar = np.isin(L, [t.link_index("left_bar"), t.link_index("right_bar")])
    assert np.all(np.einsum("ci,ci->c", n[on_bar], centre - p[on_bar]) > 0)
    assert (~on_bar).sum() >= 8  # the fingers keep theirs
    # the closing velocity alone would have put candidates on the bar's outer face
    bar = t.link_index("left_bar")
    pts = np.array([[-0.004, 0.0, 0.012], [0.004, 0.0, 0.012]])  # outer (-x) and inner (+x) faces, bar frame
    nrm = np.array([[-1.0, 0, 0], [1.0, 0, 0]])
    closing = np.array([1.0, 1.0])
    alone = structure.palmar_mask(t, q, closing, np.full(2, bar), pts, nrm, 0, [], np.zeros((t.num_links, 3)))
    assert alone.tolist() == [True, False]


# -- couplings from tendons ------------------------------------------------------------------------

TENDONS = """
  <tendon>
    <fixed name="ff_cpl"><joint joint="robot0:FFJ2" coef="0.4"/><joint joint="robot0:FFJ1" coef="-0.4"/></fixed>
    <fixed name="mf_rigid" limited="true" range="-0.001 0.001">
      <joint joint="robot0:MFJ2" coef="0.00705"/><joint joint="robot0:MFJ1" coef="-0.00805"/></fixed>
    <fixed name="th_soft" limited="true" range="-1 1"><joint joint="robot0:THJ2" coef="1"/><joint joint="robot0:THJ1" coef="1"/></fixed>
  </tendon>
  <equality><tendon tendon1="ff_cpl"/></equality>"""


def test_tendon_equality_and_rigid_fixed_tendon_become_couplings(tmp_path):
    path = write(tmp_path, "h.xml", hand_xml(forearm=False, tendons=TENDONS, refs=0.3))
    p = parse_mjcf(path)
    t = p.tree
    assert t.dof == 4 and "robot0:FFJ1" not in t.actuated_joints and "robot0:MFJ1" not in t.actuated_joints
    assert {"robot0:THJ1", "robot0:THJ2"} <= set(t.actuated_joints)  # a soft tendon limit is not a coupling
    m = mujoco.MjModel.from_xml_path(str(path))
    data = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    for _ in range(3):
        q = rng.uniform(t.lower, t.upper)
        full = t.joint_values(q)  # every link's joint value
        for l in range(t.num_links):
            if t.q_index[l] >= 0:
                data.qpos[m.jnt_qposadr[m.joint(t.joint_names[l]).id]] = full[l]
        mujoco.mj_kinematics(m, data)
        mujoco.mj_tendon(m, data)
        # the couplings keep the equality tendon at its reference length and the rigid one mid-range
        assert data.ten_length[m.tendon("ff_cpl").id] == pytest.approx(m.tendon_length0[m.tendon("ff_cpl").id], abs=1e-9)
        assert data.ten_length[m.tendon("mf_rigid").id] == pytest.approx(0.0, abs=1e-9)
        # and our kinematics (joint ref folded into the link origins) puts every body where MuJoCo does
        T = t.forward_numpy(q)
        root = m.body("robot0:palm").id
        for l, n in enumerate(t.link_names):
            np.testing.assert_allclose(T[l, :3, 3], data.xpos[m.body(n).id] - data.xpos[root], atol=1e-9)


def test_coupling_to_two_drivers_is_refused_with_a_warning(tmp_path):
    two = """<tendon><fixed name="three"><joint joint="robot0:FFJ2" coef="1"/><joint joint="robot0:MFJ2" coef="1"/>
      <joint joint="robot0:THJ2" coef="1"/></fixed></tendon><equality><tendon tendon1="three"/></equality>"""
    p = parse_mjcf(write(tmp_path, "h.xml", hand_xml(forearm=False, tendons=two)))
    # THJ2 = -(FFJ2 + MFJ2): no single driver, so it stays free and the file's relation is named
    assert p.tree.dof == 6
    assert any("depends on several joints" in w for w in p.warnings)


# -- prefixed thumb, forearm, root/palm link -------------------------------------------------------

@pytest.mark.parametrize("name", ["robot0:thdistal", "rh_thdistal", "right_thumb_tip", "thbase", "l.th2", "THJ1"])
def test_thumb_names_with_prefixes(name):
    assert is_thumb_link(name)


@pytest.mark.parametrize("name", ["robot0:ffdistal", "width_link", "teeth", "left_inner_finger", "path"])
def test_not_thumb_names(name):
    assert not is_thumb_link(name)


def test_prefixed_hand_on_a_forearm(tmp_path, hands_dir):
    path = write(tmp_path, "h.xml", hand_xml())
    d, _ = import_hand(path, "toy")
    inf = d.provenance["inferred"]
    assert inf["palm"].startswith("robot0:palm") and inf["above_palm_dropped"] == ["robot0:forearm"]
    fa = d.tree.link_index("robot0:forearm")
    assert d.link_grid[fa] == -1 and fa not in d.surface_links and fa not in d.contact_links  # not grasping geometry
    assert inf["thumb"] == "robot0:thdistal"
    assert "robot0:thdistal" in d.grasp_types["pinch"].links and len(d.grasp_types["pinch"].links) == 2
    assert inf["closing"]["robot0:WRJ"]["sign"] == 0  # the wrist moves the palm: not a closing joint
    # the palm sits 0.15 m up the forearm from the root: synthesis would place the forearm's end at the object
    assert any("pass --root-link robot0:palm (the joints above it, robot0:WRJ, go with it)" in w for w in d.warnings)
    # the palm faces +z in the palm's frame, which sits at the forearm's origin here
    np.testing.assert_allclose(d.approach_axis, [0, 0, 1], atol=0.15)
    # --root-link: the hand starts at the palm; the wrist joint and the forearm are gone
    d2, _ = import_hand(path, "toy2", options=BuildOptions(root_link="robot0:palm"))
    assert d2.tree.link_names[0] == "robot0:palm" and "robot0:forearm" not in d2.tree.link_names
    assert d2.dof == d.dof - 1 and "robot0:WRJ" not in d2.joint_names
    assert not any("--root-link" in w for w in d2.warnings)
    np.testing.assert_allclose(d2.approach_axis, [0, 0, 1], atol=0.15)
    with pytest.raises(HandLoadError, match="--root-link"):
        import_hand(path, "toy3", options=BuildOptions(root_link="robot0:elbow"))


def test_thumb_flag_overrides_names(tmp_path, hands_dir):
    path = write(tmp_path, "h.xml", hand_xml(forearm=False))
    d, _ = import_hand(path, "toy", options=BuildOptions(thumb_link="robot0:ffdistal"))
    assert d.provenance["inferred"]["thumb"] == "robot0:ffdistal" and d.provenance["inferred"]["thumb_from"] == "--thumb"
    with pytest.raises(HandLoadError, match="--thumb"):
        import_hand(path, "toy2", options=BuildOptions(thumb_link="robot0:palm"))


def test_approach_flag_and_axis_forms(tmp_path, hands_dir):
    np.testing.assert_allclose(parse_axis("-y"), [0, -1, 0])
    np.testing.assert_allclose(parse_axis("1,1,0"), np.array([1, 1, 0]) / np.sqrt(2))
    for bad in ("w", "0,0,0", "1,2"):
        with pytest.raises(HandLoadError, match="axis"):
            parse_axis(bad)
    path = write(tmp_path, "h.xml", hand_xml(forearm=False))
    d, _ = import_hand(path, "toy", options=BuildOptions(approach="-z"))
    np.testing.assert_allclose(d.approach_axis, [0, 0, -1])
    assert d.provenance["inferred"]["axes_from"] == "--approach"
    assert any("(--approach) points away from the palm" in w for w in d.warnings)  # kept, but said


@pytest.mark.parametrize("facing, reach, away", [
    (-0.21, 0.142, False),  # Robotiq 3-finger: curled pads face back a little, tips 142 mm ahead: fingertips first
    (0.41, 0.051, False),   # Shadow: palm first
    (0.0, 0.094, False),    # a parallel gripper: pads face each other
    (-0.6, 0.005, True),    # the back of a hand first: candidates face against it, tips not ahead
    (0.0, -0.16, True),     # a gripper's axis out of its wrist: tips behind the palm
    (-0.3, -0.01, True),
])
def test_approach_points_away_rule(facing, reach, away):
    from graspforge.hands.description import approach_points_away

    assert approach_points_away(facing, reach) is away


def test_builtin_recorded_approach_axes_are_not_flagged():
    """The recorded axes of the built-ins (regenerated by tools/build_builtin_hands.py) pass the check."""
    for name in ("robotiq3", "shadow_hand", "allegro"):
        assert not any("points away" in w for w in load_hand_description(name).warnings), name


def test_cli_import_prints_what_it_inferred_and_takes_the_flags(tmp_path, hands_dir, capsys):
    path = write(tmp_path, "g.xml", gripper_xml(compiler='<compiler angle="radian"/>', servos=False))
    assert main(["hands", "import", str(path), "--name", "gcli", "--closing", "left_j=+1", "right_j=-1", "--geometry", "mesh"]) == 0
    out = capsys.readouterr().out
    assert "inferred (each settled by the flag named)" in out
    assert "left_j +1 (--closing)" in out and "right_j -1 (--closing)" in out
    assert "angle unit: radian (the file's <compiler angle>)" in out
    assert "generate --best-of 2" in out  # no contact file: its candidates are generated
    assert load_hand_description("gcli").provenance["inferred"]["link_geometry"] == "mesh"
    assert main(["hands", "import", str(path), "--name", "gbad", "--closing", "left_j=up"]) != 0
    assert "expected JOINT=+1" in capsys.readouterr().err


def test_python_default_geometry_is_the_clis(tmp_path, hands_dir):
    """import_hand() without options builds what `hands import` builds: each link's hull."""
    path = write(tmp_path, "g.xml", gripper_xml())
    d, _ = import_hand(path, "py")
    assert main(["hands", "import", str(path), "--name", "cli"]) == 0
    c = load_hand_description("cli")
    assert d.provenance["inferred"]["link_geometry"] == c.provenance["inferred"]["link_geometry"] == "hull"
    assert len(d.grids) == len(c.grids)
    for a, b in zip(d.grids, c.grids):  # saved grids are stored at reduced precision (~8 um here)
        np.testing.assert_allclose(a.values, b.values, atol=2e-5)


def test_hull_geometry_is_what_evaluate_simulates(tmp_path, hands_dir):
    """A concave link (a U-shaped pad holder): ``--geometry hull`` (the CLI's default) synthesises
    against its convex hull, which is what evaluate collides for an imported hand; mesh keeps the U."""
    xml = gripper_xml(compiler='<compiler angle="radian"/>').replace(
        '<geom type="box" size="0.05 0.02 0.01"/>',
        '<geom type="box" size="0.05 0.02 0.004" pos="0 0 -0.006"/><geom type="box" size="0.004 0.02 0.02" pos="-0.046 0 0.01"/>'
        '<geom type="box" size="0.004 0.02 0.02" pos="0.046 0 0.01"/>')
    path = write(tmp_path, "u.xml", xml)
    hull, _ = import_hand(path, "u_hull", options=BuildOptions(link_geometry="hull"))
    mesh, _ = import_hand(path, "u_mesh", options=BuildOptions(link_geometry="mesh"))
    base = hull.tree.link_index("base")

    def inside(d, p):  # the base grid's signed distance at the node nearest p (base frame, m)
        g = d.grids[d.link_grid[base]]
        return float(g.values[tuple(np.round((np.asarray(p) - g.origin) / g.spacing).astype(int))])

    centre = [0.0, 0.0, 0.01]  # between the U's arms, above its floor
    assert inside(hull, centre) > 0.003 and inside(mesh, centre) < -0.003  # grids are positive inside
    assert hull.provenance["inferred"]["link_geometry"] == "hull"


def test_a_driver_stops_where_its_follower_reaches_its_limit(tmp_path):
    """FFJ1 = 2 FFJ2 (a joint equality) with both ranges [0, 1.5]: FFJ2 may only reach 0.75, so the
    imported range of FFJ2 is [0, 0.75], said in a warning; every pose inside the imported ranges
    keeps every MuJoCo joint inside its own range."""
    eq = """<equality><joint joint1="robot0:FFJ1" joint2="robot0:FFJ2" polycoef="0 2 0 0 0"/></equality>"""
    path = write(tmp_path, "h.xml", hand_xml(forearm=False, tendons=eq))
    p = parse_mjcf(path)
    t = p.tree
    assert "robot0:FFJ1" not in t.actuated_joints
    j = t.actuated_joints.index("robot0:FFJ2")
    assert (t.lower[j], t.upper[j]) == pytest.approx((0.0, 0.75))
    assert any("robot0:FFJ2 [0, 1.5] -> [0, 0.75] (follower robot0:FFJ1)" in w for w in p.warnings), p.warnings
    m = mujoco.MjModel.from_xml_path(str(path))
    for q in (t.lower, t.upper, (t.lower + t.upper) / 2):
        full = t.joint_values(q)
        for l in range(t.num_links):
            if t.q_index[l] >= 0:
                lo, hi = m.jnt_range[m.joint(t.joint_names[l]).id]
                assert lo - 1e-9 <= full[l] <= hi + 1e-9, t.joint_names[l]
    # the other fingers, uncoupled, keep their full range
    k = t.actuated_joints.index("robot0:MFJ2")
    assert (t.lower[k], t.upper[k]) == pytest.approx((0.0, 1.5))


def test_unused_fingers_curl_the_way_they_close(tmp_path, hands_dir):
    """A hand whose fingers close toward their LOWER limits (axes reversed, ranges [-1.5, 0]): the
    fingers a grasp type leaves out curl toward the lower limits at initialisation, not away."""
    import torch

    from graspforge.config import InitConfig
    from graspforge.hands.model import HandModel
    from graspforge.optimize.init import initial_joints

    text = hand_xml(forearm=False).replace('range="0 1.5"', 'range="-1.5 0"')
    text = text.replace('axis="1 0 0"', 'axis="TMP"').replace('axis="-1 0 0"', 'axis="1 0 0"').replace('axis="TMP"', 'axis="-1 0 0"')
    desc, _ = import_hand(write(tmp_path, "lower.xml", text), name="lower_hand")
    curled = [g for g in desc.grasp_types.values() if g.curl_joints]
    assert curled, {k: g.links for k, g in desc.grasp_types.items()}
    hand = HandModel(desc)
    cfg = InitConfig()
    for g in curled:
        assert g.curl_signs == [-1] * len(g.curl_joints)
        q = initial_joints(hand, g.curl_joints, cfg, torch.full((4, desc.dof), 0.5), g.curl_signs)
        idx = [desc.joint_names.index(j) for j in g.curl_joints]
        want = hand.canonical_q[idx] + cfg.curl * (hand.lower[idx] - hand.canonical_q[idx])
        assert torch.allclose(q[:, idx], want.expand(4, -1)) and torch.all(want < hand.canonical_q[idx] - 0.1)


def test_a_coupling_that_contradicts_the_follower_range_keeps_the_driver_moving(tmp_path):
    """FFJ1 = -FFJ2 with both ranges [0, 1.5] leaves FFJ2 the single value 0: the driver's range is
    kept (a frozen finger is worse than a follower past its limit) and a warning says why."""
    eq = """<equality><joint joint1="robot0:FFJ1" joint2="robot0:FFJ2" polycoef="0 -1 0 0 0"/></equality>"""
    p = parse_mjcf(write(tmp_path, "h.xml", hand_xml(forearm=False, tendons=eq)))
    j = p.tree.actuated_joints.index("robot0:FFJ2")
    assert (p.tree.lower[j], p.tree.upper[j]) == pytest.approx((0.0, 1.5))
    assert any("'robot0:FFJ1' leaves its range for every value of its driver 'robot0:FFJ2' (all, or all but one)" in w for w in p.warnings), p.warnings


def test_urdf_mimic_joint_limits_narrow_their_driver(tmp_path):
    """URDF side: b mimics a with multiplier 2, both limited to [0, 1]: a may only reach 0.5."""
    urdf = """<robot name="mimic_hand">
  <link name="base"><collision><geometry><box size="0.05 0.05 0.01"/></geometry></collision></link>
  <link name="a"><collision><geometry><box size="0.01 0.01 0.04"/></geometry></collision></link>
  <link name="b"><collision><geometry><box size="0.01 0.01 0.03"/></geometry></collision></link>
  <joint name="ja" type="revolute"><parent link="base"/><child link="a"/><origin xyz="0 0 0.01"/><axis xyz="0 1 0"/>
    <limit lower="0" upper="1" effort="1" velocity="1"/></joint>
  <joint name="jb" type="revolute"><parent link="a"/><child link="b"/><origin xyz="0 0 0.04"/><axis xyz="0 1 0"/>
    <limit lower="0" upper="1" effort="1" velocity="1"/><mimic joint="ja" multiplier="2" offset="0"/></joint>
</robot>"""
    from graspforge.hands.urdf import parse_urdf

    p = parse_urdf(write(tmp_path, "m.urdf", urdf))
    assert p.tree.actuated_joints == ["ja"] and (p.tree.lower[0], p.tree.upper[0]) == pytest.approx((0.0, 0.5))
    assert any("ja [0, 1] -> [0, 0.5] (follower jb)" in w for w in p.warnings), p.warnings


# -- the thumb in the open pose --------------------------------------------------------------------

def thumb_base_hand_xml() -> str:
    """Two fingers (+y, curling to +z) and a thumb lying in the palm plane (-y) that also curls to
    +z - alongside the fingers - until its base joint THJ3, about its own length, turns its
    flexion axis (0: alongside; pi/2: across the palm)."""
    fingers = finger("", "ff", -0.02, 0.04, 1) + finger("", "mf", 0.02, 0.04, 1)
    thumb = f"""
      <body name="thbase" pos="0 -0.04 0">
        <joint name="THJ3" axis="0 1 0" range="0 1.5"/>
        <geom type="sphere" size="0.008"/>{finger("", "th", 0.0, -0.005, -1)}
      </body>"""
    return f"""<mujoco model="thumb_base_hand"><compiler angle="radian"/>
  <worldbody><body name="palm"><geom type="box" size="0.04 0.04 0.01"/>{fingers}{thumb}
  </body></worldbody>
</mujoco>
"""


def structure_stage(path, opt=None):
    """(tree, HandStructure) of an MJCF file: the build's first stages, facts off."""
    from graspforge.hands import description as D

    parsed = parse_mjcf(path)
    opt = opt or BuildOptions(use_known_facts=False)
    tree = D.stage_couplings(parsed, {}, opt)
    _, meshes = D.stage_link_meshes(parsed, tree, opt, [])
    return tree, D.stage_structure(parsed, tree, meshes, {}, opt, [])


def test_a_thumb_folding_alongside_the_fingers_is_swung_into_opposition(tmp_path, hands_dir, capsys):
    from graspforge.hands import structure

    path = write(tmp_path, "thumb.xml", thumb_base_hand_xml())
    desc, _ = import_hand(path, name="thumb_hand")
    j = desc.joint_names.index("THJ3")
    inferred = desc.provenance["inferred"]
    assert inferred["thumb"] == "thdistal" and inferred["thumb_opposed_by"] == "THJ3"
    tree, s = structure_stage(path)
    assert s.canonical[j] == pytest.approx(desc.canonical_q[j])

    def opposition(v):
        q = s.canonical.copy()
        q[j] = v
        return structure.thumb_opposition(tree, q, s.closing, s.fingers, s.centres)

    # at 0 the thumb curls alongside the fingers (-1); the chosen value is where it curls across
    # them, as near 0 as a fine scan of the range finds
    assert opposition(0.0) < -0.7
    scan = min(abs(opposition(v)) for v in np.linspace(0, 1.5, 301))
    assert abs(opposition(desc.canonical_q[j])) <= scan + 0.02 and abs(opposition(desc.canonical_q[j])) < 0.05
    assert 0.5 < desc.canonical_q[j] < 1.5
    # --open settles it; a value outside the range is refused
    assert main(["hands", "import", str(path), "--name", "thumb_open", "--open", "THJ3=0.3"]) == 0
    d2 = load_hand_description("thumb_open")
    assert d2.canonical_q[j] == pytest.approx(0.3) and d2.provenance["inferred"]["thumb_opposed_by"] is None
    assert main(["hands", "import", str(path), "--name", "thumb_bad", "--open", "THJ3=2"]) == 1
    assert main(["hands", "import", str(path), "--name", "thumb_bad", "--open", "THJ3=wide"]) == 1
    err = capsys.readouterr().err
    assert "outside the joint's range" in err and "expected JOINT=VALUE" in err


def test_an_opposed_thumb_is_left_alone(tmp_path):
    """A thumb that already closes against the fingers (opposition > 0, as a 3-finger gripper's)
    keeps its open pose."""
    from graspforge.hands import structure

    xml = thumb_base_hand_xml().replace('<joint name="THJ3" axis="0 1 0" range="0 1.5"/>', "").replace(
        '<body name="thbase" pos="0 -0.04 0">', '<body name="thbase" pos="0 -0.04 0" euler="0 3.14159 0">')
    path = write(tmp_path, "opposed.xml", xml)
    tree, s = structure_stage(path)
    assert s.thumb_opposed is None
    assert structure.thumb_opposition(tree, s.canonical, s.closing, s.fingers, s.centres) > 0.5


def post_finger(name: str, x: float, y: float, flex_axis: str, scissor_axis: str = "") -> str:
    """A finger standing on the palm at (x, y): a 5 cm post (on a scissor joint turning about
    ``scissor_axis`` when given), then a 2 cm link flexing about ``flex_axis``."""
    scissor = f'<joint name="{name}_scissor" axis="{scissor_axis}" range="0 0.4"/>' if scissor_axis else ""
    return f"""
      <body name="{name}_post" pos="{x} {y} 0.01">{scissor}
        <geom type="capsule" fromto="0 0 0 0 0 0.05" size="0.006"/>
        <body name="{name}_tip" pos="0 0 0.05">
          <joint name="{name}_flex" axis="{flex_axis}" range="0 1.5"/>
          <geom type="capsule" fromto="0 0 0 0 0 0.02" size="0.006"/>
        </body>
      </body>"""


def three_finger_xml(fingers: str) -> str:
    return f"""<mujoco model="three_finger"><compiler angle="radian"/>
  <worldbody><body name="palm"><geom type="box" size="0.05 0.05 0.01"/>{fingers}
  </body></worldbody>
</mujoco>
"""


def test_scissor_joints_do_not_make_a_thumb(tmp_path, hands_dir):
    """A Robotiq-3-finger-like gripper: fingers a and b (+y side, each on a scissor joint turning it
    towards the other) close against the lone middle finger. Scissor motion at the end of a long post
    outruns flexion, so scoring whole closing velocities made finger a the thumb; only flexion counts."""
    from graspforge.hands import structure

    fingers = (post_finger("a", -0.03, 0.03, "1 0 0", "0 1 0") + post_finger("b", 0.03, 0.03, "1 0 0", "0 -1 0")
               + post_finger("middle", 0.0, -0.03, "-1 0 0"))
    path = write(tmp_path, "scissor.xml", three_finger_xml(fingers))
    tree, s = structure_stage(path)
    names = tree.link_names
    assert [names[f.tip] for f in s.fingers if f.thumb] == ["middle_tip"]
    # whole closing velocities (scissors included) would have picked finger a
    tips = np.array([f.tip for f in s.fingers])
    v = structure.closing_velocity(tree, s.canonical, s.closing, tips, s.centres[tips])
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    whole = [float(u[i] @ np.delete(u, i, 0).mean(0)) for i in range(3)]
    assert names[tips[int(np.argmin(whole))]] == "a_tip"
    score = dict(zip((names[t] for t in tips), structure.thumb_scores(tree, s.canonical, s.closing, s.fingers, s.centres)))
    # (the open pose's slight curl tilts the tips a little off straight)
    assert score["middle_tip"] < -0.85 and min(score["a_tip"], score["b_tip"]) > -0.1
    desc, _ = import_hand(path, name="scissor_gripper")
    assert desc.provenance["inferred"]["thumb"] == "middle_tip"
    assert not any("--thumb" in w for w in desc.warnings)


def test_a_thumb_guessed_among_equals_is_a_warning_naming_the_flag(tmp_path, hands_dir):
    """Three identical fingers at 120 deg, each closing towards the centre: no finger is the thumb more
    than another, so the guess is reported with --thumb, which settles it."""
    fingers = ""
    for k, name in enumerate(("a", "b", "c")):
        t = 2 * np.pi * k / 3
        fingers += post_finger(name, round(0.03 * np.cos(t), 6), round(0.03 * np.sin(t), 6), f"{np.sin(t):.6f} {-np.cos(t):.6f} 0")
    path = write(tmp_path, "three.xml", three_finger_xml(fingers))
    desc, _ = import_hand(path, name="three_equal")
    warned = [w for w in desc.warnings if "--thumb" in w]
    assert len(warned) == 1 and "opposition scores" in warned[0]
    desc2, _ = import_hand(path, name="three_named", options=BuildOptions(thumb_link="b_tip"))
    assert desc2.provenance["inferred"]["thumb"] == "b_tip"
    assert not any("--thumb" in w for w in desc2.warnings)


@pytest.mark.parametrize("hand, urdf, joint, default", [
    ("allegro", "allegro_hand.urdf", "thumb_joint_0", 1.0),
    ("shadow_hand", "shadow_hand.urdf", "robot0_THJ3", 1.2),
])
def test_thumb_opposition_reproduces_the_reference_default_poses(hand, urdf, joint, default):
    """With the recorded facts off, the rule puts the reference hands' thumb base where the
    reference's hand-chosen default pose has it (within 0.05 rad)."""
    from pathlib import Path

    from graspforge.hands import description as D
    from graspforge.hands.urdf import parse_urdf

    path = Path(__file__).resolve().parents[2] / "shared" / "assets" / "hands" / hand / urdf
    if not path.is_file():
        pytest.skip("../shared/assets/hands not present")
    parsed = parse_urdf(path)
    opt = BuildOptions(use_known_facts=False)
    tree = D.stage_couplings(parsed, {}, opt)
    _, meshes = D.stage_link_meshes(parsed, tree, opt, [])
    s = D.stage_structure(parsed, tree, meshes, {}, opt, [])
    assert s.thumb_opposed == joint
    assert s.canonical[tree.actuated_joints.index(joint)] == pytest.approx(default, abs=0.05)


def test_an_imported_hand_synthesises_with_its_own_contact_count(tmp_path, hands_dir):
    """Hands imported without a contact file default to AUTO_CANDIDATE_CONTACTS contacts per grasp
    (recorded in hand.json, written to the run's config.toml); --contacts overrides; the built-ins
    keep the paper's 12."""
    import tomllib

    from graspforge.hands.description import AUTO_CANDIDATE_CONTACTS
    from graspforge.io.grasp_set import GraspSet

    folder = tmp_path / "toy"
    desc, _ = import_hand(write(tmp_path, "toy.xml", hand_xml(forearm=False)), name="toy", out=folder)
    assert desc.contacts == AUTO_CANDIDATE_CONTACTS == 4
    assert load_hand_description(str(folder)).contacts == 4
    assert load_hand_description("allegro").contacts == 12
    # a hand.json written before it recorded the count: generated candidates still mean 4
    meta = json.loads((folder / "hand.json").read_text())
    del meta["contacts"]
    (folder / "hand.json").write_text(json.dumps(meta))
    assert HandDescription.load(folder).contacts == 4
    curated = load_hand_description("allegro")
    assert "contact_points.json" in curated.provenance["source_files_sha256"]
    curated.contacts = 5
    curated.save(tmp_path / "allegro_copy")
    meta = json.loads((tmp_path / "allegro_copy" / "hand.json").read_text())
    del meta["contacts"]
    (tmp_path / "allegro_copy" / "hand.json").write_text(json.dumps(meta))
    assert HandDescription.load(tmp_path / "allegro_copy").contacts == 12
    for extra, want in (([], 4), (["--contacts", "6"], 6)):
        out = tmp_path / f"run{want}"
        assert main(["generate", "--hand", str(folder), "--object", "sphere:radius=0.03", "--grasps", "2", "--iterations", "4",
                     "--out", str(out), "--quiet", *extra]) == 0
        assert tomllib.loads((out / "config.toml").read_text())["contacts"] == want
        gs = GraspSet.load(next(out.glob("*.npz")))
        assert gs.contact_indices.shape == (2, want)


def test_mirrored_servos_of_a_dexterous_hand_are_not_a_gripper(tmp_path, hands_dir):
    """A thumb servo commanding -1.5..0 mirrors a flexion servo's 0..1.5 by coincidence on a hand of
    six servos (gymnasium's Shadow: FFJ2 and THJ0): no gripper warning. The same pair as the
    hand's only two servos is one."""
    names = ["FFJ2", "FFJ1", "MFJ2", "MFJ1", "THJ2", "THJ1"]

    def servos(which):
        return "<actuator>" + "".join(f'<position name="a{n}" joint="robot0:{n}" kp="5" ctrlrange="{"-1.5 0" if n == "THJ2" else "0 1.5"}"/>'
                                      for n in which) + "</actuator>"

    d, _ = import_hand(write(tmp_path, "h.xml", hand_xml(forearm=False, tendons=servos(names))), "h6")
    assert not any("mirror" in w for w in d.warnings)
    d2, _ = import_hand(write(tmp_path, "h2.xml", hand_xml(forearm=False, tendons=servos(["FFJ2", "THJ2"]))), "h2")
    assert any("mirror" in w and "--couple robot0:THJ2=robot0:FFJ2:-1" in w for w in d2.warnings)


def test_mirrored_servos_name_the_couple_flag_which_makes_one_dof(tmp_path, hands_dir, capsys):
    """The toy gripper's servos command 0..0.7 and -0.7..0: the import says so and names
    --couple; with it the gripper has one DoF whose follower mirrors the driver (MuJoCo's
    kinematics of the file, at mirrored joint values, as the reference)."""
    path = write(tmp_path, "g.xml", gripper_xml())
    d, _ = import_hand(path, "g")
    assert d.dof == 2 and any("mirror" in w and "--couple right_j=left_j:-1" in w for w in d.warnings)
    assert main(["hands", "import", str(path), "--name", "g1", "--couple", "right_j=left_j:-1"]) == 0
    d1 = load_hand_description("g1")
    assert d1.dof == 1 and not any("mirror" in w for w in d1.warnings)
    assert "--couple right_j=left_j:-1:0" in d1.provenance["inferred"]["couplings_from"]
    m = mujoco.MjModel.from_xml_path(str(path))
    data = mujoco.MjData(m)
    for q in (0.0, 0.25, 0.6):
        data.qpos[:] = [q, -q]
        mujoco.mj_kinematics(m, data)
        T = d1.tree.forward_numpy(np.array([q]))
        for body in ("left", "right"):
            np.testing.assert_allclose(T[d1.tree.link_index(body), :3, 3], data.xpos[m.body(body).id] - data.xpos[m.body("base").id], atol=1e-9)
    # refused: an unknown joint, a malformed spec
    assert main(["hands", "import", str(path), "--name", "g2", "--couple", "right_j=nope:-1"]) == 1
    assert main(["hands", "import", str(path), "--name", "g3", "--couple", "right_j=left_j"]) == 1
    assert main(["hands", "import", str(path), "--name", "g4", "--couple", "right_j=left_j:0"]) == 1
    err = capsys.readouterr().err
    assert "not actuated" in err and "expected FOLLOWER=DRIVER:MULT" in err


def test_couple_narrows_the_driver_to_the_followers_range(tmp_path):
    """A follower whose own range is narrower than its driver's image stops the driver there."""
    text = gripper_xml().replace('<joint name="right_j" type="hinge" axis="0 1 0" range="-0.7 0.7"/>',
                                 '<joint name="right_j" type="hinge" axis="0 1 0" range="-0.4 0.7"/>')
    d, _ = import_hand(write(tmp_path, "g.xml", text), "g", out=tmp_path / "g",
                       options=BuildOptions(couplings={"right_j": ("left_j", -1.0, 0.0)}))
    assert d.dof == 1
    np.testing.assert_allclose([d.tree.lower[0], d.tree.upper[0]], [-0.7, 0.4])
    assert any("--couple: driver ranges narrowed" in w for w in d.warnings)
