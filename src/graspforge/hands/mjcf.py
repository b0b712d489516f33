"""MJCF -> :class:`KinematicTree` + link geometry, through MuJoCo's own parser and compiler.

Stages (each a function): :func:`load_mjcf_model` (compile, angle units), :func:`_hand_bodies`
(which top-level body is the hand), :func:`_links` (bodies -> links), :func:`mjcf_couplings`
(joint equalities, tendon equalities and rigid fixed tendons -> linear couplings),
:func:`actuator_command_ranges` (what the position servos command), :func:`_geometry`.

Bodies become links. A body with several joints becomes a chain of links (the extra ones named
``BODY__jointN``), since our links carry one joint each. A joint's ``ref`` (the value at which the
body sits at its written pose) is folded into the link origin, so joint values are MuJoCo's qpos.
Geoms that collide (contype or conaffinity set) are collision geometry, the others visual.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import HandLoadError
from .geometry_spec import GeometryElement
from .kinematics import FIXED, PRISMATIC, REVOLUTE, KinematicTree, narrow_to_followers
from .urdf import ParsedHand

#: Hinge ranges that all span less than this (rad, about 6 deg) after MuJoCo's degree conversion
#: are not a hand's: the file was written in radians without saying so.
IMPLAUSIBLE_SPAN = 0.1
#: A fixed tendon whose allowed length range is below this fraction of the length span its joints
#: can produce is a rigid linkage (Shadow's J0/J1 tendon): a coupling, not a soft limit.
RIGID_TENDON_FRACTION = 0.2
ANGLE_UNITS = ("degree", "radian")


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


def _axis_angle_T(axis: np.ndarray, angle: float) -> np.ndarray:
    """4x4 rotation by ``angle`` (rad) about the unit ``axis``."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    T = np.eye(4)
    T[:3, :3] = np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K
    return T


def _states_angle(path: Path) -> bool:
    """True when the file (or a file it includes, same folder) sets ``<compiler angle=...>`` itself."""
    seen, todo = set(), [path]
    while todo:
        p = todo.pop()
        if p in seen or not p.is_file():
            continue
        seen.add(p)
        text = p.read_text(encoding="utf-8", errors="replace")
        if re.search(r"<compiler[^>]*\bangle\s*=", text):
            return True
        todo += [p.parent / f for f in re.findall(r"<include[^>]*\bfile\s*=\s*[\"']([^\"']+)", text)]
    return False


def load_mjcf_model(path: Path, angle: str | None, warnings: list[str], notes: dict):
    """Compile the MJCF with MuJoCo, in the angle unit the file means.

    ``angle`` None: the file's own ``<compiler angle>``, MuJoCo's default (degrees) when it sets none -
    unless every hinge range is implausibly small; then the position actuators decide: when they
    command many times the joints' ranges, the ranges were written in radians and the file is re-read
    so (warned); otherwise a warning offers ``--angle radian``. ``notes['angle']`` records the unit used.
    """
    import mujoco

    if angle is not None and angle not in ANGLE_UNITS:
        raise HandLoadError(f"{path}: angle unit {angle!r}: use one of {list(ANGLE_UNITS)}")

    def compile_(degree: bool | None):
        try:
            spec = mujoco.MjSpec.from_file(str(path))
            if degree is not None:
                spec.compiler.degree = degree
            return spec.compile(), bool(spec.compiler.degree)
        except Exception as e:  # mujoco raises ValueError with the compiler's message
            raise HandLoadError(f"{path}: MuJoCo cannot load it: {e}") from e

    if angle is not None:
        m, degree = compile_(angle == "degree")
        notes["angle"] = f"{angle} (--angle)"
        return m
    m, degree = compile_(None)
    stated = _states_angle(path)
    notes["angle"] = ("degree" if degree else "radian") + (" (the file's <compiler angle>)" if stated else " (MuJoCo's default: the file sets no <compiler angle>)")
    hinges = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE and m.jnt_limited[j]]
    if not degree or not hinges:
        return m
    spans = np.array([m.jnt_range[j, 1] - m.jnt_range[j, 0] for j in hinges])
    if spans.max() >= IMPLAUSIBLE_SPAN:
        return m
    # position servos on those hinges: their ctrlrange is never unit-converted, so it shows the numbers as written
    ratios = []
    for a in range(m.nu):
        j = int(m.actuator_trnid[a, 0])
        if int(m.actuator_trntype[a]) == int(mujoco.mjtTrn.mjTRN_JOINT) and j in hinges and m.actuator_ctrllimited[a]:
            cmd = abs(float(np.diff(m.actuator_ctrlrange[a])[0]) / max(abs(float(m.actuator_gear[a, 0])), 1e-12))
            ratios.append(cmd / max(float(np.diff(m.jnt_range[j])[0]), 1e-12))
    what = (f"every hinge range spans at most {np.degrees(spans.max()):.2f} deg ({spans.max():.4f} rad) when read as "
            "degrees, " + ("as the file's <compiler angle> says" if stated else "MuJoCo's default unit, since the file sets no <compiler angle>"))
    if not stated and ratios and np.median(ratios) > 10:
        m, _ = compile_(False)
        notes["angle"] = "radian (detected: the file sets no <compiler angle> and its servos command radians)"
        warnings.append(f"{what}; its position actuators command {np.median(ratios):.0f}x those ranges, so the file was "
                        "written in radians and is read so (--angle degree to read it as MuJoCo does)")
        return m
    warnings.append(f"{what}: if the file is in radians, import it with --angle radian")
    return m


