"""What a bare URDF/MJCF does not say about a hand, inferred from its kinematics and geometry.

Used by :func:`~graspforge.hands.description.build_hand_description` for hands that come without the
reference JSON files (``contact_points.json``, ``eigengrasps.json``) and without recorded facts
(:mod:`graspforge.hands.known`):

- which way each joint *closes* (:func:`closing_directions`),
- a canonical open pose within the limits (:func:`open_pose`),
- the fingers: chains of links from the palm to each tip, and which one is the thumb (:func:`find_fingers`),
- the palmar (inner) side of every link, where contact candidates go (:func:`palmar_mask`),
- the hand frame: approach axis from palm to fingertips, up axis (:func:`hand_axes`),
- grasp types from finger structure (:func:`propose_grasp_types`).

Plain numpy on the :class:`~graspforge.hands.kinematics.KinematicTree`; link geometry is given as
one ``trimesh.Trimesh`` per link name, in the link frame (metres).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kinematics import REVOLUTE, KinematicTree

#: A revolute joint closes towards the side of its range that is this many times longer than the
#: other (measured from 0, the straight pose): flexion joints bend much further in than out.
FLEXION_RANGE_RATIO = 1.5
#: Open pose: closing joints sit this fraction of the way from their open end to their closed end
#: (slightly curled, as in the reference hands' default states).
OPEN_CURL = 0.15
#: A surface point is palmar when its outward normal is within ~66 deg of its closing velocity.
PALMAR_COS = 0.4
#: A thumb whose closing motion (across the fingers) is within ~30 deg of straight against the other
#: fingers' fold opposes them like a gripper's: the hand approaches fingertips first.
OPPOSED_COS = -0.85
#: Step (rad or m) of the finite differences that give closing velocities.
STEP = 1e-4


@dataclass
class Finger:
    """A chain of links with geometry from the palm to a tip (link indices, proximal first)."""

    links: list[int]
    thumb: bool = False

    @property
    def tip(self) -> int:
        return self.links[-1]


def closing_directions(tree: KinematicTree, centres: np.ndarray, has_geometry: np.ndarray,
                       command_ranges: np.ndarray | None = None, neutral: np.ndarray | None = None) -> np.ndarray:
    """(D,) +1 / -1 for the sign of motion that closes each actuated joint, 0 for joints that do not
    close (abduction, rotation: ranges about symmetric about 0).

    ``command_ranges`` (D, 2), NaN where unknown: the joint values a position servo commands (rad or
    m). When given, a revolute joint is judged by that range instead of its own - a gripper knuckle
    whose range is symmetric but whose servo only goes one way closes that way.

    ``neutral`` (D,): the pose the file draws the hand in (MJCF joint ``ref``; default 0, as in
    URDF), rad or m. Revolute ranges are measured from there: a Jaco finger drawn at ref 1.1 in a
    range of 0..1.51 bends 1.1 rad one way and 0.41 the other, so it closes towards 0 although the
    whole range is positive.

    Joints that move the palm (a wrist) do not close. Revolute joints: flexion ranges are lopsided (an Allegro finger bends 1.6 rad in, 0.2 out).
    Prismatic joints: the sign that brings the hand's fingertips (``centres`` (L, 3) of links with
    geometry, link frames) closer together, as a parallel gripper's fingers.
    """
    D = tree.dof
    s = np.zeros(D)
    types = tree.actuated_joint_types()
    q0 = np.clip(np.zeros(D) if neutral is None else np.asarray(neutral, np.float64), tree.lower, tree.upper)
    tips = leaf_links(tree, has_geometry)
    arm = arm_joints(tree, palm_link(tree, has_geometry))
    for j in range(D):
        lo, hi = tree.lower[j], tree.upper[j]
        if arm[j]:
            continue
        if types[j] == "revolute":
            if command_ranges is not None and np.all(np.isfinite(command_ranges[j])):
                lo, hi = np.clip(np.sort(command_ranges[j]), tree.lower[j], tree.upper[j])
            up, down = hi - q0[j], q0[j] - lo
            if up > FLEXION_RANGE_RATIO * down:
                s[j] = 1.0
            elif down > FLEXION_RANGE_RATIO * up:
                s[j] = -1.0
            continue
        spread = []
        for v in (lo, hi):
            q = q0.copy()
            q[j] = v
            T = tree.forward_numpy(q)
            p = to_root(T, tips, centres[tips])
            spread.append(np.linalg.norm(p - p.mean(0), axis=1).mean())
        if abs(spread[0] - spread[1]) > 1e-9:
            s[j] = 1.0 if spread[1] < spread[0] else -1.0
    return s


def open_pose(tree: KinematicTree, closing: np.ndarray, neutral: np.ndarray | None = None) -> np.ndarray:
    """(D,) a canonical open pose: closing revolute joints slightly curled from their neutral pose
    (``neutral`` (D,), the pose the file draws, default 0; see :func:`closing_directions`),
    prismatic joints fully open, the rest at neutral clipped into the limits."""
    q = np.clip(np.zeros(tree.dof) if neutral is None else np.asarray(neutral, np.float64), tree.lower, tree.upper)
    types = tree.actuated_joint_types()
    for j in range(tree.dof):
        if closing[j] == 0:
            continue
        closed = tree.upper[j] if closing[j] > 0 else tree.lower[j]
        if types[j] == "prismatic":
            q[j] = tree.lower[j] if closing[j] > 0 else tree.upper[j]
        else:
            q[j] = q[j] + OPEN_CURL * (closed - q[j])
    return q


#: Grid steps over the thumb's base joint range when :func:`oppose_thumb` looks for opposition.
OPPOSE_STEPS = 65


def thumb_opposition(tree: KinematicTree, q: np.ndarray, closing: np.ndarray, fingers: list[Finger],
                     centres: np.ndarray) -> float:
    """How the thumb's tip closes relative to the other fingers' fold at pose ``q`` (D,): minus the
    cosine between its closing velocity and the mean closing velocity of the other fingertips.
    -1: it folds alongside them (a thumb lying in the palm plane); 0: across them (opposed, sweeping
    over the palm towards the fingers); +1: straight against them (a gripper's opposing finger)."""
    tips = np.array([f.tip for f in fingers if f.thumb] + [f.tip for f in fingers if not f.thumb])
    v = closing_velocity(tree, q, closing, tips, centres[tips])
    vt, vf = v[0], v[1:].mean(0)
    nt, nf = np.linalg.norm(vt), np.linalg.norm(vf)
    return float(-(vt @ vf) / (nt * nf)) if nt > 1e-12 and nf > 1e-12 else 0.0


def oppose_thumb(tree: KinematicTree, q: np.ndarray, closing: np.ndarray, fingers: list[Finger], centres: np.ndarray,
                 palm: int, fixed: set[int] = frozenset()) -> tuple[np.ndarray, int | None]:
    """The open pose ``q`` (D,) with the thumb turned into opposition, and the joint that turned it
    (None: unchanged).

    A thumb that folds alongside the fingers (:func:`thumb_opposition` < 0) meets them only after
    the optimiser has swung it across the palm; the reference hands' default poses have it swung
    already. The thumb's proximal-most closing joint on the chain from ``palm`` to its tip (unless
    in ``fixed``: joints the user or recorded facts set) goes to the value in its range whose
    opposition is nearest 0 - the thumb closing across the fingers. On the reference hands' own files (facts off) this gives Allegro
    thumb_joint_0 1.01 (their default pose 1.0), Shadow THJ3 1.22 (1.2), Ability thumb_q1 1.29 (1.0).
    A thumb already opposed (>= 0, as on 3-finger grippers) is left alone.
    """
    if sum(f.thumb for f in fingers) != 1 or len(fingers) < 3:
        return q, None
    thumb = next(f for f in fingers if f.thumb)
    above = set(tree.ancestors(palm)) | {0}
    joints = []
    for l in reversed(tree.ancestors(thumb.tip)):  # palm to tip, links without geometry included
        if l in above:
            continue
        j = int(tree.q_index[l])
        if j >= 0 and closing[j] != 0 and j not in joints:
            joints.append(j)
    if not joints or joints[0] in fixed or thumb_opposition(tree, q, closing, fingers, centres) >= 0:
        return q, None
    j = joints[0]
    best, best_v = np.inf, q[j]
    for v in np.linspace(tree.lower[j], tree.upper[j], OPPOSE_STEPS):
        trial = q.copy()
        trial[j] = v
        b = abs(thumb_opposition(tree, trial, closing, fingers, centres))
        if b < best - 1e-9:
            best, best_v = b, v
    out = q.copy()
    out[j] = best_v
    return out, j


def leaf_links(tree: KinematicTree, has_geometry: np.ndarray) -> list[int]:
    """Links with geometry none of whose descendants has geometry (fingertips, gripper pads)."""
    below = set()
    for l in range(tree.num_links):
        if has_geometry[l]:
            below.update(tree.ancestors(l)[1:])
    return [l for l in range(tree.num_links) if has_geometry[l] and l not in below and _moves(tree, l)]


def palm_link(tree: KinematicTree, has_geometry: np.ndarray) -> int:
    """The deepest link with geometry that every fingertip descends from (wrist joints above it,
    as on the Shadow Hand, move the palm; they are not finger joints)."""
    tips = leaf_links(tree, has_geometry)
    depth = tree.depth()
    if len(tips) < 2:  # one finger: the palm is what no joint moves
        still = [l for l in range(tree.num_links) if has_geometry[l] and not _moves(tree, l)]
        return max(still, key=lambda l: depth[l]) if still else 0
    common = None
    for t in tips:
        a = set(tree.ancestors(t)[1:])
        common = a if common is None else common & a
    candidates = [l for l in (common or {0}) if has_geometry[l]]
    if not candidates:
        return 0
    return max(candidates, key=lambda l: depth[l])


def arm_joints(tree: KinematicTree, palm: int) -> np.ndarray:
    """(D,) bool: actuated joints that move the palm itself (wrist, arm)."""
    out = np.zeros(tree.dof, bool)
    for a in tree.ancestors(palm):
        if tree.q_index[a] >= 0:
            out[tree.q_index[a]] = True
    return out


def _moves(tree: KinematicTree, link: int) -> bool:
    return any(tree.q_index[a] >= 0 for a in tree.ancestors(link))


def to_root(T: np.ndarray, links, points: np.ndarray) -> np.ndarray:
    """Points (N, 3) (or one point (3,)) given in the frames of ``links`` (N,) (or one link) ->
    the root frame, with link poses ``T`` (L, 4, 4) from ``KinematicTree.forward_numpy``."""
    return np.einsum("...ij,...j->...i", T[links, :3, :3], points) + T[links, :3, 3]


def link_points_world(tree: KinematicTree, q: np.ndarray, links: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (N, 3) given in the frames of ``links`` (N,) -> root frame at pose ``q``."""
    return to_root(tree.forward_numpy(q), links, points)


def closing_velocity(tree: KinematicTree, q: np.ndarray, closing: np.ndarray, links: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) root-frame velocity of link points when every joint closes at unit rate."""
    if not np.any(closing):
        return np.zeros((len(points), 3))
    q1 = np.clip(q + STEP * closing, tree.lower, tree.upper)
    q0 = q1 - STEP * closing
    return (link_points_world(tree, q1, links, points) - link_points_world(tree, q0, links, points)) / STEP


def find_fingers(tree: KinematicTree, has_geometry: np.ndarray, q: np.ndarray, centres: np.ndarray,
                 closing: np.ndarray, thumb_names: np.ndarray | None = None, palm: int | None = None) -> list[Finger]:
    """One :class:`Finger` per tip, proximal links first; the palm (``palm``, else :func:`palm_link`)
    and links above it are not part of any finger.

    The thumb: a link named like one (``thumb_names`` (L,) bool) if any, else, on hands with three
    or more fingers, the finger whose tip closes most against the others' closing directions.
    """
    palm = palm_link(tree, has_geometry) if palm is None else palm
    above = set(tree.ancestors(palm)) | {0}
    fingers = []
    for t in leaf_links(tree, has_geometry):
        chain = [l for l in reversed(tree.ancestors(t)) if has_geometry[l] and l not in above and _moves(tree, l)]
        if chain:
            fingers.append(Finger(chain))
    fingers = _merge_linkages(tree, fingers, q, closing, centres)
    if thumb_names is not None and any(thumb_names[l] for f in fingers for l in f.links):
        for f in fingers:
            f.thumb = bool(any(thumb_names[l] for l in f.links))
        return fingers
    if len(fingers) >= 3:
        score = thumb_scores(tree, q, closing, fingers, centres)
        k = int(np.argmin(score))
        if score[k] < 0:
            fingers[k].thumb = True
    return fingers


def flexion_closing(tree: KinematicTree, q: np.ndarray, closing: np.ndarray, tip: int) -> np.ndarray:
    """``closing`` (D,) without the joints of the chain to ``tip`` that do not flex it: revolute
    joints whose axis (at pose ``q``) is more than ~45 deg from the axis of the chain's most distal
    revolute joint, which always flexes. Spread and scissor joints (a Robotiq 3-finger's palm
    joints turn fingers 1 and 2 towards each other) then no longer count as closing."""
    T = tree.forward_numpy(q)
    chain = [l for l in tree.ancestors(tip) if tree.q_index[l] >= 0]
    axes = {}
    for l in chain:
        R = (T[tree.parent[l]] @ tree.origin[l])[:3, :3]
        axes[l] = R @ (tree.axis[l] / np.linalg.norm(tree.axis[l]))
    revolute = [l for l in chain if tree.joint_type[l] == REVOLUTE]
    out = np.asarray(closing, np.float64).copy()
    if not revolute:
        return out
    distal = axes[revolute[0]]  # chain runs tip first
    flexes = {}
    for l in chain:
        j = int(tree.q_index[l])
        ok = tree.joint_type[l] != REVOLUTE or abs(float(axes[l] @ distal)) > np.cos(np.pi / 4)
        flexes[j] = flexes.get(j, False) or ok
    for j, ok in flexes.items():
        if not ok:
            out[j] = 0.0
    return out


def thumb_scores(tree: KinematicTree, q: np.ndarray, closing: np.ndarray, fingers: list[Finger],
                 centres: np.ndarray) -> list[float]:
    """Per finger, the cosine between its tip's flexion velocity (:func:`flexion_closing`) and the
    mean of the other tips' unit flexion velocities: -1 for a finger that closes straight against
    the others (the thumb of a hand whose links are not named like one), about 0 or above for one
    that folds alongside them."""
    tips = np.array([f.tip for f in fingers])
    v = np.concatenate([closing_velocity(tree, q, flexion_closing(tree, q, closing, t), np.array([t]), centres[[t]]) for t in tips])
    n = np.linalg.norm(v, axis=1, keepdims=True)
    u = np.divide(v, n, out=np.zeros_like(v), where=n > 1e-9)
    return [float(u[i] @ np.delete(u, i, 0).mean(0)) for i in range(len(fingers))]


def _driving_joints(tree: KinematicTree, finger: Finger) -> frozenset[int]:
    return frozenset(int(tree.q_index[a]) for a in tree.ancestors(finger.tip) if tree.q_index[a] >= 0)


def _merge_linkages(tree: KinematicTree, fingers: list[Finger], q: np.ndarray, closing: np.ndarray,
                    centres: np.ndarray) -> list[Finger]:
    """Drop the extra branches of a linkage finger: chains driven by the same actuated joints whose
    tips close the same way or barely move (a Robotiq 2F's inner knuckle beside its outer knuckle and
    pad); the longer, faster chain is the finger. Chains
    driven by the same joint that close against each other (tips moving apart, a Panda's two mimicking fingers) stay."""
    if len(fingers) < 2:
        return fingers
    tips = np.array([f.tip for f in fingers])
    v = closing_velocity(tree, q, closing, tips, centres[tips])
    n = np.linalg.norm(v, axis=1, keepdims=True)
    u = np.divide(v, n, out=np.zeros_like(v), where=n > 1e-9)
    length = [len(f.links) for f in fingers]  # the longest chain is the finger, the others its linkage
    keep = list(range(len(fingers)))
    for i in range(len(fingers)):
        for k in range(len(fingers)):
            if i == k or i not in keep or k not in keep:
                continue
            same = _driving_joints(tree, fingers[i]) == _driving_joints(tree, fingers[k])
            # i is k's linkage part: it closes the same way, or barely moves (a knuckle pivoting near its centre)
            part = u[i] @ u[k] > 0.0 or n[i, 0] < 0.3 * n[k, 0]
            if same and part and (length[k], n[k, 0]) > (length[i], n[i, 0]):
                keep.remove(i)
    return [fingers[i] for i in keep]


def palmar_mask(tree: KinematicTree, q: np.ndarray, closing: np.ndarray, links: np.ndarray, points: np.ndarray,
                normals: np.ndarray, palm: int, fingers: list[Finger], centres: np.ndarray) -> np.ndarray:
    """(N,) bool: surface points (``points``/``normals`` (N, 3) in the frames of ``links`` (N,)) on the
    side of their link that faces where the hand closes.

    Finger links: the outward normal points along the point's closing velocity (within ~66 deg).
    Palm: the normal points along the mean closing velocity of the fingers' proximal links (the
    palm faces where the fingers fold to); a gripper whose fingers close sideways has no palmar palm.
    Links on no finger (linkage bars beside a finger, as the Robotiq 2F-140's inner knuckles, which
    robosuite's file swings *outwards* as the gripper closes): also the normal must face the
    fingertips' centre, or their "palmar" side is their outside, which no grasp touches.
    """
    T = tree.forward_numpy(q)
    n_w = np.einsum("nij,nj->ni", T[links, :3, :3], normals)
    v = closing_velocity(tree, q, closing, links, points)
    speed = np.linalg.norm(v, axis=1)
    mask = np.zeros(len(points), bool)
    moving = speed > 1e-9
    mask[moving] = np.einsum("ni,ni->n", n_w[moving], v[moving]) > PALMAR_COS * speed[moving]
    on_palm = links == palm
    on_finger = np.isin(links, [l for f in fingers for l in f.links])
    off = ~on_finger & ~on_palm
    if off.any() and fingers:
        tips = np.array([f.tip for f in fingers])
        centre = to_root(T, tips, centres[tips]).mean(0)
        p_w = to_root(T, links[off], points[off])
        mask[off] &= np.einsum("ni,ni->n", n_w[off], centre - p_w) > 0
    if on_palm.any() and fingers:
        base = np.array([f.links[0] for f in fingers])
        fv = closing_velocity(tree, q, closing, base, centres[base])
        d = fv.sum(0)
        if np.linalg.norm(d) > 0.3 * np.linalg.norm(fv, axis=1).sum():
            d = d / np.linalg.norm(d)
            mask[on_palm] = n_w[on_palm] @ d > 0.5
    return mask


def hand_axes(tree: KinematicTree, q: np.ndarray, centres: np.ndarray, palm: int, fingers: list[Finger],
              closing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Approach axis and up axis, unit (3,) in the root frame, in the reference hands' convention.

    The fingers' direction ``f`` is the mean direction from each finger's base joint to its tip with
    the fingers straight (every joint at 0 clipped into its limits; the thumb is left out when there are other
    fingers). Their fold ``v`` is where their tips move, across ``f``, when they close from ``q``.

    - A hand whose fingers fold over the palm: approach = ``v``, the palm normal on the side the
      fingers close to (the hand approaches an object palm first); up = ``f`` x approach (towards the
      thumb side on the reference hands).
    - A gripper whose fingers close against each other (no net fold): approach = ``f``; up = the
      closing direction x approach.
    """
    straight = np.clip(np.zeros(tree.dof), tree.lower, tree.upper)
    use = [f for f in fingers if not f.thumb] or fingers
    if not use:
        return np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])
    T = tree.forward_numpy(straight)

    def direction(f: Finger) -> np.ndarray | None:
        d = to_root(T, f.tip, centres[f.tip]) - T[f.links[0], :3, 3]
        return d / np.linalg.norm(d) if np.linalg.norm(d) > 1e-9 else None

    dirs = [d for d in map(direction, use) if d is not None]
    fdir = np.mean(dirs, 0) if dirs else np.array([0.0, 0.0, 1.0])
    fdir = fdir / max(np.linalg.norm(fdir), 1e-12)
    tips = np.array([f.tip for f in use])
    v = closing_velocity(tree, q, closing, tips, centres[tips])
    v = v - np.outer(v @ fdir, fdir)
    fold = v.sum(0)
    # a thumb that closes straight against the other fingers' fold (Jaco, Robotiq 3-finger) makes a
    # gripper: it approaches fingertips first. A hand's thumb closes across the palm instead.
    opposed = False
    thumbs = [f for f in fingers if f.thumb]
    if thumbs and len(use) < len(fingers) and np.linalg.norm(fold) > 1e-9:
        tv = closing_velocity(tree, q, closing, np.array([thumbs[0].tip]), centres[[thumbs[0].tip]])[0]
        tv = tv - fdir * (tv @ fdir)
        opposed = bool(np.linalg.norm(tv) > 1e-9 and (tv @ fold) / (np.linalg.norm(tv) * np.linalg.norm(fold)) < OPPOSED_COS)
    if not opposed and np.linalg.norm(fold) > 0.3 * max(np.linalg.norm(v, axis=1).sum(), 1e-12):
        a = fold / np.linalg.norm(fold)
        up = np.cross(fdir, a)
    else:
        a = fdir
        if opposed:
            # the thumb is one side of the gripper, the other fingers the other: a spread the fingers
            # share (the Robotiq 3-finger's splay away from its thumb, 25 deg) tilts their mean away
            # from the hand's centre line, and the thumb's direction tilts the other way. Their
            # bisector is the centre line.
            td = direction(thumbs[0])
            if td is not None and np.linalg.norm(fdir + td) > 1e-6:
                a = (fdir + td) / np.linalg.norm(fdir + td)
        ref = v[np.argmax(np.linalg.norm(v, axis=1))]
        side = sum(vi * np.sign(vi @ ref) for vi in v)
        side = side - a * (side @ a)
        up = np.cross(side, a) if np.linalg.norm(side) > 1e-9 else np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
    if np.linalg.norm(up) < 1e-9:
        up = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
    return a, up / np.linalg.norm(up)


def propose_grasp_types(tree: KinematicTree, fingers: list[Finger], palm: int, palmar_links: set[int], q: np.ndarray,
                        closing: np.ndarray, centres: np.ndarray) -> dict[str, list[int]]:
    """Grasp types as sorted lists of contact links, from finger structure.

    - full: every link with palmar candidates (palm included);
    - fingertip: every finger's last palmar link;
    - precision: the last two links of the thumb and of the two fingers whose tips lie closest to
      the thumb's in the open pose ``q`` (all fingers if there is no thumb);
    - pinch: the thumb's tip and the tip closest to it (the index); a two-finger gripper's two tips.
    Types that repeat an earlier one are dropped.
    """
    F = [f for f in fingers if any(l in palmar_links for l in f.links)]
    out: dict[str, list[int]] = {"full": sorted(palmar_links)}
    if not F:
        return out
    tips = [[l for l in f.links if l in palmar_links][-1] for f in F]
    out["fingertip"] = sorted(set(tips))
    thumb = [i for i, f in enumerate(F) if f.thumb]
    prec: set[int] = set()
    if thumb:
        t = thumb[0]
        T = tree.forward_numpy(q)
        tip_w = to_root(T, tips, centres[tips])
        others = sorted((i for i in range(len(F)) if i != t), key=lambda i: float(np.linalg.norm(tip_w[i] - tip_w[t])))
        for i in [t] + others[:2]:
            prec.update(l for l in F[i].links[-2:] if l in palmar_links)
        if others:
            out["pinch"] = sorted({tips[t], tips[others[0]]})
    else:
        for f in F:
            prec.update(l for l in f.links[-2:] if l in palmar_links)
        if len(F) == 2:
            out["pinch"] = sorted(set(tips))
    out["precision"] = sorted(prec)
    seen: list[list[int]] = []
    uniq: dict[str, list[int]] = {}
    for k in ("full", "precision", "pinch", "fingertip"):
        v = out.get(k)
        if v and v not in seen:
            seen.append(v)
            uniq[k] = v
    return uniq
