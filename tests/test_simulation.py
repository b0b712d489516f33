"""MuJoCo grasp execution: a parallel gripper clamping a box holds, opened it does not, a deep
start is rejected, a free object obeys F = m a; scenes for built-in hands and decomposed objects."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import HANDS_DIR, need_shared
from graspforge.config import PhysicsConfig, physics_protocol
from graspforge.evaluate.scene import build_scene
from graspforge.evaluate.simulate import ERROR, HELD, PENETRATION, SLIPPED, GraspInputs, GraspSimulator, simulate_grasps
from graspforge.hands import load_hand_description
from graspforge.hands.meshes import link_collision_meshes
from graspforge.objects import collision_pieces, load_object

IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def panda_box():
    """Panda gripper, 4 cm cube between its finger pads, and the finger opening at first touch."""
    desc = load_hand_description(need_shared(HANDS_DIR / "panda"))
    box = load_object("box:extents=0.04")
    pieces, origin = collision_pieces(box)
    sim = GraspSimulator(build_scene(desc, link_collision_meshes(desc), pieces, PhysicsConfig(), "box", origin), PhysicsConfig())
    fingers = [i for i, l in enumerate(desc.contact_links) if "finger" in desc.tree.link_names[l]]
    T = desc.tree.forward_numpy(np.array([0.04]))
    pts = np.array([T[desc.contact_links[i]][:3, :3] @ desc.contact_points[i] + T[desc.contact_links[i]][:3, 3] for i in fingers])
    root = -pts.mean(0)  # the box centre (object origin) sits between the pads
    # first touch: close the open fingers until MuJoCo reports a hand-box contact
    import mujoco

    m, d, sc = sim.model, sim.data, sim.scene
    touch = None
    for q in np.arange(0.04, 0.0, -0.0005):
        mujoco.mj_resetData(m, d)
        d.qpos[sc.object_qadr:sc.object_qadr + 3] = -root
        d.qpos[sc.object_qadr + 3:sc.object_qadr + 7] = IDENTITY
        d.qpos[sc.joint_qadr] = sc.hand_qpos(np.array([q]))
        mujoco.mj_forward(m, d)
        if sim._depths()[0] > 0:
            touch = q
            break
    assert touch is not None and 0.005 < touch < 0.035
    return desc, box, pieces, origin, root, touch


def _grasp(root, pre, q, sq):
    return GraspInputs(root[None], IDENTITY[None], np.array([[pre]]), np.array([[q]]), np.array([[sq]]))


def test_parallel_gripper_clamping_a_box_holds(panda_box):
    desc, box, pieces, origin, root, touch = panda_box
    physics = physics_protocol("strict")
    scene = build_scene(desc, link_collision_meshes(desc), pieces, physics, "box", origin)
    r = simulate_grasps(scene, physics, _grasp(root, touch + 0.01, touch, touch - 0.005))[0]
    assert r["success"] and r["reason"] == HELD
    np.testing.assert_array_equal(r["held"], np.ones(6))
    assert r["max_translation"] < 0.01 and r["max_rotation_deg"] < 5
    # the coupled finger followed its driver through the equality constraint
    sim = GraspSimulator(scene, physics)
    sim.run(root, IDENTITY, touch + 0.01, touch, touch - 0.005)
    q = sim.data.qpos[scene.joint_qadr]
    assert abs(q[0] - q[1]) < 1e-3
    # the reference protocol holds it too
    ref = physics_protocol("reference")
    scene_ref = build_scene(desc, link_collision_meshes(desc), pieces, ref, "box", origin)
    assert simulate_grasps(scene_ref, ref, _grasp(root, touch + 0.01, touch, touch - 0.005))[0]["success"]


def test_opened_gripper_drops_the_box(panda_box):
    desc, box, pieces, origin, root, touch = panda_box
    physics = physics_protocol("strict")
    scene = build_scene(desc, link_collision_meshes(desc), pieces, physics, "box", origin)
    r = simulate_grasps(scene, physics, _grasp(root, 0.04, 0.04, 0.04))[0]
    assert not r["success"] and r["reason"] == SLIPPED
    assert r["held"][0] == 0.0 and r["max_translation"] > physics.max_translation
    assert r["initial_penetration"] == 0.0


def test_deep_start_is_rejected(panda_box):
    desc, box, pieces, origin, root, touch = panda_box
    physics = physics_protocol("strict")
    sim = GraspSimulator(build_scene(desc, link_collision_meshes(desc), pieces, physics, "box", origin), physics)
    seen = {}
    for dz in np.arange(0.0, 0.08, 0.002):  # push the hand along its approach axis into the box
        r = sim.run(root + np.array([0, 0, dz]), IDENTITY, touch + 0.01, touch, touch - 0.005)
        pen = r["initial_penetration"]
        if 0.003 < pen < 0.008:
            seen["shallow"] = r
        if pen >= 0.02:
            seen["deep"] = r
            break
    assert seen["deep"]["reason"] == PENETRATION and not seen["deep"]["success"]
    assert np.isnan(seen["deep"]["held"]).all()  # nothing simulated
    assert seen["shallow"]["reason"] != PENETRATION  # the 1 cm gate, not any contact, rejects


def test_free_object_follows_newton(panda_box):
    desc, box, pieces, origin, root, touch = panda_box
    # hand far away: a 1 N pull on the 0.1 kg box for 0.2 s moves it 0.5 a t^2 = 0.2 m
    physics = PhysicsConfig(phases=["+y"], pull_seconds=0.2, max_translation=10.0, max_rotation_deg=360.0, grasp_seconds=0.0, squeeze_seconds=0.0)
    sim = GraspSimulator(build_scene(desc, link_collision_meshes(desc), pieces, physics, "box", origin), physics)
    far = np.array([0.5, 0.5, 0.5])
    r = sim.run(far, IDENTITY, 0.04, 0.04, 0.04)
    assert r["max_translation"] == pytest.approx(0.5 * (1.0 / 0.1) * 0.2 ** 2, rel=0.03)
    assert r["max_rotation_deg"] < 0.1
    still = PhysicsConfig(**{**physics.__dict__, "force": 0.0})
    sim0 = GraspSimulator(build_scene(desc, link_collision_meshes(desc), pieces, still, "box", origin), still)
    assert sim0.run(far, IDENTITY, 0.04, 0.04, 0.04)["max_translation"] < 1e-9


def test_broken_grasp_is_an_error_not_a_crash(panda_box):
    desc, box, pieces, origin, root, touch = panda_box
    physics = physics_protocol("strict")
    scene = build_scene(desc, link_collision_meshes(desc), pieces, physics, "box", origin)
    g = GraspInputs(np.stack([root, root]), np.stack([IDENTITY, IDENTITY]), np.array([[touch + 0.01], [np.nan]]),
                    np.array([[touch], [np.nan]]), np.array([[touch - 0.005], [np.nan]]))
    res = simulate_grasps(scene, physics, g)
    assert res[0]["success"]
    assert res[1]["reason"] == ERROR and not res[1]["success"] and "error" in res[1]


def test_process_pool_matches_serial(panda_box):
    desc, box, pieces, origin, root, touch = panda_box
    physics = physics_protocol("strict")
    scene = build_scene(desc, link_collision_meshes(desc), pieces, physics, "box", origin)
    qs = np.array([touch, 0.04, touch, 0.04])
    g = GraspInputs(np.tile(root, (4, 1)), np.tile(IDENTITY, (4, 1)), np.minimum(qs + 0.01, 0.04)[:, None], qs[:, None], (qs - 0.005)[:, None])
    serial = simulate_grasps(scene, physics, g, workers=1)
    pooled = simulate_grasps(scene, physics, g, workers=2, chunk=1)
    assert [r["success"] for r in serial] == [r["success"] for r in pooled] == [True, False, True, False]
    np.testing.assert_allclose([r["max_translation"] for r in serial], [r["max_translation"] for r in pooled])


def test_builtin_hand_scene_matches_source_geometry():
    """The built-in Allegro has no meshes: its grid hulls must match the source meshes' hulls."""
    import trimesh

    builtin = load_hand_description("allegro")
    src = load_hand_description(need_shared(HANDS_DIR / "allegro"))
    a, b = link_collision_meshes(builtin), link_collision_meshes(src)
    assert a.origin == "grid" and b.origin == "source"
    assert set(a.parts) == set(b.parts)
    for name in a.parts:
        va = trimesh.convex.convex_hull(np.concatenate([v for v, _ in a.parts[name]])).volume
        vb = trimesh.convex.convex_hull(np.concatenate([v for v, _ in b.parts[name]])).volume
        assert va == pytest.approx(vb, rel=0.12), name
    scene = build_scene(builtin, a, collision_pieces(load_object("sphere:radius=0.03"))[0], PhysicsConfig())
    assert scene.model.nu == 16 and scene.hand_geometry == "grid"
    # pairs touching in the open pose are excluded; fingers may still collide with each other
    assert all("palm" in p[0] or "palm" in p[1] or "link_0" in p[0] + p[1] for p in scene.excluded_pairs)


