"""URDF -> :class:`KinematicTree` + link geometry. Parsing is pytorch_kinematics' URDF parser
(``urdf_parser_py``); this module only turns its objects into our arrays and resolves mesh paths."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HandLoadError
from ..geometry.rotations import rpy_to_matrix, transform_np
from .geometry_spec import GeometryElement
from .kinematics import FIXED, JOINT_TYPES, KinematicTree, narrow_to_followers


@dataclass
class ParsedHand:
    """What a URDF/MJCF file says: kinematics, per-link collision/visual geometry, warnings."""

    name: str
    tree: KinematicTree
    collisions: dict[str, list[GeometryElement]]
    visuals: dict[str, list[GeometryElement]]
    source: Path
    warnings: list[str] = field(default_factory=list)
    mesh_dirs: list[Path] = field(default_factory=list)
    #: what the parser read how, for the import report (``angle``: the unit hinge values were read in;
    #: ``couplings_from``: the equalities/tendons that became couplings)
    notes: dict = field(default_factory=dict)
    #: {joint name: (lo, hi)} joint values the file's position servos command (rad or m); tells the
    #: closing direction of a joint whose own range is symmetric
    command_ranges: dict = field(default_factory=dict)
    #: {joint name: value} the joint value at which the file draws its body (MJCF ``ref`` = qpos0;
    #: rad or m); absent joints: 0, as in URDF. Closing directions and the open pose measure a
    #: joint's range from here, the pose the modeller drew, not from 0.
    reference_q: dict = field(default_factory=dict)


def _origin(o) -> np.ndarray:
    if o is None:
        return np.eye(4)
    xyz = o.xyz if o.xyz is not None else [0, 0, 0]
    rpy = o.rpy if o.rpy is not None else [0, 0, 0]
    return transform_np(xyz, rpy_to_matrix(rpy))


def resolve_mesh_path(filename: str, base: Path) -> Path | None:
    """Find a mesh that a URDF names: relative to the URDF's folder, to a ``meshes/`` folder beside
    it, after stripping ``package://pkg/``, or by file name anywhere below the URDF's folder."""
    f = re.sub(r"^package://[^/]*/", "", filename)
    f = re.sub(r"^file://", "", f)
    cands = [Path(f) if Path(f).is_absolute() else base / f, base / "meshes" / f, base / Path(f).name]
    for c in cands:
        if c.is_file():
            return c
    name = Path(f).name
    hits = sorted(p for p in base.rglob(name) if p.is_file())
    return hits[0] if hits else None


def _elements(items, link: str, base: Path, missing: list[str]) -> list[GeometryElement]:
    from pytorch_kinematics.urdf_parser_py.urdf import Box, Cylinder, Mesh, Sphere

    out = []
    for it in items:
        g = getattr(it, "geometry", None)
        T = _origin(getattr(it, "origin", None))
        if isinstance(g, Mesh):
            p = resolve_mesh_path(g.filename, base)
            if p is None:
                missing.append(f"link {link!r}: mesh {g.filename!r}")
                continue
            scale = np.ones(3) if g.scale is None else np.broadcast_to(np.asarray(g.scale, float), (3,)).copy()
            out.append(GeometryElement("mesh", T, path=p, scale=scale))
        elif isinstance(g, Box):
            out.append(GeometryElement("box", T, params=tuple(float(x) for x in g.size)))
        elif isinstance(g, Cylinder):
            out.append(GeometryElement("cylinder", T, params=(float(g.radius), float(g.length))))
        elif isinstance(g, Sphere):
            out.append(GeometryElement("sphere", T, params=(float(g.radius),)))
    return out


