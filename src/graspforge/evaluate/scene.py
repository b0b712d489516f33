"""The MuJoCo scene of one hand and one object, built with MuJoCo's model-editing API (MjSpec).

World frame = the hand's root frame: the root link is fixed at the origin and the free object is
placed at the inverse of the grasp's root pose. With gravity off (the default) this is the same
physics as a hand held in the object's frame, without the compliance of a mocap weld; pulls along
the object's mesh axes are rotated into this frame by :mod:`graspforge.evaluate.simulate`.

- Hand links are bodies with their collision parts as mesh geoms (MuJoCo collides convex hulls).
- Every actuated joint gets a position servo (critically damped, ``PhysicsConfig.kp_*``); mimic and
  coupled joints follow through joint equality constraints ``q_l = multiplier * q + offset``.
- Hand-hand contacts are on, except parent/child links (MuJoCo's own filter) and link pairs that
  already touch in the hand's open (canonical) pose.
- The object is a free body of convex pieces with mass ``PhysicsConfig.object_mass``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np
import trimesh

from ..config import PhysicsConfig
from ..errors import GraspforgeError
from ..hands.description import HandDescription
from ..hands.kinematics import REVOLUTE, driver_links
from ..hands.meshes import LinkMeshes
from ..hands.mjcf import compile_without_missing_meshes

_INTEGRATORS = {"euler": mujoco.mjtIntegrator.mjINT_EULER, "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
                "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST, "rk4": mujoco.mjtIntegrator.mjINT_RK4}
_CONES = {"elliptic": mujoco.mjtCone.mjCONE_ELLIPTIC, "pyramidal": mujoco.mjtCone.mjCONE_PYRAMIDAL}


class SceneError(GraspforgeError, ValueError):
    """A hand or object that cannot be turned into a simulation."""


@dataclass
class GraspScene:
    """A compiled hand + object model and the maps between grasp arrays and MuJoCo's state.

    ``joint_qadr`` / ``joint_q_index`` / ``joint_multiplier`` / ``joint_offset`` (J,): per hand joint,
    its qpos address and how it follows the actuated joints (``q_joint = multiplier * q[index] + offset``).
    ``actuator_q_index`` / ``actuator_multiplier`` / ``actuator_offset`` (D,): the same for each servo's target.
    """

    model: mujoco.MjModel
    joint_names: list[str]
    joint_qadr: np.ndarray
    joint_q_index: np.ndarray
    joint_multiplier: np.ndarray
    joint_offset: np.ndarray
    actuator_q_index: np.ndarray
    actuator_multiplier: np.ndarray
    actuator_offset: np.ndarray
    object_body: int
    object_qadr: int
    object_dofadr: int
    hand_body_mask: np.ndarray  # (nbody,) bool
    excluded_pairs: list[tuple[str, str]] = field(default_factory=list)
    hand_geometry: str = ""
    object_geometry: str = ""
    # (nu, J): servo targets from the hand joints' values when the actuators are the source MJCF's
    # (a tendon actuator's target is a combination of joints); None: one servo per actuated joint
    actuator_matrix: np.ndarray | None = None
    # qpos address of the hand root's free joint when the root is welded to a mocap body, else -1
    root_free_qadr: int = -1

    @property
    def hand_dynamics(self) -> str:
        """"source" when the hand runs with its MJCF's own dynamics and actuators, else "protocol"."""
        return "protocol" if self.actuator_matrix is None else "source"

    def hand_qpos(self, q: np.ndarray) -> np.ndarray:
        """(D,) actuated joints -> (J,) values of the hand's MuJoCo joints."""
        return self.joint_multiplier * np.atleast_1d(np.asarray(q, np.float64))[self.joint_q_index] + self.joint_offset

    def hand_ctrl(self, q: np.ndarray) -> np.ndarray:
        """(D,) actuated joints -> (nu,) servo targets."""
        if self.actuator_matrix is not None:
            return self.actuator_matrix @ self.hand_qpos(q)
        return self.actuator_multiplier * np.atleast_1d(np.asarray(q, np.float64))[self.actuator_q_index] + self.actuator_offset


