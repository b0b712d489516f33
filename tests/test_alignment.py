"""Aligning a hand to another project's model of it (the DexGraspBench export): frame transform,
joint correspondence and signs recovered by forward kinematics, checked on an MJCF built here from
the built-in Allegro hand with a moved frame, shuffled joint order, flipped axes and anchors slid
along their axes; models of another hand are refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from graspforge.errors import HandLoadError
from graspforge.hands import load_hand_description
from graspforge.hands.alignment import align_to_mjcf


def _mjcf(desc, path, root_R, root_p, flip=(), slide=(), reverse=True, nudge=None, drop=None, start=0):
    """Write an MJCF of ``desc``'s kinematic tree below link ``start`` (the joints above it left out,
    as a model without a wrist): that link's body at (root_R, root_p) in the world,
    children added in reverse order (another joint order), axes of the joints in ``flip`` negated,
    anchors of those in ``slide`` moved 1 cm along their axis, ``nudge`` = (joint, offset) moved off
    its axis, ``drop`` a joint left out."""
    import mujoco

    tree = desc.tree
    spec = mujoco.MjSpec()
    spec.compiler.degree = False
    q = Rotation.from_matrix(root_R).as_quat()[[3, 0, 1, 2]]
    bodies = {start: spec.worldbody.add_body(name=tree.link_names[start], pos=root_p, quat=q)}
    bodies[start].add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.01, 0, 0])
    order = list(range(1, tree.num_links))
    children = {l: [c for c in order if tree.parent[c] == l] for l in range(tree.num_links)}

    def add(l):
        for c in (reversed(children[l]) if reverse else children[l]):
            T = tree.origin[c]
            qc = Rotation.from_matrix(T[:3, :3]).as_quat()[[3, 0, 1, 2]]
            b = bodies[l].add_body(name=tree.link_names[c], pos=T[:3, 3], quat=qc)
            b.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.005, 0, 0])
            j = tree.q_index[c]
            if j >= 0 and desc.joint_names[j] != drop:
                name = desc.joint_names[j]
                axis = tree.axis[c] / np.linalg.norm(tree.axis[c]) * (-1 if name in flip else 1)
                pos = 0.01 * axis if name in slide else np.zeros(3)
                if nudge and nudge[0] == name:
                    pos = pos + nudge[1]
                lo, hi = tree.lower[j], tree.upper[j]
                if name in flip:
                    lo, hi = -hi, -lo
                b.add_joint(name=f"their_{name}", type=mujoco.mjtJoint.mjJNT_HINGE, axis=axis, pos=pos, range=[lo, hi])
            bodies[c] = b
            add(c)

    add(start)
    spec.compile()
    path.write_text(spec.to_xml())
    return path


@pytest.fixture(scope="module")
def allegro():
    return load_hand_description("allegro")


def test_alignment_recovers_frame_joint_order_and_signs(allegro, tmp_path):
    R0 = Rotation.from_euler("zyx", [-90, 20, 5], degrees=True).as_matrix()
    p0 = np.array([0.03, -0.01, 0.2])
    flip = {"index_joint_1", "thumb_joint_2"}
    slide = {"middle_joint_0", "ring_joint_3"}
    path = _mjcf(allegro, tmp_path / "hand.xml", R0, p0, flip, slide)
    a = align_to_mjcf(allegro, path)
    # their frame in our root frame: p_ours = R0^T (p_theirs - p0); the MJCF text rounds numbers to
    # ~1e-7, which bounds how exactly they can be recovered
    np.testing.assert_allclose(a.rotation, R0.T, atol=1e-5)
    np.testing.assert_allclose(a.translation, -R0.T @ p0, atol=1e-6)
    assert a.error < 1e-6
    ours = [allegro.joint_names[i] for i in a.source]
    assert [f"their_{n}" for n in ours] == a.joint_names  # every joint found, whatever the order
    assert a.joint_names != [f"their_{n}" for n in allegro.joint_names]  # the order did differ
    for n, s in zip(ours, a.sign):
        assert s == (-1 if n in flip else 1), n
    # their joint vector for ours, and back to the same link positions: a pose and joints mapped
    # through the alignment put their hand where ours is
    q = allegro.tree.lower + 0.6 * (allegro.tree.upper - allegro.tree.lower)
    qt = a.joints(q)
    i = a.joint_names.index("their_index_joint_1")
    assert qt[i] == -q[allegro.joint_names.index("index_joint_1")]
    assert not a.outside_range(qt[None])[0]
    pos, quat = a.root_pose(np.array([[0.1, 0.0, -0.05]]), np.array([[1.0, 0.0, 0.0, 0.0]]))
    np.testing.assert_allclose(pos[0], [0.1, 0.0, -0.05] + a.translation, atol=1e-12)
    np.testing.assert_allclose(Rotation.from_quat(quat[0, [1, 2, 3, 0]]).as_matrix(), a.rotation, atol=1e-12)


def test_alignment_refuses_another_hand(allegro, tmp_path):
    R0, p0 = np.eye(3), np.zeros(3)
    nudged = _mjcf(allegro, tmp_path / "nudged.xml", R0, p0, nudge=("ring_joint_1", np.array([0.0, 0.012, 0.0])))
    with pytest.raises(HandLoadError, match="mm"):
        align_to_mjcf(allegro, nudged)
    fewer = _mjcf(allegro, tmp_path / "fewer.xml", R0, p0, drop="thumb_joint_3")
    with pytest.raises(HandLoadError, match="15 hinge/slide joints"):
        align_to_mjcf(allegro, fewer)
    with pytest.raises(HandLoadError, match="not found"):
        align_to_mjcf(allegro, tmp_path / "missing.xml")
    (tmp_path / "broken.xml").write_text("<mujoco><worldbody><body")
    with pytest.raises(HandLoadError, match="MuJoCo"):
        align_to_mjcf(allegro, tmp_path / "broken.xml")


def test_alignment_folds_joints_their_model_lacks_into_the_root_pose(tmp_path):
    """The Shadow hand without its two wrist joints (DexGraspBench's model): their frame is our palm;
    the root pose of each target carries the wrist, and their model then puts every link where ours is."""
    import mujoco

    shadow = load_hand_description("shadow_hand")
    tree = shadow.tree
    palm = tree.link_names.index("robot0_palm")
    R0 = Rotation.from_euler("zyx", [30, -10, 80], degrees=True).as_matrix()
    p0 = np.array([-0.02, 0.05, 0.1])
    path = _mjcf(shadow, tmp_path / "no_wrist.xml", R0, p0, flip={"robot0_THJ1"}, start=palm)
    a = align_to_mjcf(shadow, path)
    assert a.frame_link == palm and a.frame_name == "robot0_palm"
    assert len(a.joint_names) == shadow.dof - 2 and a.error < 1e-5
    assert not {"robot0_WRJ1", "robot0_WRJ0"} & {shadow.joint_names[i] for i in a.source}
    # a grasp with the wrist bent, placed somewhere: their model at the exported pose and joints
    rng = np.random.default_rng(0)
    q = tree.lower + rng.random((3, shadow.dof)) * (tree.upper - tree.lower)
    pos = rng.normal(size=(3, 3)) * 0.1
    quat = Rotation.random(3, random_state=1).as_quat()[:, [3, 0, 1, 2]]
    with pytest.raises(ValueError, match="give the joints"):
        a.root_pose(pos, quat)
    tpos, tquat = a.root_pose(pos, quat, q)
    model = mujoco.MjModel.from_xml_path(str(path))
    data = mujoco.MjData(model)
    names = [model.joint(j).name for j in range(model.njnt)]
    for i in range(3):
        qt = a.joints(q[i])
        data.qpos[:] = [qt[a.joint_names.index(n)] for n in names]
        mujoco.mj_kinematics(model, data)
        Rw = Rotation.from_quat(tquat[i, [1, 2, 3, 0]]).as_matrix()
        R_ours = Rotation.from_quat(quat[i, [1, 2, 3, 0]]).as_matrix()
        T = tree.forward_numpy(q[i])
        # their model's world is their frame: body b at Rw (x_b - p0') ... mapped through their root pose
        base = model.body(tree.link_names[palm]).id
        for link in ("robot0_ffdistal", "robot0_thdistal", "robot0_lfdistal"):
            b = model.body(link).id
            theirs = tpos[i] + Rw @ data.xpos[b]
            ours = pos[i] + R_ours @ T[tree.link_names.index(link)][:3, 3]
            np.testing.assert_allclose(theirs, ours, atol=1e-5, err_msg=link)
        assert base == 1


def test_grasps_moved_into_the_other_model_put_every_link_where_ours_are(allegro, tmp_path):
    """``in_hand_model``: a grasp of ours, re-expressed in another model of the hand (its root body
    posed in its MJCF world, its own joint order and signs), has every body where our FK puts the
    link of that name; checked with MuJoCo's own kinematics of the file."""
    import mujoco
    import torch

    from graspforge.io.grasp_set import GraspSet
    from graspforge.io.export import in_hand_model
    from graspforge.hands.alignment import mjcf_body_pose
    from graspforge.hands.kinematics import TorchKinematics

    R0 = Rotation.from_euler("zyx", [-90, 20, 5], degrees=True).as_matrix()
    p0 = np.array([0.03, -0.01, 0.2])
    path = _mjcf(allegro, tmp_path / "hand.xml", R0, p0, flip={"index_joint_1", "thumb_joint_2"})
    a = align_to_mjcf(allegro, path)
    rng = np.random.default_rng(0)
    n, d, tree = 3, allegro.tree.dof, allegro.tree
    q = tree.lower + rng.uniform(0.1, 0.9, (n, d)) * (tree.upper - tree.lower)
    quat = Rotation.random(n, random_state=1).as_quat()[:, [3, 0, 1, 2]]
    pos = rng.normal(0, 0.1, (n, 3))
    z = np.zeros
    gs = GraspSet(hand="allegro", joint_names=allegro.joint_names, grasp_type="full", object_name="o", object_source="o",
                  object_hash="h", object_scale=1.0, root_position=pos, root_quaternion=quat, joint_positions=q,
                  pregrasp_joint_positions=q, squeeze_joint_positions=q, contact_points=z((n, 1, 3)), contact_normals=z((n, 1, 3)),
                  contact_links=np.full((n, 1), "l"), contact_indices=z((n, 1), np.int64), contact_distance=z((n, 1)), energy=z(n),
                  terms={t: z(n) for t in ("energy_dis", "energy_fc", "energy_pen", "energy_spen", "energy_joints")}, qp_value=z(n))
    root_name = allegro.tree.link_names[0]
    theirs = type("Their", (), {"name": "their_allegro", "joint_names": a.joint_names})()  # their joints, their order
    moved = in_hand_model(gs, a, theirs, mjcf_body_pose(path, root_name))
    assert moved.hand == "their_allegro" and moved.joint_names == a.joint_names
    kin = TorchKinematics(tree, dtype=torch.float64)
    from graspforge.geometry.rotations import quaternion_to_matrix
    lp = kin.forward(torch.as_tensor(pos), quaternion_to_matrix(torch.as_tensor(quat)), torch.as_tensor(q))
    model = mujoco.MjModel.from_xml_path(str(path))
    data = mujoco.MjData(model)
    for i in range(n):
        for k, name in enumerate(a.joint_names):
            data.qpos[model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)]] = moved.joint_positions[i, k]
        mujoco.mj_kinematics(model, data)
        # their root body's world pose -> the grasp's frame: p_obj = P + Q R0^T (x_world - p0)
        Q = Rotation.from_quat(moved.root_quaternion[i, [1, 2, 3, 0]]).as_matrix()
        for l, name in enumerate(tree.link_names):
            b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
            got = moved.root_position[i] + Q @ (R0.T @ (data.xpos[b] - p0))
            np.testing.assert_allclose(got, lp.pos[i, l].numpy(), atol=2e-6, err_msg=name)