def test_coacd_decomposes_a_concave_object():
    mug = load_object("mug")
    pieces, origin = collision_pieces(mug)
    assert origin == "coacd" and 2 <= len(pieces) <= 32
    vol = sum(float(__import__("trimesh").convex.convex_hull(v).volume) for v, _ in pieces)
    assert vol == pytest.approx(mug.volume, rel=0.35)  # pieces overlap a little and round the walls
    again, _ = collision_pieces(mug)  # cached by content hash
    assert len(again) == len(pieces) and all(np.array_equal(x[0], y[0]) for x, y in zip(pieces, again))
    sphere_pieces, how = collision_pieces(load_object("sphere:radius=0.03"))
    assert how == "convex" and len(sphere_pieces) == 1


def test_crossed_fingers_are_not_a_grasp():
    """Allegro index and middle fingers swung through each other: MuJoCo sees the overlap and the
    grasp is rejected before anything is simulated, whatever the object does."""
    desc = load_hand_description("allegro")
    physics = physics_protocol("strict")
    scene = build_scene(desc, link_collision_meshes(desc), collision_pieces(load_object("sphere:radius=0.03"))[0], physics)
    sim = GraspSimulator(scene, physics)
    names = desc.joint_names
    q = desc.canonical_q.copy()
    far = np.array([0.0, 0.0, -0.5])  # the object is nowhere near
    open_r = sim.run(far, IDENTITY, q, q, q)
    assert open_r["initial_self_penetration"] < 0.001
    q[names.index("index_joint_0")] = desc.tree.lower[names.index("index_joint_0")]  # index finger sideways...
    q[names.index("middle_joint_0")] = desc.tree.upper[names.index("middle_joint_0")]  # ... middle finger towards it
    for j in ("index_joint_1", "index_joint_2", "index_joint_3", "middle_joint_1", "middle_joint_2", "middle_joint_3"):
        q[names.index(j)] = 0.8  # both curled: they cross
    crossed = sim.run(far, IDENTITY, q, q, q)
    assert crossed["initial_self_penetration"] > physics.max_initial_penetration
    assert crossed["reason"] == PENETRATION and not crossed["success"]