def _mat_to_pos_quat(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(T[:3, :3]).reshape(9))
    return T[:3, 3].copy(), q


def _transform(V: np.ndarray, T: np.ndarray) -> np.ndarray:
    return np.asarray(V, np.float64) @ T[:3, :3].T + T[:3, 3]


def _add_mesh_geom(spec, body, name: str, V: np.ndarray, F: np.ndarray, physics: PhysicsConfig, density: float, rgba,
                   hand: bool = False) -> None:
    spec.add_mesh(name=name, uservert=np.asarray(V, np.float64).ravel(), userface=np.asarray(F, np.int32).ravel())
    g = body.add_geom()
    g.name = name
    g.type = mujoco.mjtGeom.mjGEOM_MESH
    g.meshname = name
    g.density = density
    g.condim = physics.condim
    g.friction = [physics.friction, physics.torsional_friction, 0.0001]
    g.rgba = rgba
    if hand and physics.hand_solref:
        g.solref = list(physics.hand_solref)
    if hand and physics.hand_solimp:
        imp = list(g.solimp)
        imp[:len(physics.hand_solimp)] = list(physics.hand_solimp)
        g.solimp = imp


def _set_damping(joint, value: float) -> None:
    """Joint damping: a number in MuJoCo 3, a vector (linear term first) in MuJoCo 4."""
    try:
        joint.damping = float(value)
    except TypeError:
        d = np.zeros(len(joint.damping))
        d[0] = value
        joint.damping = d


def source_dynamics_model(desc: HandDescription) -> mujoco.MjModel | None:
    """The compiled MJCF a hand was imported from (missing mesh files dropped: only its joints,
    actuators, inertials and exclusions are read), or None for hands not from an MJCF."""
    src = getattr(desc, "source", None)
    if src is None or Path(src).suffix.lower() != ".xml" or not Path(src).is_file():
        return None
    return compile_without_missing_meshes(src)


def _same_frames(desc: HandDescription, src: mujoco.MjModel) -> bool:
    """Every link's frame relative to its parent equals the source body's (so inertials, given in
    body frames, carry over)."""
    tree = desc.tree
    for l in range(1, tree.num_links):
        try:
            b, pb = src.body(tree.link_names[l]).id, src.body(tree.link_names[int(tree.parent[l])]).id
        except KeyError:
            return False
        if int(src.body_parentid[b]) != pb:
            return False
        pos, quat = _mat_to_pos_quat(tree.post[tree.parent[l]] @ tree.origin[l])
        if np.abs(pos - src.body_pos[b]).max() > 1e-6 or 1 - abs(float(np.dot(quat, src.body_quat[b]))) > 1e-9:
            return False
        if np.abs(tree.post[l] - np.eye(4)).max() > 1e-9:
            return False
    return True