def test_grasps_moved_into_a_model_without_the_wrist_carry_a_root_per_target(tmp_path):
    """``in_hand_model`` into the Shadow hand without its wrist joints: the root pose of each target
    (pre-grasp, grasp, squeeze, ``extra["stage_root_pose"]``) with that target's joints puts every
    body of their model, by MuJoCo's kinematics, where our FK puts the link at that target. (At this
    root rotation the first- and ring-finger flexion lines coincide: their joints were swapped before
    the matching broke ties by anchor distance.)"""
    import mujoco
    import torch

    from graspforge.geometry.rotations import quaternion_to_matrix
    from graspforge.hands.alignment import mjcf_body_pose
    from graspforge.hands.kinematics import TorchKinematics
    from graspforge.io.export import in_hand_model
    from graspforge.io.grasp_set import GraspSet

    shadow = load_hand_description("shadow_hand")
    tree = shadow.tree
    palm = tree.link_names.index("robot0_palm")
    R0 = Rotation.from_euler("zyx", [-40, 15, 100], degrees=True).as_matrix()
    p0 = np.array([0.01, -0.03, 0.15])
    path = _mjcf(shadow, tmp_path / "no_wrist.xml", R0, p0, flip={"robot0_FFJ3"}, start=palm)
    a = align_to_mjcf(shadow, path)
    rng = np.random.default_rng(3)
    n, d = 2, tree.dof
    stages = [tree.lower + rng.uniform(0.05, 0.95, (n, d)) * (tree.upper - tree.lower) for _ in range(3)]  # wrists differ
    quat = Rotation.random(n, random_state=4).as_quat()[:, [3, 0, 1, 2]]
    pos = rng.normal(0, 0.1, (n, 3))
    z = np.zeros
    gs = GraspSet(hand="shadow_hand", joint_names=shadow.joint_names, grasp_type="full", object_name="o", object_source="o",
                  object_hash="h", object_scale=1.0, root_position=pos, root_quaternion=quat, joint_positions=stages[1],
                  pregrasp_joint_positions=stages[0], squeeze_joint_positions=stages[2], contact_points=z((n, 1, 3)),
                  contact_normals=z((n, 1, 3)), contact_links=np.full((n, 1), "l"), contact_indices=z((n, 1), np.int64),
                  contact_distance=z((n, 1)), energy=z(n), terms={t: z(n) for t in ("energy_dis", "energy_fc", "energy_pen", "energy_spen", "energy_joints")}, qp_value=z(n))
    theirs = type("Their", (), {"name": "their_shadow", "joint_names": a.joint_names})()
    moved = in_hand_model(gs, a, theirs, mjcf_body_pose(path, "robot0_palm"))
    roots = moved.extra["stage_root_pose"]
    assert roots.shape == (n, 3, 7)
    np.testing.assert_allclose(roots[:, 1, :3], moved.root_position)
    assert np.abs(roots[:, 0, :3] - roots[:, 2, :3]).max() > 1e-3  # the wrist moved the root between targets
    kin = TorchKinematics(tree, dtype=torch.float64)
    model = mujoco.MjModel.from_xml_path(str(path))
    data = mujoco.MjData(model)
    R_root = quaternion_to_matrix(torch.as_tensor(quat))
    for s, (q_ours, q_theirs) in enumerate(zip(stages, (moved.pregrasp_joint_positions, moved.joint_positions, moved.squeeze_joint_positions))):
        lp = kin.forward(torch.as_tensor(pos), R_root, torch.as_tensor(q_ours))
        for i in range(n):
            for k, name in enumerate(a.joint_names):
                data.qpos[model.jnt_qposadr[model.joint(name).id]] = q_theirs[i, k]
            mujoco.mj_kinematics(model, data)
            Q = Rotation.from_quat(roots[i, s, [4, 5, 6, 3]]).as_matrix()
            for name in ("robot0_ffdistal", "robot0_thdistal", "robot0_lfmiddle", "robot0_palm"):
                got = roots[i, s, :3] + Q @ (R0.T @ (data.xpos[model.body(name).id] - p0))
                np.testing.assert_allclose(got, lp.pos[i, tree.link_names.index(name)].numpy(), atol=2e-6, err_msg=f"{name} stage {s}")