def test_shipped_pieces_in_either_unit_and_foreign_pieces(tmp_path):
    import trimesh

    folder = tmp_path / "thing"
    (folder / "collisions").mkdir(parents=True)
    trimesh.creation.box(extents=(40.0, 60.0, 80.0)).export(folder / "thing.obj")  # millimetres
    trimesh.creation.box(extents=(40.0, 60.0, 80.0)).export(folder / "collisions" / "thing_col_0.obj")
    obj = load_object(folder, scale=0.001)
    pieces, how = collision_pieces(obj)
    assert how == "shipped" and np.allclose(np.ptp(pieces[0][0], 0), [0.04, 0.06, 0.08])
    trimesh.creation.box(extents=(0.04, 0.06, 0.08)).export(folder / "collisions" / "thing_col_0.obj")  # metres
    pieces, how = collision_pieces(load_object(folder, scale=0.001))
    assert how == "shipped" and np.allclose(np.ptp(pieces[0][0], 0), [0.04, 0.06, 0.08])
    trimesh.creation.box(extents=(0.4, 0.6, 0.8)).export(folder / "collisions" / "thing_col_0.obj")  # belongs elsewhere
    with pytest.warns(UserWarning, match="do not belong"):
        pieces, how = collision_pieces(load_object(folder, scale=0.001))
    assert how == "convex" and np.allclose(np.ptp(pieces[0][0], 0), [0.04, 0.06, 0.08])