def _add_source_actuators(spec, src: mujoco.MjModel, joint_names: set[str], hand: str) -> None:
    """The source MJCF's actuators (joint or fixed-tendon transmissions, position-servo gains, force
    and control ranges) on the scene's joints of the same names."""
    for a in range(src.nu):
        trn = int(src.actuator_trntype[a])
        act = spec.add_actuator()
        act.name = f"servo:{src.actuator(a).name or a}"
        if trn == int(mujoco.mjtTrn.mjTRN_JOINT):
            target = src.joint(int(src.actuator_trnid[a, 0])).name
            if target not in joint_names:
                raise SceneError(f"hand {hand!r}: actuator {act.name!r} drives joint {target!r}, which the description lacks")
            act.trntype, act.target = mujoco.mjtTrn.mjTRN_JOINT, target
        elif trn == int(mujoco.mjtTrn.mjTRN_TENDON):
            t = int(src.actuator_trnid[a, 0])
            ten = spec.add_tendon()
            ten.name = f"tendon:{src.tendon(t).name or t}"
            for w in range(int(src.tendon_adr[t]), int(src.tendon_adr[t] + src.tendon_num[t])):
                if int(src.wrap_type[w]) != int(mujoco.mjtWrap.mjWRAP_JOINT):
                    raise SceneError(f"hand {hand!r}: actuator {act.name!r} uses a spatial tendon; only fixed tendons are simulated")
                jn = src.joint(int(src.wrap_objid[w])).name
                if jn not in joint_names:
                    raise SceneError(f"hand {hand!r}: tendon {ten.name!r} spans joint {jn!r}, which the description lacks")
                ten.wrap_joint(jn, float(src.wrap_prm[w]))
            act.trntype, act.target = mujoco.mjtTrn.mjTRN_TENDON, ten.name
        else:
            raise SceneError(f"hand {hand!r}: actuator {act.name!r} has a transmission graspforge does not simulate ({trn})")
        act.gear = np.asarray(src.actuator_gear[a], np.float64)
        act.gaintype, act.biastype = int(src.actuator_gaintype[a]), int(src.actuator_biastype[a])
        act.dyntype = int(src.actuator_dyntype[a])
        act.gainprm = np.asarray(src.actuator_gainprm[a], np.float64)
        act.biasprm = np.asarray(src.actuator_biasprm[a], np.float64)
        act.dynprm = np.asarray(src.actuator_dynprm[a], np.float64)
        if src.actuator_forcelimited[a]:
            act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
            act.forcerange = np.asarray(src.actuator_forcerange[a], np.float64)
        if src.actuator_ctrllimited[a]:
            act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
            act.ctrlrange = np.asarray(src.actuator_ctrlrange[a], np.float64)


def _actuator_matrix(model: mujoco.MjModel, joint_names: list[str]) -> np.ndarray:
    """(nu, J): d(actuator length)/d(joint value) at qpos0 for the named hand joints: the servo
    target of each actuator from the joints' values (linear for joint and fixed-tendon transmissions)."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    dense = np.zeros((model.nu, model.nv))
    if hasattr(data, "moment_rownnz"):
        mujoco.mju_sparse2dense(dense, data.actuator_moment, data.moment_rownnz, data.moment_rowadr, data.moment_colind)
    else:  # pragma: no cover - MuJoCo < 3.1 keeps it dense
        dense[:] = np.asarray(data.actuator_moment).reshape(model.nu, model.nv)
    cols = [int(model.jnt_dofadr[model.joint(n).id]) for n in joint_names]
    return dense[:, cols]


def _hull_volume(V: np.ndarray) -> float:
    """Volume of the part's convex hull (0 for flat or degenerate parts, which MuJoCo refuses)."""
    if len(V) < 4:
        return 0.0
    try:
        return float(trimesh.convex.convex_hull(np.asarray(V, np.float64)).volume)
    except Exception:
        return 0.0


def build_scene(desc: HandDescription, hand_meshes: LinkMeshes, object_pieces: list[tuple[np.ndarray, np.ndarray]],
                physics: PhysicsConfig, object_name: str = "object", object_geometry: str = "") -> GraspScene:
    """Compile the scene; raises :class:`SceneError` naming the link or object that cannot be simulated.

    Stages: the world's options, the hand's bodies, its couplings and servos, the object, then the
    link pairs that touch in the open pose excluded from collision."""
    src = source_dynamics_model(desc) if physics.hand_dynamics == "source" else None
    spec = _new_spec(f"{desc.name}__{object_name}", physics)
    driver = driver_links(desc.tree)
    _add_hand_bodies(spec, desc, hand_meshes, physics, driver, src)
    _add_couplings_and_servos(spec, desc, physics, driver, src)
    _add_object(spec, object_pieces, physics, object_name)
    model = _compile(spec, desc.name, object_name)
    scene = _make_scene(model, desc, driver, hand_meshes.origin, object_geometry, src is not None)
    if not physics.exclude_open_pose_contacts:
        scene.excluded_pairs = []
        return scene
    pairs = _open_pose_touching_pairs(model, scene, desc, physics)
    if pairs:
        for a, b in pairs:
            ex = spec.add_exclude()
            ex.bodyname1, ex.bodyname2 = a, b
        model = _compile(spec, desc.name, object_name)
        scene = _make_scene(model, desc, driver, hand_meshes.origin, object_geometry, src is not None)
    scene.excluded_pairs = pairs
    return scene