def _read_robot(path: Path):
    """The URDF parsed by pytorch_kinematics' reader, and its complaints about unknown tags."""
    from pytorch_kinematics.urdf_parser_py.urdf import URDF
    import pytorch_kinematics.urdf_parser_py.xml_reflection.core as xml_core

    if not path.is_file():
        raise HandLoadError(f"URDF file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as e:
        raise HandLoadError(f"cannot read URDF {path}: {e}") from e
    warnings: list[str] = []
    saved = xml_core.on_error
    xml_core.on_error = lambda msg: warnings.append(str(msg))  # unknown tags are not errors; keep them quiet
    try:
        robot = URDF.from_xml_string(text)
    except Exception as e:  # the XML reflection layer raises assorted exception types
        raise HandLoadError(f"{path}: not a valid URDF ({type(e).__name__}: {e})") from e
    finally:
        xml_core.on_error = saved
    return robot, warnings


def _link_order(path: Path, links: dict, joints: list) -> tuple[list[str], dict]:
    """Links parents-first, children in file order (the order pytorch_kinematics uses too), and the
    joint above each link; a second parent, a cycle, an unknown link or joint type is refused."""
    by_child = {}
    children: dict[str, list] = {n: [] for n in links}
    for j in joints:
        if j.parent not in links or j.child not in links:
            raise HandLoadError(f"{path}: joint {j.name!r} connects unknown links {j.parent!r} -> {j.child!r}")
        if j.child in by_child:
            raise HandLoadError(f"{path}: link {j.child!r} has two parent joints (closed chains must be modelled as couplings)")
        if j.type not in JOINT_TYPES:
            raise HandLoadError(f"{path}: joint {j.name!r} has unsupported type {j.type!r} (supported: {sorted(JOINT_TYPES)})")
        by_child[j.child] = j
        children[j.parent].append(j)
    roots = [n for n in links if n not in by_child]
    if len(roots) != 1:
        raise HandLoadError(f"{path}: expected one root link, found {roots or 'none (a cycle)'}")
    order: list[str] = []
    stack = [roots[0]]
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(j.child for j in reversed(children[n]))
    if len(order) != len(links):
        raise HandLoadError(f"{path}: links not connected to the root {roots[0]!r}: {sorted(set(links) - set(order))}")
    return order, by_child


def _mimic_resolver(path: Path, joints: list, act_index: dict[str, int]):
    """A function mapping a joint to (actuated index, multiplier, offset), following mimic chains."""
    jmap = {j.name: j for j in joints}

    def resolve(j, depth=0):
        if j.mimic is None:
            return act_index[j.name], 1.0, 0.0
        if depth > 32 or j.mimic.joint not in jmap:
            raise HandLoadError(f"{path}: joint {j.name!r} mimics {j.mimic.joint!r}, which does not exist or loops")
        tgt = jmap[j.mimic.joint]
        if tgt.type == "fixed":
            raise HandLoadError(f"{path}: joint {j.name!r} mimics the fixed joint {tgt.name!r}")
        i, m, o = resolve(tgt, depth + 1)
        mm = 1.0 if j.mimic.multiplier is None else float(j.mimic.multiplier)
        oo = 0.0 if j.mimic.offset is None else float(j.mimic.offset)
        return i, mm * m, mm * o + oo

    return resolve


def _limits(j) -> tuple[float | None, float | None]:
    lim = j.limit
    return (getattr(lim, "lower", None) if lim is not None else None, getattr(lim, "upper", None) if lim is not None else None)


def _actuated_ranges(path: Path, actuated: list, warnings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(D,) lower and upper limits of the actuated joints (rad or m); continuous joints get
    [-pi, pi], a joint without limits the same (prismatic: [0, 0.05] m) with a warning."""
    lower, upper = np.zeros(len(actuated)), np.zeros(len(actuated))
    for i, j in enumerate(actuated):
        lo, hi = _limits(j)
        if j.type == "continuous" and (lo is None or hi is None or lo == hi):
            lo, hi = -np.pi, np.pi
        if lo is None or hi is None:
            warnings.append(f"joint {j.name!r} has no limits; using [-pi, pi]" if j.type != "prismatic" else f"prismatic joint {j.name!r} has no limits; using [0, 0.05] m")
            lo, hi = (-np.pi, np.pi) if j.type != "prismatic" else (0.0, 0.05)
        lower[i], upper[i] = float(lo), float(hi)
        if lower[i] > upper[i]:
            raise HandLoadError(f"{path}: joint {j.name!r} has lower limit {lo} > upper limit {hi}")
    return lower, upper


def parse_urdf(path: str | Path, require_meshes: bool = True) -> ParsedHand:
    """Parse a URDF file into kinematics and geometry.

    Mimic joints become couplings of the joint they follow; a driver's range is narrowed where a
    mimic joint would leave its own limits (warned). Raises :class:`HandLoadError` naming the file
    for unreadable XML, a tree with several roots or cycles, unknown joint types, mimic targets that
    do not exist, and (with ``require_meshes``) mesh files that cannot be found.
    """
    path = Path(path)
    robot, warnings = _read_robot(path)
    links = {l.name: l for l in (robot.links or [])}
    joints = list(robot.joints or [])
    if not links:
        raise HandLoadError(f"{path}: the URDF has no links")
    order, by_child = _link_order(path, links, joints)
    idx = {n: i for i, n in enumerate(order)}
    moving = [by_child[n] for n in order[1:] if by_child[n].type != "fixed"]
    actuated = [j for j in moving if j.mimic is None]
    resolve = _mimic_resolver(path, joints, {j.name: i for i, j in enumerate(actuated)})

    L = len(order)
    parent, jnames, jtype = np.full(L, -1), [""] * L, np.zeros(L, np.int64)
    origin, axis = np.tile(np.eye(4), (L, 1, 1)), np.zeros((L, 3))
    qidx, mult, off = np.full(L, -1), np.zeros(L), np.zeros(L)
    for n in order[1:]:
        j, l = by_child[n], idx[n]
        parent[l], jnames[l], jtype[l], origin[l] = idx[j.parent], j.name, JOINT_TYPES[j.type], _origin(j.origin)
        if jtype[l] != FIXED:
            ax = np.asarray(j.axis if j.axis is not None else [1.0, 0, 0], float)
            if np.linalg.norm(ax) < 1e-9:
                raise HandLoadError(f"{path}: joint {j.name!r} has a zero axis")
            axis[l] = ax / np.linalg.norm(ax)
            qidx[l], mult[l], off[l] = resolve(j)
    lower, upper = _actuated_ranges(path, actuated, warnings)
    followers = []
    for j in moving:
        lo, hi = _limits(j)
        if j.mimic is not None and j.type != "continuous" and lo is not None and hi is not None:
            i, mm, oo = resolve(j)
            followers.append((j.name, i, actuated[i].name, mm, oo, float(lo), float(hi)))
    narrowed, contradicting = narrow_to_followers(lower, upper, followers)
    warnings.extend(f"{c} under the coupling read from the file; the driver's range is kept" for c in contradicting)
    if narrowed:
        warnings.append("driver ranges narrowed so their coupled followers stay in range: " + "; ".join(narrowed))

    tree = KinematicTree(
        link_names=order, parent=parent, joint_names=jnames, joint_type=jtype, origin=origin,
        post=np.tile(np.eye(4), (L, 1, 1)), axis=axis, q_index=qidx, multiplier=mult, offset=off,
        actuated_joints=[j.name for j in actuated], lower=lower, upper=upper,
    )
    base = path.parent
    missing: list[str] = []
    collisions = {n: _elements(links[n].collisions or [], n, base, missing) for n in order}
    visuals = {n: _elements(links[n].visuals or [], n, base, missing) for n in order}
    if missing and require_meshes:
        raise HandLoadError(f"{path}: mesh files not found: " + "; ".join(missing))
    warnings.extend(f"missing {m}" for m in missing)
    mesh_dirs = sorted({e.path.parent for els in (*collisions.values(), *visuals.values()) for e in els if e.path is not None})
    return ParsedHand(name=robot.name or path.stem, tree=tree, collisions=collisions, visuals=visuals, source=path, warnings=warnings, mesh_dirs=mesh_dirs)