def test_dexgraspbench_protocol_builds_its_constants(panda_box):
    """The ``dexgraspbench`` protocol's scene carries DexGraspBench's constants: a hand root welded to a
    mocap body, its hand contact solref/solimp, undamped kp servos, joint damping, no armature; the
    clamped box still holds, and the servo targets move in 10 jumps per ramp."""
    import mujoco

    desc, box, pieces, origin, root, touch = panda_box
    physics = physics_protocol("dexgraspbench").validate()
    scene = build_scene(desc, link_collision_meshes(desc), pieces, physics, "box", origin)
    m = scene.model
    assert m.nmocap == 1 and [int(t) for t in m.eq_type].count(int(mujoco.mjtEq.mjEQ_WELD)) == 1
    hand_geoms = np.flatnonzero(scene.hand_body_mask[m.geom_bodyid])
    np.testing.assert_allclose(m.geom_solref[hand_geoms], [[0.005, 1.0]] * len(hand_geoms))
    np.testing.assert_allclose(m.geom_solimp[hand_geoms][:, :3], [[0.5, 0.99, 0.0001]] * len(hand_geoms))
    hinge_or_slide = [j for j in range(m.njnt) if int(m.jnt_type[j]) != int(mujoco.mjtJoint.mjJNT_FREE)]
    assert np.all(m.dof_armature[m.jnt_dofadr[hinge_or_slide]] == 0)
    assert np.allclose(m.dof_damping[m.jnt_dofadr[hinge_or_slide]], 0.1)
    assert np.all(m.actuator_biasprm[:, 2] == 0)  # no velocity term: kp alone, as DexGraspBench's <position kp=5>
    sim = GraspSimulator(scene, physics)
    seen = []
    orig = mujoco.mj_step

    def spy(model, data, *a):
        seen.append(float(data.ctrl[0]))
        return orig(model, data, *a)

    mujoco.mj_step = spy
    try:
        sim._ramp(np.array([0.04]), np.array([0.02]), physics.grasp_seconds)
    finally:
        mujoco.mj_step = orig
    assert len(seen) == 100 and len(set(np.round(seen, 12))) == 10  # 10 targets, each held 10 steps
    r = simulate_grasps(scene, physics, _grasp(root, touch + 0.01, touch, touch - 0.005))[0]
    assert r["success"] and r["reason"] == HELD
    with pytest.raises(Exception):
        PhysicsConfig(root="floating").validate()