def _new_spec(name: str, physics: PhysicsConfig) -> mujoco.MjSpec:
    """An empty MuJoCo spec with the protocol's solver options (radians, no gravity unless asked)."""
    spec = mujoco.MjSpec()
    spec.modelname = name
    spec.compiler.degree = False  # joint ranges are radians
    spec.option.timestep = physics.timestep
    spec.option.integrator = _INTEGRATORS[physics.integrator]
    spec.option.cone = _CONES[physics.cone]
    spec.option.noslip_iterations = physics.noslip_iterations
    spec.option.impratio = physics.impratio
    spec.option.gravity = [0.0, 0.0, -9.81] if physics.gravity else [0.0, 0.0, 0.0]
    return spec


def _driver_range(tree, j: int, l: int) -> list[float]:
    """The range (rad or m) of link ``l``'s joint when it drives actuated joint ``j``."""
    lo = tree.multiplier[l] * tree.lower[j] + tree.offset[l]
    hi = tree.multiplier[l] * tree.upper[j] + tree.offset[l]
    return [min(lo, hi), max(lo, hi)]


def _add_root(spec: mujoco.MjSpec, name: str, physics: PhysicsConfig):
    body = spec.worldbody.add_body(name=name)
    if physics.root == "weld":
        # free, held by a weld to a mocap body at the same pose (DexGraspBench's hand root)
        body.add_freejoint(name="hand_root_free")
        spec.worldbody.add_body(name="hand_root_mocap", mocap=True)
        eq = spec.add_equality()
        eq.type = mujoco.mjtEq.mjEQ_WELD
        eq.objtype = mujoco.mjtObj.mjOBJ_BODY
        eq.name1, eq.name2 = "hand_root_mocap", name
        eq.solimp = [0.9, 0.95, 0.001, 0.5, 2.0]
        # weld data: anchor (3), relative pose (3 + 4; a zero quaternion: the pose at qpos0,
        # i.e. the identity), torque scale 1 (DexGraspBench's data=[0]*10 + [1])
        data = np.zeros(len(eq.data))
        data[10] = 1.0
        eq.data = data
    return body


def _add_joint(body, tree, l: int, physics: PhysicsConfig, driver: dict, src, src_joints: set[str]) -> None:
    """Link ``l``'s joint: the protocol's armature and damping (the source model's where it has the
    joint); limited only where it drives its actuated joint (followers are held by equalities)."""
    jt = body.add_joint()
    jt.name = tree.joint_names[l]
    revolute = tree.joint_type[l] == REVOLUTE
    jt.type = mujoco.mjtJoint.mjJNT_HINGE if revolute else mujoco.mjtJoint.mjJNT_SLIDE
    jt.axis = tree.axis[l] / np.linalg.norm(tree.axis[l])
    jt.armature = physics.armature_revolute if revolute else physics.armature_prismatic
    _set_damping(jt, physics.joint_damping)
    if jt.name in src_joints:
        dof = int(src.jnt_dofadr[src.joint(jt.name).id])
        jt.armature = float(src.dof_armature[dof])
        _set_damping(jt, float(src.dof_damping[dof]))
        jt.frictionloss = float(src.dof_frictionloss[dof])
    j = int(tree.q_index[l])
    if driver[j] == l:
        jt.limited = mujoco.mjtLimited.mjLIMITED_TRUE
        jt.range = _driver_range(tree, j, l)
    else:
        jt.limited = mujoco.mjtLimited.mjLIMITED_FALSE