def _name(m, obj, i: int) -> str:
    import mujoco

    kind = {mujoco.mjtObj.mjOBJ_BODY: "body", mujoco.mjtObj.mjOBJ_JOINT: "joint", mujoco.mjtObj.mjOBJ_TENDON: "tendon"}.get(obj, "obj")
    return mujoco.mj_id2name(m, obj, i) or f"{kind}_{i}"


def _strip_comments(text: str) -> str:
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def _hand_root(m, path: Path, warnings: list[str]) -> int:
    """The top-level body that is the hand (the one with joints when there are several)."""
    import mujoco

    roots = [b for b in range(1, m.nbody) if m.body_parentid[b] == 0]
    if not roots:
        # gymnasium-robotics' hand/robot.xml: a <body> straight under <mujoco>, written to be
        # <include>d inside another file's <worldbody>; MuJoCo reads it as an empty world
        fragment = re.search(r"<mujoco[^>]*>\s*<body\b", _strip_comments(path.read_text(errors="replace")))
        hint = (" - its <body> sits outside any <worldbody>: a fragment written to be <include>d; import the file "
                "that includes it (MuJoCo resolves <include>)") if fragment else ""
        raise HandLoadError(f"{path}: the model has no bodies{hint}")
    if len(roots) == 1:
        return roots[0]
    # keep the tree that has joints (a hand next to a table or an object, say)
    with_joints = [r for r in roots if any(m.body_rootid[m.jnt_bodyid[j]] == r and m.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE for j in range(m.njnt))]
    if len(with_joints) != 1:
        raise HandLoadError(f"{path}: several top-level bodies {[_name(m, mujoco.mjtObj.mjOBJ_BODY, r) for r in roots]}; cannot tell which is the hand")
    warnings.append(f"using top-level body {_name(m, mujoco.mjtObj.mjOBJ_BODY, with_joints[0])!r} as the hand; other bodies ignored")
    return with_joints[0]


def _links(m, root: int, path: Path) -> tuple[dict, dict[int, int]]:
    """Bodies of the hand (parents first) -> link arrays; a body with k joints -> k chained links.
    Returns the arrays (dict of lists) and body id -> index of the body's (last) link."""
    import mujoco

    B, J = mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_JOINT
    out = {k: [] for k in ("link_names", "parent", "joint_names", "joint_type", "origin", "post", "axis", "joint_ids")}

    def add(name, par, jname, jt, orig, post, ax, jid):
        for k, v in zip(out, (name, par, jname, jt, orig, post, ax, jid)):
            out[k].append(v)

    link_of_body: dict[int, int] = {}
    for b in (b for b in range(1, m.nbody) if m.body_rootid[b] == root):  # MuJoCo numbers bodies depth-first
        bname = _name(m, B, b)
        jids = list(range(m.body_jntadr[b], m.body_jntadr[b] + m.body_jntnum[b])) if m.body_jntnum[b] > 0 else []
        if b == root:
            if any(m.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE for j in jids):
                raise HandLoadError(f"{path}: the root body {bname!r} has joints other than a free joint")
            link_of_body[b] = len(out["link_names"])
            add(bname, -1, "", FIXED, np.eye(4), np.eye(4), np.zeros(3), -1)
            continue
        par = link_of_body[int(m.body_parentid[b])]
        Tb = _T(m.body_pos[b], m.body_quat[b])
        if not jids:
            link_of_body[b] = len(out["link_names"])
            add(bname, par, f"{bname}_fixed", FIXED, Tb, np.eye(4), np.zeros(3), -1)
            continue
        for k, j in enumerate(jids):
            t = int(m.jnt_type[j])
            if t not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
                raise HandLoadError(f"{path}: joint {_name(m, J, j)!r} is a ball or free joint inside the hand (unsupported)")
            jp, ax = np.asarray(m.jnt_pos[j], float), np.asarray(m.jnt_axis[j], float)
            # the body sits at its written pose when the joint is at ref (= qpos0): fold -ref into the origin
            ref = float(m.qpos0[m.jnt_qposadr[j]])
            if t == mujoco.mjtJoint.mjJNT_HINGE:
                motion = _axis_angle_T(ax, -ref)
            else:
                motion = _T(-ref * ax / np.linalg.norm(ax))
            lname = bname if k == len(jids) - 1 else f"{bname}__joint{k}"
            add(lname, par, _name(m, J, j), REVOLUTE if t == mujoco.mjtJoint.mjJNT_HINGE else PRISMATIC,
                (Tb if k == 0 else np.eye(4)) @ _T(jp) @ motion, _T(-jp), ax, j)
            par = len(out["link_names"]) - 1
        link_of_body[b] = len(out["link_names"]) - 1
    return out, link_of_body