def test_a_root_that_moves_between_targets_follows_its_stage_poses(panda_box):
    """Per-target root poses (a model without the wrist, DexGraspBench's Shadow): with all three equal
    the run is the plain one, bit for bit; with the pre-grasp 3 cm back along the approach, the welded
    root's mocap brings the hand in, the box is held and the root ends at the squeeze pose; a fixed
    root refuses them."""
    import mujoco

    desc, box, pieces, origin, root, touch = panda_box
    physics = physics_protocol("dexgraspbench").validate()
    scene = build_scene(desc, link_collision_meshes(desc), pieces, physics, "box", origin)
    assert scene.root_free_qadr >= 0
    sim = GraspSimulator(scene, physics)
    args = (root, IDENTITY, np.array([touch + 0.01]), np.array([touch]), np.array([touch - 0.005]))
    plain = sim.run(*args)
    same = sim.run(*args, stage_roots=np.tile(np.concatenate([root, IDENTITY]), (3, 1)))
    for k in plain:
        np.testing.assert_array_equal(same[k], plain[k], err_msg=k)
    back = root * (1 + 0.03 / np.linalg.norm(root))  # 3 cm farther from the box, fingers open
    stages = np.stack([np.concatenate([back, IDENTITY]), np.concatenate([root, IDENTITY]), np.concatenate([root, IDENTITY])])
    r = sim.run(*args, stage_roots=stages)
    assert r["success"] and r["initial_penetration"] == 0.0
    # the world is the pre-grasp root's frame: the root body ends 3 cm along (root - back), within the weld's give
    hand_root = scene.model.body(desc.tree.link_names[0]).id
    np.testing.assert_allclose(sim.data.xpos[hand_root], root - back, atol=2e-3)
    # without the move, the same pre-grasp pose would close the gripper 3 cm short of the box
    assert not sim.run(back, *args[1:])["success"]
    fixed = physics_protocol("strict")
    with pytest.raises(ValueError, match="welded hand root"):
        GraspSimulator(build_scene(desc, link_collision_meshes(desc), pieces, fixed, "box", origin), fixed).run(*args, stage_roots=stages)
    assert mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_BODY, "hand_root_mocap") >= 0


TENDON_HAND_MJCF = """<mujoco model="tendon_hand">
  <compiler angle="radian"/>
  <default>
    <joint damping="0.07" armature="0.0003" frictionloss="0.01"/>
    <position kp="4" forcerange="-2 2"/>
  </default>
  <worldbody>
    <body name="palm">
      <geom type="box" size="0.04 0.04 0.01"/>
      <body name="a1" pos="0.02 0 0.01">
        <inertial pos="0 0 0.02" mass="0.031" diaginertia="2e-5 2e-5 1e-5"/>
        <joint name="a1" axis="0 1 0" range="0 1.2"/>
        <geom type="capsule" size="0.008 0.015" pos="0 0 0.02"/>
        <body name="a2" pos="0 0 0.045">
          <inertial pos="0 0 0.015" mass="0.017" diaginertia="1e-5 1e-5 5e-6"/>
          <joint name="a2" axis="0 1 0" range="0 1.2"/>
          <geom type="capsule" size="0.008 0.012" pos="0 0 0.015"/>
        </body>
      </body>
      <body name="b1" pos="-0.02 0 0.01">
        <inertial pos="0 0 0.02" mass="0.029" diaginertia="2e-5 2e-5 1e-5"/>
        <joint name="b1" axis="0 -1 0" range="0 1.2"/>
        <geom type="capsule" size="0.008 0.02" pos="0 0 0.025"/>
      </body>
    </body>
  </worldbody>
  <contact><exclude body1="a2" body2="b1"/></contact>
  <tendon><fixed name="a_sum"><joint joint="a1" coef="1"/><joint joint="a2" coef="1"/></fixed></tendon>
  <actuator>
    <position name="A" tendon="a_sum" ctrlrange="0 2.4"/>
    <position name="B" joint="b1" ctrlrange="0 1.2"/>
  </actuator>
</mujoco>
"""