def _add_hand_bodies(spec: mujoco.MjSpec, desc: HandDescription, hand_meshes: LinkMeshes, physics: PhysicsConfig,
                     driver: dict, src) -> None:
    """One body per link (the root free and welded, or fixed), its joint and its convex collision
    pieces; masses from the source model when its frames are ours, else from the protocol's density."""
    tree = desc.tree
    inertials = src is not None and _same_frames(desc, src)
    src_joints = {src.joint(i).name for i in range(src.njnt)} if src is not None else set()
    bodies = {}
    hand_rgba = [0.75, 0.75, 0.8, 1.0]
    for l, name in enumerate(tree.link_names):
        if l == 0:
            body = _add_root(spec, name, physics)
        else:
            p = tree.parent[l]
            pos, quat = _mat_to_pos_quat(tree.post[p] @ tree.origin[l])
            body = bodies[p].add_body(name=name, pos=pos, quat=quat)
            if tree.q_index[l] >= 0:
                _add_joint(body, tree, l, physics, driver, src, src_joints)
        bodies[l] = body
        parts = hand_meshes.parts.get(name, [])
        kept = 0
        for k, (V, F) in enumerate(parts):
            if _hull_volume(V) <= 1e-12:
                continue
            _add_mesh_geom(spec, body, f"hand:{name}:{k}", _transform(V, tree.post[l]), F, physics, physics.hand_density, hand_rgba, hand=True)
            kept += 1
        if parts and kept == 0:
            raise SceneError(f"hand {desc.name!r}: link {name!r} has only flat collision geometry")
        if kept == 0:  # a massless frame link: MuJoCo needs some inertia on moving bodies
            body.mass = 1e-4
            body.inertia = [1e-8, 1e-8, 1e-8]
            body.explicitinertial = True
        if inertials and l > 0:  # the source's masses (a welded root's mass does not matter)
            b = src.body(name).id
            body.mass = max(float(src.body_mass[b]), 1e-6)
            body.ipos = np.asarray(src.body_ipos[b], np.float64)
            body.iquat = np.asarray(src.body_iquat[b], np.float64)
            body.inertia = np.maximum(np.asarray(src.body_inertia[b], np.float64), 1e-10)
            body.explicitinertial = True


def _add_couplings_and_servos(spec: mujoco.MjSpec, desc: HandDescription, physics: PhysicsConfig, driver: dict,
                              src) -> None:
    """A joint equality per coupled follower; one position servo per actuated joint (or the source
    model's actuators, with its excluded body pairs)."""
    tree = desc.tree
    for j in range(len(tree.actuated_joints)):
        l = driver[j]
        for f in np.flatnonzero(tree.q_index == j):
            if f == l:
                continue
            # q_f = m_f q + o_f and q_l = m_l q + o_l  =>  q_f = (m_f / m_l)(q_l - o_l) + o_f
            ratio = tree.multiplier[f] / tree.multiplier[l]
            eq = spec.add_equality()
            eq.type = mujoco.mjtEq.mjEQ_JOINT
            eq.name1 = tree.joint_names[f]
            eq.name2 = tree.joint_names[l]
            data = np.zeros(len(eq.data))
            data[0] = tree.offset[f] - ratio * tree.offset[l]
            data[1] = ratio
            eq.data = data
        if src is None:  # one servo per actuated joint
            act = spec.add_actuator()
            act.name = f"servo:{tree.actuated_joints[j]}"
            act.target = tree.joint_names[l]
            act.trntype = mujoco.mjtTrn.mjTRN_JOINT
            kp = physics.kp_revolute if tree.joint_type[l] == REVOLUTE else physics.kp_prismatic
            if physics.servo_dampratio > 0:
                act.set_to_position(kp=kp, dampratio=physics.servo_dampratio)
            else:
                act.set_to_position(kp=kp)
            act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
            act.ctrlrange = _driver_range(tree, j, l)
    if src is not None:
        _add_source_actuators(spec, src, set(tree.joint_names), desc.name)
        for sig in np.asarray(src.exclude_signature, np.int64):
            b1, b2 = src.body(int(sig >> 16)).name, src.body(int(sig & 0xFFFF)).name
            if b1 in tree.link_names and b2 in tree.link_names:
                ex = spec.add_exclude()
                ex.bodyname1, ex.bodyname2 = b1, b2