def _tendon_joints(m, t: int) -> dict[int, float] | None:
    """A fixed tendon's {joint id: coefficient} (its length is sum coef * qpos), None for a spatial tendon."""
    import mujoco

    out: dict[int, float] = {}
    for w in range(m.tendon_adr[t], m.tendon_adr[t] + m.tendon_num[t]):
        if int(m.wrap_type[w]) != int(mujoco.mjtWrap.mjWRAP_JOINT):
            return None
        out[int(m.wrap_objid[w])] = out.get(int(m.wrap_objid[w]), 0.0) + float(m.wrap_prm[w])
    return out


def _linear_constraints(m, warnings: list[str]) -> list[tuple[dict[int, float], float, str]]:
    """Every linear relation the file imposes on joint values (qpos), as (coefficients by joint id,
    right-hand side, what it came from): ``sum coef * q = rhs``.

    - joint equality: ``q1 - q1_0 = c0 + c1 (q2 - q2_0)`` (MuJoCo measures both from qpos0);
    - tendon equality on fixed tendons: ``L1 - L1_0 = c0 + c1 (L2 - L2_0)``, or ``L1 - L1_0 = c0`` alone;
    - a limited fixed tendon whose range is too narrow to be a soft limit: ``L = mid-range``.
    Non-linear polynomial terms are dropped with a warning; a joint locked alone is left free.
    """
    import mujoco

    J, T = mujoco.mjtObj.mjOBJ_JOINT, mujoco.mjtObj.mjOBJ_TENDON
    rows: list[tuple[dict[int, float], float, str]] = []
    q0 = lambda j: float(m.qpos0[m.jnt_qposadr[j]])  # noqa: E731
    for e in range(m.neq):
        c = np.asarray(m.eq_data[e][:5], float)
        t = int(m.eq_type[e])
        if t not in (int(mujoco.mjtEq.mjEQ_JOINT), int(mujoco.mjtEq.mjEQ_TENDON)):
            continue
        o1, o2 = int(m.eq_obj1id[e]), int(m.eq_obj2id[e])
        if t == mujoco.mjtEq.mjEQ_JOINT:
            what = f"joint equality {_name(m, J, o1)!r}"
            if o2 < 0:
                continue  # a joint locked to a constant: leave it actuated
            a1, a2, base1, base2 = {o1: 1.0}, {o2: 1.0}, q0(o1), q0(o2)
        else:
            what = f"tendon equality {_name(m, T, o1)!r}"
            a1 = _tendon_joints(m, o1)
            a2 = _tendon_joints(m, o2) if o2 >= 0 else {}
            if a1 is None or a2 is None:
                warnings.append(f"{what}: a spatial tendon, not a linear coupling; ignored")
                continue
            base1 = float(m.tendon_length0[o1])
            base2 = float(m.tendon_length0[o2]) if o2 >= 0 else 0.0
        if o2 >= 0 and np.any(np.abs(c[2:]) > 1e-12):
            warnings.append(f"{what}: non-linear terms ignored")
        row = dict(a1)
        for j, v in (a2.items() if o2 >= 0 else ()):
            row[j] = row.get(j, 0.0) - c[1] * v
        rows.append((row, base1 + c[0] - (c[1] * base2 if o2 >= 0 else 0.0), what))
    for t in range(m.ntendon):
        a = _tendon_joints(m, t)
        if a is None or not m.tendon_limited[t] or len(a) < 2:
            continue
        lo, hi = (float(x) for x in m.tendon_range[t])
        span = sum(abs(v) * float(np.diff(m.jnt_range[j])[0]) for j, v in a.items() if m.jnt_limited[j])
        if span > 0 and hi - lo < RIGID_TENDON_FRACTION * span:
            rows.append((dict(a), 0.5 * (lo + hi), f"fixed tendon {_name(m, T, t)!r} (range {lo:g}..{hi:g} of {span:.3g} reachable: rigid)"))
    return rows