def test_source_dynamics_keep_the_mjcf_actuators_tendons_and_inertials(tmp_path):
    """hand_dynamics "source": an MJCF hand is simulated with its own joint dynamics, inertials,
    exclusions and actuators; a tendon actuator drives the sum of its joints (underactuated), as in
    the file, where "protocol" puts a servo on every joint."""
    import mujoco

    xml = tmp_path / "tendon_hand.xml"
    xml.write_text(TENDON_HAND_MJCF)
    desc = load_hand_description(xml)
    ref = mujoco.MjModel.from_xml_path(str(xml))
    box = load_object("box:extents=0.03")
    pieces, origin = collision_pieces(box)
    source = PhysicsConfig(hand_dynamics="source")
    scene = build_scene(desc, link_collision_meshes(desc), pieces, source, "box", origin)
    m = scene.model
    assert m.nu == 2 and m.ntendon == 1 and scene.hand_dynamics == "source"
    for j in ("a1", "a2", "b1"):
        dof_ours, dof_ref = m.jnt_dofadr[m.joint(j).id], ref.jnt_dofadr[ref.joint(j).id]
        assert m.dof_armature[dof_ours] == pytest.approx(0.0003) and m.dof_frictionloss[dof_ours] == pytest.approx(0.01)
        assert np.ravel(m.dof_damping)[dof_ours] == pytest.approx(np.ravel(ref.dof_damping)[dof_ref])
    for b in ("a1", "a2", "b1"):
        assert m.body_mass[m.body(b).id] == pytest.approx(ref.body_mass[ref.body(b).id])
    np.testing.assert_allclose(m.actuator_gainprm[:, 0], 4.0)
    np.testing.assert_allclose(m.actuator_forcerange, [[-2, 2], [-2, 2]])
    # servo targets: the tendon's is a1 + a2 (DexGraspBench's qpos -> ctrl through actuator_moment)
    q = {"a1": 0.3, "a2": 0.5, "b1": 0.7}
    qv = np.array([q[n] for n in desc.joint_names])
    np.testing.assert_allclose(scene.hand_ctrl(qv), [0.8, 0.7], atol=1e-12)
    # the file's exclusion is kept
    assert any({m.body(int(s >> 16)).name, m.body(int(s & 0xFFFF)).name} == {"a2", "b1"} for s in m.exclude_signature)
    # driven without an object: the tendon servo brings the SUM to its target, the split is free
    data = mujoco.MjData(m)
    data.qpos[scene.object_qadr:scene.object_qadr + 3] = [1.0, 1.0, 1.0]
    data.ctrl[:] = scene.hand_ctrl(qv)
    for _ in range(1500):
        mujoco.mj_step(m, data)
    val = {n: data.qpos[m.jnt_qposadr[m.joint(n).id]] for n in q}
    assert val["a1"] + val["a2"] == pytest.approx(0.8, abs=0.03) and val["b1"] == pytest.approx(0.7, abs=0.03)
    # "protocol": one servo per joint, the protocol's constants
    proto = build_scene(desc, link_collision_meshes(desc), pieces, PhysicsConfig(), "box", origin)
    assert proto.model.nu == 3 and proto.model.ntendon == 0 and proto.actuator_matrix is None
    assert proto.model.dof_armature[proto.model.jnt_dofadr[proto.model.joint("a1").id]] == pytest.approx(PhysicsConfig().armature_revolute)


def test_root_slerp_matches_scipy():
    """The mocap root's rotation between two targets: scipy's Slerp (as DexGraspBench interpolates)."""
    from scipy.spatial.transform import Rotation, Slerp

    from graspforge.evaluate.simulate import _slerp

    rots = Rotation.random(6, random_state=2)
    for k in range(0, 6, 2):
        q = rots[k:k + 2].as_quat()[:, [3, 0, 1, 2]]
        ref = Slerp([0, 1], rots[k:k + 2])
        for t in (0.0, 0.1, 0.5, 0.9, 1.0):
            ours = _slerp(q[0], -q[1] if k == 2 else q[1], t)  # either sign of a quaternion is the same rotation
            want = ref([t]).as_quat()[0, [3, 0, 1, 2]]
            assert min(np.abs(ours - want).max(), np.abs(ours + want).max()) < 1e-12
