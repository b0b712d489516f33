"""MJCF -> :class:`KinematicTree` + link geometry, through MuJoCo's own parser and compiler.

Bodies become links. A body with several joints becomes a chain of links (the extra ones named
``BODY__jointN``), since our links carry one joint each. Joint equality constraints
(``<equality><joint joint1= joint2= polycoef=>``) become couplings (linear terms only).
Geoms that collide (contype or conaffinity set) are collision geometry, the others visual.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import HandLoadError
from .geometry_spec import GeometryElement
from .kinematics import FIXED, PRISMATIC, REVOLUTE, KinematicTree
from .urdf import ParsedHand


def _quat_to_R(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _T(pos, quat=None) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = pos
    if quat is not None:
        T[:3, :3] = _quat_to_R(quat)
    return T


def parse_mjcf(path: str | Path) -> ParsedHand:
    """Parse an MJCF file with MuJoCo; errors name the file."""
    import mujoco

    path = Path(path)
    if not path.is_file():
        raise HandLoadError(f"MJCF file not found: {path}")
    try:
        m = mujoco.MjModel.from_xml_path(str(path))
    except Exception as e:  # mujoco raises ValueError with the compiler's message
        raise HandLoadError(f"{path}: MuJoCo cannot load it: {e}") from e
    name_of = lambda obj, i: mujoco.mj_id2name(m, obj, i) or f"{'body' if obj == mujoco.mjtObj.mjOBJ_BODY else 'joint'}_{i}"  # noqa: E731
    warnings: list[str] = []
    roots = [b for b in range(1, m.nbody) if m.body_parentid[b] == 0]
    if not roots:
        raise HandLoadError(f"{path}: the model has no bodies")
    if len(roots) > 1:
        # keep the tree that has joints (a hand next to a table or an object, say)
        with_joints = [r for r in roots if any(m.body_rootid[m.jnt_bodyid[j]] == r and m.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE for j in range(m.njnt))]
        if len(with_joints) != 1:
            raise HandLoadError(f"{path}: several top-level bodies {[name_of(mujoco.mjtObj.mjOBJ_BODY, r) for r in roots]}; cannot tell which is the hand")
        warnings.append(f"using top-level body {name_of(mujoco.mjtObj.mjOBJ_BODY, with_joints[0])!r} as the hand; other bodies ignored")
        roots = with_joints
    root = roots[0]

    # bodies of the hand, parents first (MuJoCo numbers bodies depth-first already)
    bodies = [b for b in range(1, m.nbody) if m.body_rootid[b] == root]
    link_names, parent, jnames, jtype, origin, post, axis, joint_ids = [], [], [], [], [], [], [], []
    link_of_body: dict[int, int] = {}
    for b in bodies:
        bname = name_of(mujoco.mjtObj.mjOBJ_BODY, b)
        jids = [j for j in range(m.body_jntadr[b], m.body_jntadr[b] + m.body_jntnum[b])] if m.body_jntnum[b] > 0 else []
        if b == root:
            if any(m.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE for j in jids):
                raise HandLoadError(f"{path}: the root body {bname!r} has joints other than a free joint")
            link_of_body[b] = len(link_names)
            link_names.append(bname); parent.append(-1); jnames.append(""); jtype.append(FIXED)
            origin.append(np.eye(4)); post.append(np.eye(4)); axis.append(np.zeros(3)); joint_ids.append(-1)
            continue
        par = link_of_body[int(m.body_parentid[b])]
        Tb = _T(m.body_pos[b], m.body_quat[b])
        if not jids:
            link_of_body[b] = len(link_names)
            link_names.append(bname); parent.append(par); jnames.append(f"{bname}_fixed"); jtype.append(FIXED)
            origin.append(Tb); post.append(np.eye(4)); axis.append(np.zeros(3)); joint_ids.append(-1)
            continue
        for k, j in enumerate(jids):
            t = m.jnt_type[j]
            if t == mujoco.mjtJoint.mjJNT_HINGE:
                jt = REVOLUTE
            elif t == mujoco.mjtJoint.mjJNT_SLIDE:
                jt = PRISMATIC
            else:
                raise HandLoadError(f"{path}: joint {name_of(mujoco.mjtObj.mjOBJ_JOINT, j)!r} is a ball or free joint inside the hand (unsupported)")
            last = k == len(jids) - 1
            lname = bname if last else f"{bname}__joint{k}"
            jp = np.asarray(m.jnt_pos[j], float)
            link_names.append(lname)
            parent.append(par)
            jnames.append(name_of(mujoco.mjtObj.mjOBJ_JOINT, j))
            jtype.append(jt)
            origin.append((Tb if k == 0 else np.eye(4)) @ _T(jp))
            post.append(_T(-jp))
            axis.append(np.asarray(m.jnt_axis[j], float))
            joint_ids.append(j)
            par = len(link_names) - 1
        link_of_body[b] = len(link_names) - 1

    # couplings from joint equality constraints: joint1 = c0 + c1 * joint2
    follows: dict[int, tuple[int, float, float]] = {}
    for e in range(m.neq):
        if m.eq_type[e] != mujoco.mjtEq.mjEQ_JOINT:
            continue
        j1, j2 = int(m.eq_obj1id[e]), int(m.eq_obj2id[e])
        c = np.asarray(m.eq_data[e][:5], float)
        if j2 < 0:
            continue  # a joint locked to a constant: leave it actuated
        if np.any(np.abs(c[2:]) > 1e-12):
            warnings.append(f"joint coupling {name_of(mujoco.mjtObj.mjOBJ_JOINT, j1)!r}: non-linear terms ignored")
        follows[j1] = (j2, float(c[1]), float(c[0]))
    moving = [j for j in joint_ids if j >= 0]
    actuated = [j for j in moving if j not in follows]
    act_index = {j: i for i, j in enumerate(actuated)}

    def resolve(j, depth=0):
        if j in act_index:
            return act_index[j], 1.0, 0.0
        if depth > 32 or j not in follows or follows[j][0] not in moving:
            raise HandLoadError(f"{path}: joint coupling of {name_of(mujoco.mjtObj.mjOBJ_JOINT, j)!r} points outside the hand or loops")
        tgt, mm, oo = follows[j]
        i, m2, o2 = resolve(tgt, depth + 1)
        return i, mm * m2, mm * o2 + oo

    L = len(link_names)
    qidx, mult, off = np.full(L, -1), np.zeros(L), np.zeros(L)
    for l, j in enumerate(joint_ids):
        if j >= 0:
            qidx[l], mult[l], off[l] = resolve(j)
    lower, upper = np.zeros(len(actuated)), np.zeros(len(actuated))
    for i, j in enumerate(actuated):
        if m.jnt_limited[j]:
            lower[i], upper[i] = m.jnt_range[j]
        else:
            warnings.append(f"joint {name_of(mujoco.mjtObj.mjOBJ_JOINT, j)!r} has no limits; using [-pi, pi]")
            lower[i], upper[i] = -np.pi, np.pi
    tree = KinematicTree(
        link_names=link_names, parent=parent, joint_names=jnames, joint_type=jtype, origin=np.stack(origin),
        post=np.stack(post), axis=np.stack(axis), q_index=qidx, multiplier=mult, offset=off,
        actuated_joints=[name_of(mujoco.mjtObj.mjOBJ_JOINT, j) for j in actuated], lower=lower, upper=upper,
    )

    collisions = {n: [] for n in link_names}
    visuals = {n: [] for n in link_names}
    for g in range(m.ngeom):
        b = int(m.geom_bodyid[g])
        if b not in link_of_body:
            continue
        lname = link_names[link_of_body[b]]
        # a body's frame is its link's frame (origin and post cancel at the joint), so geoms keep their pose
        T = _T(m.geom_pos[g], m.geom_quat[g])
        t, s = m.geom_type[g], m.geom_size[g]
        if t == mujoco.mjtGeom.mjGEOM_MESH:
            mid = int(m.geom_dataid[g])
            va, vn = m.mesh_vertadr[mid], m.mesh_vertnum[mid]
            fa, fn = m.mesh_faceadr[mid], m.mesh_facenum[mid]
            el = GeometryElement("mesh", T, vertices=np.array(m.mesh_vert[va:va + vn], float), faces=np.array(m.mesh_face[fa:fa + fn], int))
        elif t == mujoco.mjtGeom.mjGEOM_BOX:
            el = GeometryElement("box", T, params=tuple(2 * s))
        elif t == mujoco.mjtGeom.mjGEOM_SPHERE:
            el = GeometryElement("sphere", T, params=(float(s[0]),))
        elif t == mujoco.mjtGeom.mjGEOM_CAPSULE:
            el = GeometryElement("capsule", T, params=(float(s[0]), 2 * float(s[1])))
        elif t == mujoco.mjtGeom.mjGEOM_CYLINDER:
            el = GeometryElement("cylinder", T, params=(float(s[0]), 2 * float(s[1])))
        else:
            warnings.append(f"link {lname!r}: geom type {int(t)} not supported; skipped")
            continue
        (collisions if (m.geom_contype[g] or m.geom_conaffinity[g]) else visuals)[lname].append(el)
    name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, root) or path.stem
    return ParsedHand(name=path.stem if not name else name, tree=tree, collisions=collisions, visuals=visuals, source=path, warnings=warnings)


def compile_without_missing_meshes(path: str | Path):
    """MuJoCo model of an MJCF whose mesh files may be absent: geoms using a missing mesh (and those
    meshes) are dropped; kinematics, actuators and inertials given explicitly do not need them."""
    import mujoco

    try:
        spec = mujoco.MjSpec.from_file(str(path))
    except Exception as e:  # mujoco raises ValueError with the parser's message
        raise HandLoadError(f"{path}: MuJoCo cannot parse it: {e}") from e
    meshdir = Path(path).parent / (spec.meshdir or "")
    missing = {m.name for m in spec.meshes if not (meshdir / m.file).is_file() and not Path(m.file).is_file()}
    missing |= {Path(m.file).stem for m in spec.meshes if m.name == "" and not (meshdir / m.file).is_file()}

    def drop(el) -> None:
        if hasattr(spec, "delete"):
            spec.delete(el)
        else:  # pragma: no cover - older MuJoCo
            el.delete()

    for g in list(spec.geoms):
        if int(g.type) == int(mujoco.mjtGeom.mjGEOM_MESH) and (g.meshname in missing or not g.meshname):
            drop(g)
    for m in list(spec.meshes):
        if m.name in missing or (not (meshdir / m.file).is_file() and not Path(m.file).is_file()):
            drop(m)
    # bodies whose mass lived in the dropped geoms: kinematics only, so any positive mass will do
    spec.compiler.boundmass = max(spec.compiler.boundmass, 1e-6)
    spec.compiler.boundinertia = max(spec.compiler.boundinertia, 1e-10)
    try:
        return spec.compile()
    except Exception as e:
        raise HandLoadError(f"{path}: MuJoCo cannot compile it (meshes dropped for kinematics): {e}") from e