def mjcf_couplings(m, moving: list[int], actuated_pref: set[int], warnings: list[str]) -> tuple[dict[int, tuple[int, float, float]], list[str]]:
    """Solve the file's linear constraints for joint couplings ``q_j = multiplier * q_driver + offset``.

    Gaussian elimination over the hand's ``moving`` joint ids: each constraint eliminates one of its
    still-free joints - not one a servo drives (``actuated_pref``) when it can, and the most distal one
    (MuJoCo numbers joints depth-first) otherwise. Returns {follower: (driver, multiplier, offset)} and
    the names of the constraints used. A joint left depending on two drivers cannot be expressed in a
    kinematic tree: warned, and that joint is left free.
    """
    import mujoco

    J = mujoco.mjtObj.mjOBJ_JOINT
    inside = set(moving)
    expr: dict[int, tuple[dict[int, float], float]] = {j: ({j: 1.0}, 0.0) for j in moving}
    used: list[str] = []
    for row, rhs, what in _linear_constraints(m, warnings):
        if not set(row) <= inside:
            warnings.append(f"{what} involves joints outside the hand; ignored")
            continue
        combo: dict[int, float] = {}
        const = 0.0
        for j, a in row.items():
            e, o = expr[j]
            const += a * o
            for k, v in e.items():
                combo[k] = combo.get(k, 0.0) + a * v
        combo = {k: v for k, v in combo.items() if abs(v) > 1e-12}
        if len(combo) < 2:
            if combo:
                warnings.append(f"{what} would lock joint {_name(m, J, next(iter(combo)))!r} to a constant; left free")
            continue
        free = sorted(combo, key=lambda k: (k in actuated_pref, -k))
        v = free[0]
        # v = (rhs - const - sum_{k != v} combo_k x_k) / combo_v
        sub = ({k: -c / combo[v] for k, c in combo.items() if k != v}, (rhs - const) / combo[v])
        for j, (e, o) in list(expr.items()):
            if v in e:
                cv = e.pop(v)
                ne = dict(e)
                for k, c in sub[0].items():
                    ne[k] = ne.get(k, 0.0) + cv * c
                expr[j] = ({k: c for k, c in ne.items() if abs(c) > 1e-12}, o + cv * sub[1])
        used.append(what)
    follows: dict[int, tuple[int, float, float]] = {}
    for j, (e, o) in expr.items():
        if e == {j: 1.0}:
            continue
        if len(e) != 1:
            drivers = ", ".join(_name(m, J, k) for k in e)
            warnings.append(f"joint {_name(m, J, j)!r} depends on several joints ({drivers}) through the file's couplings: "
                            "not expressible as one driver; left free")
            continue
        (k, c), = e.items()
        follows[j] = (k, c, o)
    # a joint whose expression was dropped may still drive others: keep drivers free
    return follows, used


def actuator_command_ranges(m) -> dict[int, tuple[float, float]]:
    """{joint id: (lo, hi)} joint values that position servos (joint transmission) command:
    ``ctrlrange / gear``. Tells which way a joint with a symmetric range closes (a Robotiq knuckle
    ranges -0.725..0.725 but its servo goes -0.7..0)."""
    import mujoco

    out: dict[int, tuple[float, float]] = {}
    for a in range(m.nu):
        if int(m.actuator_trntype[a]) != int(mujoco.mjtTrn.mjTRN_JOINT) or not m.actuator_ctrllimited[a]:
            continue
        # position servo: affine bias -kp * length (a motor commands force, not position)
        if int(m.actuator_biastype[a]) != int(mujoco.mjtBias.mjBIAS_AFFINE) or m.actuator_biasprm[a, 1] >= 0:
            continue
        g = float(m.actuator_gear[a, 0])
        if abs(g) < 1e-12:
            continue
        lo, hi = sorted(float(x) / g for x in m.actuator_ctrlrange[a])
        out[int(m.actuator_trnid[a, 0])] = (lo, hi)
    return out