def _add_object(spec: mujoco.MjSpec, object_pieces: list[tuple[np.ndarray, np.ndarray]], physics: PhysicsConfig,
                object_name: str) -> None:
    """The object, free: its convex pieces at the density that gives the protocol's mass."""
    obj = spec.worldbody.add_body(name="object")
    obj.add_freejoint(name="object_free")
    volumes = [_hull_volume(V) for V, _ in object_pieces]
    solid = [piece for piece, vol in zip(object_pieces, volumes) if vol > 1e-12]
    if not solid:
        raise SceneError(f"object {object_name!r}: no convex piece with volume")
    volume = sum(vol for vol in volumes if vol > 1e-12)
    for k, (V, F) in enumerate(solid):
        _add_mesh_geom(spec, obj, f"object:{k}", V, F, physics, physics.object_mass / volume, [0.9, 0.5, 0.2, 1.0])


def _open_pose_touching_pairs(model: mujoco.MjModel, scene: GraspScene, desc: HandDescription,
                              physics: PhysicsConfig) -> list[tuple[str, str]]:
    """Sorted hand body-name pairs closer than ``open_pose_touch`` in the canonical pose, object far
    away: they never collide (they would fight from the first step)."""
    data = mujoco.MjData(model)
    data.qpos[scene.object_qadr:scene.object_qadr + 3] = [100.0, 100.0, 100.0]
    data.qpos[scene.joint_qadr] = scene.hand_qpos(desc.canonical_q)
    mujoco.mj_forward(model, data)
    pairs = set()
    for c in data.contact[:data.ncon]:
        b1, b2 = model.geom_bodyid[c.geom1], model.geom_bodyid[c.geom2]
        if scene.hand_body_mask[b1] and scene.hand_body_mask[b2] and c.dist < physics.open_pose_touch:
            pairs.add(tuple(sorted((model.body(b1).name, model.body(b2).name))))
    return sorted(pairs)


def _compile(spec, hand: str, obj: str) -> mujoco.MjModel:
    try:
        return spec.compile()
    except Exception as exc:
        raise SceneError(f"MuJoCo could not compile hand {hand!r} with object {obj!r}: {exc}") from exc


def _make_scene(model: mujoco.MjModel, desc: HandDescription, driver: dict, hand_origin: str, object_geometry: str,
                source_actuators: bool = False) -> GraspScene:
    tree = desc.tree
    links = [l for l in range(tree.num_links) if tree.q_index[l] >= 0]
    jadr = np.array([model.jnt_qposadr[model.joint(tree.joint_names[l]).id] for l in links], np.int64)
    D = len(tree.actuated_joints)
    dl = [driver[j] for j in range(D)]
    obj_body = model.body("object").id
    obj_joint = model.joint("object_free").id
    hand_mask = np.zeros(model.nbody, bool)
    for name in tree.link_names:
        hand_mask[model.body(name).id] = True
    return GraspScene(
        model=model,
        joint_names=[tree.joint_names[l] for l in links],
        joint_qadr=jadr,
        joint_q_index=tree.q_index[links].astype(np.int64),
        joint_multiplier=tree.multiplier[links].astype(np.float64),
        joint_offset=tree.offset[links].astype(np.float64),
        actuator_q_index=np.arange(D, dtype=np.int64),
        actuator_multiplier=tree.multiplier[dl].astype(np.float64),
        actuator_offset=tree.offset[dl].astype(np.float64),
        object_body=obj_body,
        object_qadr=int(model.jnt_qposadr[obj_joint]),
        object_dofadr=int(model.jnt_dofadr[obj_joint]),
        hand_body_mask=hand_mask,
        hand_geometry=hand_origin,
        object_geometry=object_geometry,
        actuator_matrix=_actuator_matrix(model, [tree.joint_names[l] for l in links]) if source_actuators else None,
        root_free_qadr=int(model.jnt_qposadr[model.joint("hand_root_free").id])
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "hand_root_free") >= 0 else -1,
    )