def _geometry(m, link_names: list[str], link_of_body: dict[int, int], warnings: list[str]) -> tuple[dict, dict]:
    """Per link name, its collision and visual :class:`GeometryElement` lists (link frames, m)."""
    import mujoco

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
    return collisions, visuals


def _follower_ranges(m, follows: dict[int, tuple[int, float, float]], act_index: dict[int, int], lower: np.ndarray,
                     upper: np.ndarray, warnings: list[str], notes: dict) -> None:
    """Driver ranges narrowed (in place) so that coupled followers stay in their own ranges
    (:func:`~graspforge.hands.kinematics.narrow_to_followers`); what changed is warned and noted."""
    import mujoco

    J = mujoco.mjtObj.mjOBJ_JOINT
    followers = [(_name(m, J, j), act_index[drv], _name(m, J, drv), mm, oo, *(m.jnt_range[j] if m.jnt_limited[j] else (np.inf, np.inf)))
                 for j, (drv, mm, oo) in follows.items()]
    narrowed, contradicting = narrow_to_followers(lower, upper, followers)
    warnings.extend(f"{c} under the coupling read from the file; the driver's range is kept" for c in contradicting)
    if narrowed:
        notes["follower_ranges"] = narrowed
        warnings.append("driver ranges narrowed so their coupled followers stay in range: " + "; ".join(narrowed))


def parse_mjcf(path: str | Path, angle: str | None = None) -> ParsedHand:
    """Parse an MJCF file with MuJoCo; errors name the file.

    ``angle``: ``"degree"`` or ``"radian"`` overrides the unit the file's angles are read in (see
    :func:`load_mjcf_model`). What was read how goes to ``ParsedHand.notes`` (units, couplings) and
    ``ParsedHand.command_ranges`` (servo ranges per joint name, rad or m).
    """
    import mujoco

    path = Path(path)
    if not path.is_file():
        raise HandLoadError(f"MJCF file not found: {path}")
    warnings: list[str] = []
    notes: dict = {}
    m = load_mjcf_model(path, angle, warnings, notes)
    J = mujoco.mjtObj.mjOBJ_JOINT
    root = _hand_root(m, path, warnings)
    arr, link_of_body = _links(m, root, path)
    joint_ids = arr.pop("joint_ids")
    moving = [j for j in joint_ids if j >= 0]
    commands = actuator_command_ranges(m)
    follows, used = mjcf_couplings(m, moving, set(commands), warnings)
    actuated = [j for j in moving if j not in follows]
    act_index = {j: i for i, j in enumerate(actuated)}
    L = len(arr["link_names"])
    qidx, mult, off = np.full(L, -1), np.zeros(L), np.zeros(L)
    for l, j in enumerate(joint_ids):
        if j >= 0:
            drv, mm, oo = follows.get(j, (j, 1.0, 0.0))
            qidx[l], mult[l], off[l] = act_index[drv], mm, oo
    lower, upper = np.zeros(len(actuated)), np.zeros(len(actuated))
    for i, j in enumerate(actuated):
        if m.jnt_limited[j]:
            lower[i], upper[i] = m.jnt_range[j]
        else:
            warnings.append(f"joint {_name(m, J, j)!r} has no limits; using [-pi, pi]")
            lower[i], upper[i] = -np.pi, np.pi
    _follower_ranges(m, follows, act_index, lower, upper, warnings, notes)
    tree = KinematicTree(**arr, q_index=qidx, multiplier=mult, offset=off,
                         actuated_joints=[_name(m, J, j) for j in actuated], lower=lower, upper=upper)
    collisions, visuals = _geometry(m, arr["link_names"], link_of_body, warnings)
    notes["couplings_from"] = used
    name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, root) or path.stem
    return ParsedHand(name=name, tree=tree, collisions=collisions, visuals=visuals, source=path, warnings=warnings,
                      notes=notes, command_ranges={_name(m, J, j): r for j, r in commands.items()},
                      reference_q={_name(m, J, j): float(m.qpos0[m.jnt_qposadr[j]]) for j in moving if m.qpos0[m.jnt_qposadr[j]] != 0.0})


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
