"""The hand description: everything synthesis needs to know about a hand, as plain data.

A :class:`HandDescription` holds the kinematic tree, contact candidates (points + outward normals in
link frames), per-link collision distance grids, self-collision samples, reference self-collision
spheres, grasp types, the canonical (open) pose and the hand frame's approach/up axes. It is built
from a URDF/MJCF (+ the reference JSON files when present) by :func:`build_hand_description`, and
saved to / loaded from a folder (``hand.json`` + ``geometry.npz``) - the form of the built-in hands.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import trimesh

from .. import __version__
from .._io import atomic_savez, atomic_write_json, load_npz
from ..errors import HandLoadError, UnknownNameError
from ..geometry.atlas import LinkGrid, build_link_grid
from ..geometry.exact import exact_signed_distance
from ..geometry.sampling import farthest_point_sampling, sample_surface
from .geometry_spec import GeometryElement
from .kinematics import KinematicTree, narrow_to_followers
from . import structure
from .known import KNOWN_HANDS
from .reference_layout import GRASP_TYPE_ALIASES, read_contact_points, read_eigengrasps, read_penetration_points
from .urdf import ParsedHand

FORMAT_VERSION = 1
GRASP_TYPES = ("full", "precision", "pinch", "fingertip")


# "th" at the start of a name or after a prefix separator ("rh_", "robot0:", "right/"), followed by
# a part name: thdistal, th_link, TH2. "thumb" anywhere.
_THUMB = re.compile(r"thumb|(^|[_/:.\-])th(?=[a-z0-9_]|$)", re.IGNORECASE)


def is_thumb_link(name: str) -> bool:
    """True for link names of a thumb in the usual conventions (``thumb_link_2``, ``rh_thdistal``,
    ``robot0:thdistal``, ``thbase``)."""
    return bool(_THUMB.search(name))


@dataclass
class GraspType:
    """Which links may hold contacts (and how many candidates each), and which joints curl in the
    initial pose because their finger takes no contact."""

    name: str
    links: dict[str, int]
    curl_joints: list[str] = field(default_factory=list)
    # per curl joint, the limit it curls toward: +1 upper, -1 lower (a hand closing toward its lower
    # limits, e.g. some grippers); empty: all +1 (every built-in)
    curl_signs: list[int] = field(default_factory=list)


@dataclass
class BuildOptions:
    """Parameters of :func:`build_hand_description`. The defaults are what ``graspforge hands
    import`` uses; the built-ins differ only in ``keep_above_palm=True`` and ``link_geometry="mesh"``
    (tools/build_builtin_hands.py: they reproduce the reference layout)."""

    grid_spacing: float = 0.0015  # m, link distance grids (max error vs the exact meshes < 1 mm, bench_hands.py)
    grid_margin: float = 0.005  # m, grown around each link's box
    grid_max_nodes: int = 128
    surface_points_per_link: int = 128  # self-collision / display samples
    default_candidates_per_link: int = 8  # links without a contact_points.json entry
    dense_samples: int = 2000  # area-uniform samples before farthest-point selection
    seed: int = 0
    # candidates per link for hands without contact_points.json: {link: count}; 0 leaves a link out.
    # Links not named get default_candidates_per_link on their palmar side (hands/structure.py).
    link_candidates: dict = field(default_factory=dict)
    # use the recorded facts of known hands (hands/known.py: open pose, axes, couplings)
    use_known_facts: bool = True
    # overrides of what the build would infer (CLI: hands import --root-link, --palm-link, --thumb,
    # --closing JOINT=+1|-1|0, --open JOINT=VALUE, --couple, --approach x|-z|ax,ay,az, --up, --geometry, --angle)
    root_link: str | None = None  # the hand starts here; links above it are cut off
    palm_link: str | None = None  # geometry above it is not the hand's
    # keep the geometry of links above the palm (forearm, mount) as collision geometry: the
    # built-ins reproduce the reference layout, which keeps them (tools/build_builtin_hands.py)
    keep_above_palm: bool = False
    thumb_link: str | None = None
    closing: dict = field(default_factory=dict)  # {joint: +1 | -1 | 0}
    open_pose: dict = field(default_factory=dict)  # {joint: value (rad or m)}: the open pose where it is not inferred
    # {follower: (driver, multiplier, offset)}: actuated joints the file leaves independent that one
    # command drives together (--couple FOLLOWER=DRIVER:MULT[:OFFSET]), as the recorded couplings
    couplings: dict = field(default_factory=dict)
    approach: str | None = None
    up: str | None = None
    # "hull": distance grids of each link's convex hull, which is what evaluate simulates for an
    # imported hand (one hull per link; the CLI's default too); "mesh": of the exact link meshes
    # (the built-ins, whose reference layout was made on them)
    link_geometry: str = "hull"
    angle: str | None = None  # MJCF angle unit override: "degree" | "radian" (None: the file's)


#: Contacts per grasp for a hand whose candidates the import generated (no contact_points.json):
#: spread over every link's palmar side, twelve of them must all touch, which few poses allow (the
#: palm, proximal and distal links at once). Measured at 1500 steps (16 grasps, strict) on the
#: reference hands' bare files imported without their contact files, over 4 dev-split objects
#: (apple, tuna can, pear, pudding box): 4 contacts vs 12 - Panda 72 vs 69 %, Robotiq 2F 72 vs 66 %,
#: Robotiq 3F 86 vs 74 %, Allegro 82 vs 80 %, Shadow 89 vs 78 %, Ability 70 vs 67 % (mean strict success).
AUTO_CANDIDATE_CONTACTS = 4
#: Contacts per grasp for hands with curated candidates (contact_points.json): the paper's K.
PAPER_CONTACTS = 12


def _contacts_of_older_file(provenance: dict) -> int:
    """Contacts per grasp for a ``hand.json`` written before it recorded them: an imported hand
    whose source files did not include a contact file had generated candidates."""
    files = provenance.get("source_files_sha256")
    if isinstance(files, dict) and not any(str(f).endswith("contact_points.json") for f in files):
        return AUTO_CANDIDATE_CONTACTS
    return PAPER_CONTACTS


@dataclass
class HandDescription:
    name: str
    tree: KinematicTree
    contact_points: np.ndarray  # (C, 3) link frame, m
    contact_normals: np.ndarray  # (C, 3) link frame, outward unit
    contact_links: np.ndarray  # (C,) link index
    contact_rank: np.ndarray  # (C,) position in its link's farthest-point order
    link_grid: np.ndarray  # (L,) index into ``grids`` or -1
    grids: list[LinkGrid]
    surface_points: np.ndarray  # (S, 3) link frame samples of the collision geometry
    surface_normals: np.ndarray  # (S, 3)
    surface_links: np.ndarray  # (S,)
    spheres: np.ndarray  # (Q, 4) reference self-collision spheres [x, y, z, r], link frame
    sphere_links: np.ndarray  # (Q,)
    grasp_types: dict[str, GraspType]
    canonical_q: np.ndarray  # (D,)
    approach_axis: np.ndarray  # (3,) root frame: the direction the palm faces
    up_axis: np.ndarray  # (3,) root frame, orthogonal to approach
    provenance: dict = field(default_factory=dict)
    # contacts per grasp synthesis uses with this hand unless told otherwise (config ``contacts = 0``):
    # PAPER_CONTACTS for hands with curated candidates (contact_points.json); AUTO_CANDIDATE_CONTACTS
    # for hands whose candidates the import spread over every link's palmar side
    contacts: int = PAPER_CONTACTS
    source: Path | None = None  # URDF/MJCF it came from, for exact-mesh checks (None for built-ins)
    warnings: list[str] = field(default_factory=list)

    # -- convenience ----------------------------------------------------------------------
    @property
    def dof(self) -> int:
        return self.tree.dof

    @property
    def joint_names(self) -> list[str]:
        return list(self.tree.actuated_joints)

    def candidates_per_link(self) -> dict[str, int]:
        names = self.tree.link_names
        out: dict[str, int] = {}
        for l in self.contact_links:
            out[names[l]] = out.get(names[l], 0) + 1
        return out

    def grasp_type(self, name: str) -> GraspType:
        key = GRASP_TYPE_ALIASES.get(name, name)
        if key not in self.grasp_types:
            raise UnknownNameError(f"hand {self.name!r} has no grasp type {name!r}; it has {sorted(self.grasp_types)}")
        return self.grasp_types[key]

    def candidate_mask(self, grasp_type: str = "full") -> np.ndarray:
        """(C,) bool: the candidates a grasp type may use (its links, first n of each link's order)."""
        gt = self.grasp_type(grasp_type)
        idx = {n: i for i, n in enumerate(self.tree.link_names)}
        limit = np.full(self.tree.num_links, -1)
        for link, n in gt.links.items():
            if link in idx:
                limit[idx[link]] = n
        return self.contact_rank < limit[self.contact_links]

    # -- storage --------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``hand.json`` and ``geometry.npz`` into ``folder`` (atomically, file by file)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "tree": self.tree.to_dict(),
            "grasp_types": {k: {"links": v.links, "curl_joints": v.curl_joints, **({"curl_signs": v.curl_signs} if v.curl_signs else {})}
                            for k, v in self.grasp_types.items()},
            "canonical_q": self.canonical_q.tolist(),
            "approach_axis": self.approach_axis.tolist(),
            "up_axis": self.up_axis.tolist(),
            "contacts": int(self.contacts),
            "provenance": self.provenance,
            "warnings": self.warnings,
        }
        arrays = {
            "contact_points": self.contact_points.astype(np.float64),
            "contact_normals": self.contact_normals.astype(np.float64),
            "contact_links": self.contact_links.astype(np.int32),
            "contact_rank": self.contact_rank.astype(np.int32),
            "link_grid": self.link_grid.astype(np.int32),
            "surface_points": self.surface_points.astype(np.float32),
            "surface_normals": self.surface_normals.astype(np.float32),
            "surface_links": self.surface_links.astype(np.int32),
            "spheres": self.spheres.astype(np.float64),
            "sphere_links": self.sphere_links.astype(np.int32),
            "grid_meta": np.array([[*g.origin, g.spacing, *g.values.shape] for g in self.grids], np.float64).reshape(-1, 7),
        }
        for i, g in enumerate(self.grids):
            # float16 keeps 0.01 mm near the surface for |d| < 6 cm and halves the shipped size
            arrays[f"grid_{i}"] = g.values.astype(np.float16)
        atomic_savez(folder / "geometry.npz", **arrays)
        atomic_write_json(folder / "hand.json", meta)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "HandDescription":
        folder = Path(folder)
        jpath, npath = folder / "hand.json", folder / "geometry.npz"
        if not jpath.is_file() or not npath.is_file():
            raise HandLoadError(f"{folder}: not a graspforge hand folder (needs hand.json and geometry.npz)")
        try:
            meta = json.loads(jpath.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HandLoadError(f"{jpath}: unreadable ({e})") from e
        try:
            arr = load_npz(npath)
        except Exception as e:
            raise HandLoadError(f"{npath}: unreadable ({e})") from e
        try:
            if meta.get("format_version") != FORMAT_VERSION:
                raise HandLoadError(f"{jpath}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
            tree = KinematicTree.from_dict(meta["tree"])
            grids = []
            gm = np.asarray(arr["grid_meta"], np.float64).reshape(-1, 7)
            for i, row in enumerate(gm):
                vals = np.asarray(arr[f"grid_{i}"]).astype(np.float32)
                if vals.shape != tuple(int(x) for x in row[4:7]):
                    raise HandLoadError(f"{npath}: grid {i} shape does not match its metadata")
                grids.append(LinkGrid(row[:3], row[3], vals))
            d = cls(
                name=str(meta["name"]),
                tree=tree,
                contact_points=np.asarray(arr["contact_points"], np.float64).reshape(-1, 3),
                contact_normals=np.asarray(arr["contact_normals"], np.float64).reshape(-1, 3),
                contact_links=np.asarray(arr["contact_links"], np.int64),
                contact_rank=np.asarray(arr["contact_rank"], np.int64),
                link_grid=np.asarray(arr["link_grid"], np.int64),
                grids=grids,
                surface_points=np.asarray(arr["surface_points"], np.float64).reshape(-1, 3),
                surface_normals=np.asarray(arr["surface_normals"], np.float64).reshape(-1, 3),
                surface_links=np.asarray(arr["surface_links"], np.int64),
                spheres=np.asarray(arr["spheres"], np.float64).reshape(-1, 4),
                sphere_links=np.asarray(arr["sphere_links"], np.int64),
                grasp_types={k: GraspType(k, {str(a): int(b) for a, b in v["links"].items()}, [str(x) for x in v.get("curl_joints", [])],
                                    [int(x) for x in v.get("curl_signs", [])]) for k, v in meta["grasp_types"].items()},
                canonical_q=np.asarray(meta["canonical_q"], np.float64),
                approach_axis=np.asarray(meta["approach_axis"], np.float64),
                up_axis=np.asarray(meta["up_axis"], np.float64),
                contacts=int(meta["contacts"]) if "contacts" in meta else _contacts_of_older_file(meta.get("provenance", {})),
                provenance=dict(meta.get("provenance", {})),
                warnings=list(meta.get("warnings", [])),
            )
            d.validate()
        except HandLoadError as e:
            if str(folder) in str(e):
                raise
            raise HandLoadError(f"{folder}: {e}") from e
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise HandLoadError(f"{folder}: malformed hand data ({type(e).__name__}: {e})") from e
        return d

    def validate(self) -> None:
        """Cross-check sizes and ranges; raise :class:`HandLoadError` on the first inconsistency."""
        L, D, C = self.tree.num_links, self.tree.dof, len(self.contact_points)
        checks = [
            (isinstance(self.contacts, (int, np.integer)) and not isinstance(self.contacts, bool) and self.contacts >= 1,
             f"contacts per grasp must be an integer >= 1, got {self.contacts!r}"),
            (self.contact_normals.shape == (C, 3), "contact normals do not match contact points"),
            (self.contact_links.shape == (C,) and np.all((self.contact_links >= 0) & (self.contact_links < L)), "contact link indices out of range"),
            (self.contact_rank.shape == (C,), "contact rank has the wrong size"),
            (self.link_grid.shape == (L,) and np.all((self.link_grid >= -1) & (self.link_grid < len(self.grids))), "link grid indices out of range"),
            (self.surface_links.shape == (len(self.surface_points),) and np.all((self.surface_links >= 0) & (self.surface_links < L)), "surface link indices out of range"),
            (self.sphere_links.shape == (len(self.spheres),) and np.all((self.sphere_links >= 0) & (self.sphere_links < L)), "sphere link indices out of range"),
            (self.canonical_q.shape == (D,), "canonical pose has the wrong length"),
            (self.approach_axis.shape == (3,) and self.up_axis.shape == (3,), "axes must be 3-vectors"),
            (all(np.all(np.isfinite(a)) for a in (self.contact_points, self.contact_normals, self.canonical_q, self.approach_axis, self.up_axis, self.spheres)), "non-finite numbers"),
            (bool(self.grasp_types), "no grasp types"),
        ]
        for ok, msg in checks:
            if not ok:
                raise HandLoadError(f"hand {self.name!r}: {msg}")
        if np.linalg.norm(self.approach_axis) < 1e-6 or np.linalg.norm(self.up_axis) < 1e-6:
            raise HandLoadError(f"hand {self.name!r}: zero approach or up axis")


# ---------------------------------------------------------------------------------------------
# building from a parsed URDF/MJCF
# ---------------------------------------------------------------------------------------------

def _apply_couplings(tree: KinematicTree, couplings: dict, path) -> KinematicTree:
    """Turn actuated joints into followers of another actuated joint (mimic without a <mimic> tag)."""
    if not couplings:
        return tree
    act = list(tree.actuated_joints)
    for j, (driver, *_rest) in couplings.items():
        if j not in act or driver not in act:
            raise HandLoadError(f"{path}: coupling {j!r} <- {driver!r} names a joint that is not actuated")
    keep = [j for j in act if j not in couplings]
    new_index = {j: i for i, j in enumerate(keep)}
    qi, mult, off = tree.q_index.copy(), tree.multiplier.copy(), tree.offset.copy()
    for l in range(tree.num_links):
        if qi[l] < 0:
            continue
        j = act[qi[l]]
        if j in couplings:
            driver, m, o = couplings[j]
            qi[l], mult[l], off[l] = new_index[driver], mult[l] * m, mult[l] * o + off[l]
        else:
            qi[l] = new_index[j]
    sel = [act.index(j) for j in keep]
    return KinematicTree(
        link_names=tree.link_names, parent=tree.parent, joint_names=tree.joint_names, joint_type=tree.joint_type,
        origin=tree.origin, post=tree.post, axis=tree.axis, q_index=qi, multiplier=mult, offset=off,
        actuated_joints=keep, lower=tree.lower[sel], upper=tree.upper[sel],
    )


def _link_parts(elements: list[GeometryElement]) -> list[tuple[np.ndarray, np.ndarray]]:
    parts = []
    for e in elements:
        m = e.to_trimesh()
        parts.append((np.asarray(m.vertices), np.asarray(m.faces)))
    return parts


def _geom_key(parts) -> str:
    h = hashlib.sha256()
    for v, f in parts:
        h.update(np.round(np.asarray(v, np.float64), 9).tobytes())
        h.update(np.asarray(f, np.int64).tobytes())
    return h.hexdigest()


def _closest_normals(mesh: trimesh.Trimesh, pts: np.ndarray) -> np.ndarray:
    # outward normal of the closest point on the link's collision surface
    _, _, n = exact_signed_distance(mesh.vertices, mesh.faces, pts)
    return np.nan_to_num(n)


def _curl_joints(tree: KinematicTree, links: dict[str, int]) -> list[str]:
    """Actuated joints that move none of the type's contact links: those fingers curl away."""
    idx = {n: i for i, n in enumerate(tree.link_names)}
    used = set()
    for link in links:
        if link in idx:
            for a in tree.ancestors(idx[link]):
                if tree.q_index[a] >= 0:
                    used.add(int(tree.q_index[a]))
    return [j for i, j in enumerate(tree.actuated_joints) if i not in used]


def _grasp_type(name: str, links: dict[str, int], tree: KinematicTree, closing: np.ndarray) -> GraspType:
    """Grasp type ``name`` on ``links``, its curl joints curling the way each closes (``closing`` (D,)
    +-1, 0 unknown: +1); ``curl_signs`` stays empty when every one closes toward its upper limit."""
    curl = _curl_joints(tree, links)
    signs = [-1 if closing[tree.actuated_joints.index(j)] < 0 else 1 for j in curl]
    return GraspType(name, links, curl, signs if any(s < 0 for s in signs) else [])


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return path.name


def _file_sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class HandStructure:
    """What the structure stage inferred (or was told by flags): per actuated joint its closing sign
    and where that came from, the open pose, palm, fingers (thumb marked), links above the palm."""

    has_geometry: np.ndarray  # (L,) bool, after links above the palm are dropped
    centres: np.ndarray  # (L, 3) link-frame centres of the link geometry's bounding boxes, m
    closing: np.ndarray  # (D,) +1 / -1 / 0
    closing_source: list[str]  # (D,) "range", "servo ctrlrange", "--closing", "finger geometry", "-"
    canonical: np.ndarray  # (D,) open pose, rad / m
    palm: int
    fingers: list[structure.Finger]
    above_palm: list[str]  # links whose geometry was dropped (forearm, wrist mount)
    thumb_opposed: str | None = None  # the joint that swung the thumb into opposition in the open pose


AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def parse_axis(text: str) -> np.ndarray:
    """``x``, ``-y``, ``+z`` or ``ax,ay,az`` -> a unit (3,) vector; :class:`HandLoadError` otherwise."""
    t = str(text).strip().lower()
    sign = -1.0 if t.startswith("-") else 1.0
    if t.lstrip("+-") in AXES:
        return sign * np.array(AXES[t.lstrip("+-")])
    try:
        v = np.array([float(x) for x in t.split(",")])
    except ValueError:
        v = np.zeros(0)
    if v.shape != (3,) or not np.all(np.isfinite(v)) or np.linalg.norm(v) < 1e-9:
        raise HandLoadError(f"axis {text!r}: use x, y, z, -x, -y, -z or three numbers 'ax,ay,az'")
    return v / np.linalg.norm(v)


def stage_couplings(parsed: ParsedHand, known: dict, opt: BuildOptions, warnings: list[str] | None = None) -> KinematicTree:
    """Stage 2: the recorded couplings of known hands and ``--couple`` (the file's own are applied by
    its parser; a driver's range is narrowed where a ``--couple`` follower would leave its own),
    then ``opt.root_link``: the hand starts there, links above it (an arm, a mount) are cut off."""
    warnings = [] if warnings is None else warnings
    given = {str(j): (str(d), float(m), float(o)) for j, (d, m, o) in opt.couplings.items()}
    tree = _apply_couplings(parsed.tree, {**known.get("couplings", {}), **given}, parsed.source)
    if given:
        act, pt = tree.actuated_joints, parsed.tree
        followers = [(j, act.index(d), d, m, o, pt.lower[pt.actuated_joints.index(j)], pt.upper[pt.actuated_joints.index(j)])
                     for j, (d, m, o) in given.items()]
        lower, upper = tree.lower.copy(), tree.upper.copy()
        narrowed, contradicting = narrow_to_followers(lower, upper, followers)
        if contradicting:
            raise HandLoadError(f"{parsed.source}: --couple: " + "; ".join(contradicting) + ": the coupling would freeze it")
        tree = replace(tree, lower=lower, upper=upper)
        if narrowed:
            warnings.append("--couple: driver ranges narrowed so their followers stay in range: " + "; ".join(narrowed))
    if opt.root_link:
        if opt.root_link not in tree.link_names:
            raise HandLoadError(f"{parsed.source}: --root-link {opt.root_link!r}: no such link (links: {', '.join(tree.link_names)})")
        tree = subtree(tree, tree.link_names.index(opt.root_link))
    return tree


#: A hand with more servo-driven joints than this is not a parallel gripper whose sides one command
#: drives (the Panda and Robotiq 2F-140 files have 2; a gripper on a wrist or with a scissor, 3-4).
MIRRORED_SERVOS_MAX = 4


def _warn_mirrored_servos(parsed: ParsedHand, tree: KinematicTree, warnings: list[str]) -> None:
    """Warn about pairs of independent actuated joints whose servos command mirrored one-sided
    ranges ([lo, hi] and [-hi, -lo], one end 0): a parallel gripper's two sides, which the program
    driving it moves with one command (robosuite's Panda and Robotiq 2F-140 files). The file keeps
    two servos, and so does the import (each side simulated with its own servo); ``--couple B=A:-1``
    makes one joint, whose follower side the simulation then holds through the coupling alone
    (robosuite's 2F-140: 75 / 38 % strict on apple / can independent, 6 / 6 % coupled)."""
    cmd = parsed.command_ranges
    act = [j for j in tree.actuated_joints if j in cmd]
    if len(act) > MIRRORED_SERVOS_MAX:
        # a dexterous hand: flexion servos (0..hi) and a thumb's (-hi..0) mirror by coincidence
        # (gymnasium's Shadow: FFJ2 and THJ0), and no one drives its fingers as a gripper's sides
        return
    used: set[str] = set()
    for a in act:
        for b in act:
            if a == b or a in used or b in used:
                continue
            (la, ha), (lb, hb) = cmd[a], cmd[b]
            width = ha - la
            one_sided = min(abs(la), abs(ha)) < 1e-9 * max(1.0, width)
            if width > 1e-9 and one_sided and abs(lb + ha) <= 1e-6 * width and abs(hb + la) <= 1e-6 * width:
                used |= {a, b}
                warnings.append(f"the servos of {a!r} ({la:g}..{ha:g}) and {b!r} ({lb:g}..{hb:g}) mirror each other, as a "
                                f"parallel gripper's sides driven by one command; they stay independent joints, as the file has "
                                f"them (--couple {b}={a}:-1 makes them one)")


def subtree(tree: KinematicTree, root: int) -> KinematicTree:
    """The tree below link ``root``, which becomes the fixed root (at the identity); joints that only
    links outside it use are dropped from the actuated set."""
    keep = [l for l in range(tree.num_links) if root in tree.ancestors(l) + [0]]
    new = {l: i for i, l in enumerate(keep)}
    used = sorted({int(tree.q_index[l]) for l in keep[1:] if tree.q_index[l] >= 0})
    qmap = {j: i for i, j in enumerate(used)}
    qi = np.array([qmap[int(tree.q_index[l])] if tree.q_index[l] >= 0 and l != root else -1 for l in keep])
    origin = tree.origin[keep].copy()
    origin[0] = np.eye(4)
    post = tree.post[keep].copy()
    return KinematicTree(
        link_names=[tree.link_names[l] for l in keep], parent=[new.get(int(tree.parent[l]), -1) if l != root else -1 for l in keep],
        joint_names=["" if l == root else tree.joint_names[l] for l in keep],
        joint_type=[0 if l == root else int(tree.joint_type[l]) for l in keep], origin=origin, post=post,
        axis=np.where(np.arange(len(keep))[:, None] == 0, 0.0, tree.axis[keep]), q_index=qi,
        multiplier=np.where(qi >= 0, tree.multiplier[keep], 0.0), offset=np.where(qi >= 0, tree.offset[keep], 0.0),
        actuated_joints=[tree.actuated_joints[j] for j in used], lower=tree.lower[used], upper=tree.upper[used],
    )


def stage_link_meshes(parsed: ParsedHand, tree: KinematicTree, opt: BuildOptions, warnings: list[str]):
    """Stage 3a: each link's collision elements (else its visual ones) and their union as one mesh
    (link frame, m); with ``opt.link_geometry == "hull"`` the union's convex hull - what an imported
    hand is simulated with (evaluate collides the hull of each link)."""
    link_elements: dict[str, list[GeometryElement]] = {}
    meshes: dict[str, trimesh.Trimesh] = {}
    if opt.link_geometry not in ("mesh", "hull"):
        raise HandLoadError(f"link geometry {opt.link_geometry!r}: use 'mesh' or 'hull'")
    for n in tree.link_names:
        els = parsed.collisions.get(n) or parsed.visuals.get(n) or []
        if not parsed.collisions.get(n) and parsed.visuals.get(n):
            warnings.append(f"link {n!r} has no collision geometry; using its visual geometry")
        link_elements[n] = els
        if els:
            m = trimesh.util.concatenate([trimesh.Trimesh(v, f, process=False) for v, f in _link_parts(els)])
            meshes[n] = m.convex_hull if opt.link_geometry == "hull" and len(m.vertices) >= 4 else m
    return link_elements, meshes


def neutral_pose(tree: KinematicTree, parsed: ParsedHand) -> np.ndarray:
    """(D,) the joint values at which the file draws the hand (MJCF ``ref``, else 0), rad or m."""
    return np.array([float(parsed.reference_q.get(n, 0.0)) for n in tree.actuated_joints])


def _closing(tree: KinematicTree, parsed: ParsedHand, centres: np.ndarray, has: np.ndarray, opt: BuildOptions):
    """Closing sign per joint and its source: ``--closing`` beats the joint range (measured from the
    drawn pose, :func:`neutral_pose`), which beats the servo ctrlrange (for symmetric ranges)."""
    cmd = np.full((tree.dof, 2), np.nan)
    for j, name in enumerate(tree.actuated_joints):
        if name in parsed.command_ranges:
            cmd[j] = parsed.command_ranges[name]
    neutral = neutral_pose(tree, parsed)
    closing = structure.closing_directions(tree, centres, has, neutral=neutral)
    source = ["range" if c == 0 or neutral[j] == 0 else "range from ref" for j, c in enumerate(closing)]
    source = [s if c else "-" for s, c in zip(source, closing)]
    hinted = structure.closing_directions(tree, centres, has, command_ranges=cmd, neutral=neutral)
    for j in np.flatnonzero((closing == 0) & (hinted != 0)):
        closing[j], source[j] = hinted[j], "servo ctrlrange"
    for name, sign in opt.closing.items():
        if name not in tree.actuated_joints:
            raise HandLoadError(f"{parsed.source}: --closing names {name!r}, which is not an actuated joint "
                                f"(actuated: {', '.join(tree.actuated_joints)})")
        if sign not in (-1, 0, 1):
            raise HandLoadError(f"--closing {name}={sign}: use +1, -1 or 0")
        j = tree.actuated_joints.index(name)
        closing[j], source[j] = float(sign), "--closing"
    return closing, source


def _open_pose_thumb(parsed: ParsedHand, tree: KinematicTree, canonical: np.ndarray, closing: np.ndarray, fingers, centres,
                     palm: int, known: dict, opt: BuildOptions) -> tuple[np.ndarray, str | None]:
    """The open pose with ``--open JOINT=VALUE`` applied and, unless a recorded or given value sets
    it, the thumb swung into opposition (:func:`structure.oppose_thumb`); also the joint it swung."""
    q = canonical.copy()
    for j, v in opt.open_pose.items():
        if j not in tree.actuated_joints:
            raise HandLoadError(f"{parsed.source}: --open {j}={v}: no actuated joint {j!r} (joints: {', '.join(tree.actuated_joints)})")
        i = tree.actuated_joints.index(j)
        if not tree.lower[i] - 1e-9 <= v <= tree.upper[i] + 1e-9:
            raise HandLoadError(f"{parsed.source}: --open {j}={v}: outside the joint's range [{tree.lower[i]:.4g}, {tree.upper[i]:.4g}]")
        q[i] = v
    if "canonical_list" in known:
        return q, None
    told = {tree.actuated_joints.index(j) for j in [*known.get("canonical", {}), *opt.open_pose] if j in tree.actuated_joints}
    q, j = structure.oppose_thumb(tree, q, closing, fingers, centres, palm, fixed=told)
    return np.clip(q, tree.lower, tree.upper), (tree.actuated_joints[j] if j is not None else None)


def stage_structure(parsed: ParsedHand, tree: KinematicTree, meshes: dict, known: dict, opt: BuildOptions,
                    warnings: list[str]) -> HandStructure:
    """Stage 3: closing directions, open pose, palm, fingers and thumb; geometry above the palm
    (forearm, wrist mount, flange) is dropped from ``meshes`` - it is not the hand's to grasp with."""
    names = tree.link_names
    has = np.array([n in meshes for n in names])
    centres = np.array([meshes[n].bounds.mean(0) if n in meshes else np.zeros(3) for n in names])
    if opt.palm_link is not None and opt.palm_link not in names:
        raise HandLoadError(f"{parsed.source}: --palm-link {opt.palm_link!r}: no such link (links: {', '.join(names)})")
    palm = names.index(opt.palm_link) if opt.palm_link else structure.palm_link(tree, has)
    # ancestors() stops short of the root link 0
    above = [] if opt.keep_above_palm else [l for l in range(tree.num_links) if has[l] and palm not in tree.ancestors(l) + [0]]
    for l in above:
        meshes.pop(names[l])
    has = np.array([n in meshes for n in names])
    closing, source = _closing(tree, parsed, centres, has, opt)
    canonical = _with_recorded_open_values(tree, structure.open_pose(tree, closing, neutral_pose(tree, parsed)), known)
    if opt.thumb_link is not None:
        if opt.thumb_link not in names:
            raise HandLoadError(f"{parsed.source}: --thumb {opt.thumb_link!r}: no such link")
        thumb_names = np.array([n == opt.thumb_link for n in names])
    else:
        thumb_names = np.array([is_thumb_link(n) for n in names])
    fingers = structure.find_fingers(tree, has, canonical, centres, closing, thumb_names, palm=palm)
    if opt.thumb_link is not None and not any(f.thumb for f in fingers):
        raise HandLoadError(f"{parsed.source}: --thumb {opt.thumb_link!r} is on no finger (fingers end at "
                            f"{', '.join(names[f.tip] for f in fingers)})")
    warnings += _ambiguous_thumb(tree, canonical, closing, fingers, centres, thumb_names)
    canonical, opposed = _open_pose_thumb(parsed, tree, canonical, closing, fingers, centres, palm, known, opt)
    # a finger none of whose joints closes cannot grasp: the one guess we must not make silently
    for f in fingers:
        chain = [l for l in tree.ancestors(f.tip) if l not in tree.ancestors(palm)]
        joints = sorted({int(tree.q_index[l]) for l in chain if tree.q_index[l] >= 0})
        if joints and not any(closing[j] for j in joints):
            js = [tree.actuated_joints[j] for j in joints]
            warnings.append(f"finger ending at {names[f.tip]!r}: none of its joints ({', '.join(js)}) has a closing direction "
                            f"(ranges symmetric about 0, no servo ctrlrange): it gets no palmar candidates; pass "
                            f"--closing {js[0]}=+1 or -1")
    # geometry above the palm went (a forearm, a wrist mount), but the hand is still rooted there:
    # synthesis places the root near the object, so a palm far from the root starts far from it
    # (gymnasium-robotics' Shadow: palm 0.30 m up the forearm from its mount, 44 % strict on the apple
    # rooted at the mount, 94 % rooted at the palm)
    if above and opt.root_link is None:
        Tc = tree.forward_numpy(canonical)
        off = float(np.linalg.norm(structure.to_root(Tc, palm, centres[palm])))
        if off > PALM_FAR_FROM_ROOT:
            arm = [tree.actuated_joints[j] for j in np.flatnonzero(structure.arm_joints(tree, palm))]
            warnings.append(f"the palm {names[palm]!r} is {off * 1000:.0f} mm from the root {names[0]!r} (links above it "
                            f"dropped: {', '.join(names[l] for l in above)}): synthesis would place the root, not the palm, "
                            f"near the object; pass --root-link {names[palm]}"
                            + (f" (the joints above it, {', '.join(arm)}, go with it)" if arm else ""))
    if len(fingers) >= 3 and not any(f.thumb for f in fingers):
        warnings.append(f"no thumb found among the fingers ending at {', '.join(names[f.tip] for f in fingers)}: "
                        "no pinch grasp type; pass --thumb LINK")
    return HandStructure(has, centres, closing, source, canonical, palm, fingers, [names[l] for l in above], opposed)


def stage_candidates(parsed: ParsedHand, tree: KinematicTree, st: HandStructure, meshes: dict, link_elements: dict,
                     hand_dir: Path, opt: BuildOptions, warnings: list[str], sources: list):
    """Stage 4: contact candidates (link frame points, outward normals, link, rank) - from
    ``contact_points.json`` when present, else on each link's palmar side; buried ones dropped.
    Also returns the raw grasp types of ``eigengrasps.json`` ({} when absent)."""
    names = tree.link_names
    for n in opt.link_candidates:
        if n not in names:
            raise HandLoadError(f"{parsed.source}: link_candidates names link {n!r}, which this hand does not have")
    eg_path = hand_dir / "eigengrasps.json"
    cp_path = hand_dir / "contact_points.json"
    specs = read_contact_points(cp_path, hand_dir) if cp_path.is_file() else None
    if cp_path.is_file():
        sources.append(cp_path)
    types_raw = read_eigengrasps(eg_path) if eg_path.is_file() else {}
    if eg_path.is_file():
        sources.append(eg_path)
    cpts, cnrm, clink, crank = [], [], [], []
    for l, n in enumerate(names):
        if n not in meshes:
            if specs and specs.get(n) and (specs[n].meshes or specs[n].points):
                warnings.append(f"link {n!r} has contact points but no geometry; ignored")
            continue
        want = max([t.get(n, 0) for t in types_raw.values()] + [0])
        pts = []
        if specs is not None:
            spec = specs.get(n)
            if spec is None:
                continue
            els = link_elements[n]
            T = els[-1].origin if els else np.eye(4)  # the reference places contact data in the last element's frame
            S = els[-1].scale if els else np.ones(3)
            for mpath, count in spec.meshes:
                try:
                    cm = trimesh.load(str(mpath), force="mesh", process=True)
                except Exception as e:
                    raise HandLoadError(f"{cp_path}: link {n!r}: cannot read contact mesh {mpath}: {e}") from e
                if not isinstance(cm, trimesh.Trimesh) or len(cm.faces) == 0:
                    raise HandLoadError(f"{cp_path}: link {n!r}: contact mesh {mpath} has no triangles")
                k = max(count, want)
                dense, _ = sample_surface(cm.vertices * S, cm.faces, opt.dense_samples, seed=opt.seed)
                sel = farthest_point_sampling(dense, min(k, len(dense)))
                pts.append(trimesh.transform_points(dense[sel], T))
                sources.append(mpath)
            if spec.points:
                pts.append(trimesh.transform_points(np.asarray(spec.points), T))
        else:
            # no contact file: candidates on the link's palmar side (where it moves when the hand closes)
            k = int(opt.link_candidates.get(n, max(want, opt.default_candidates_per_link)))
            if k <= 0:
                continue
            dense, dn = sample_surface(meshes[n].vertices, meshes[n].faces, opt.dense_samples, seed=opt.seed)
            palmar = structure.palmar_mask(tree, st.canonical, st.closing, np.full(len(dense), l), dense, dn, st.palm, st.fingers, st.centres)
            if n in opt.link_candidates and not palmar.any():
                palmar[:] = True  # asked for by name: the whole surface
            if palmar.sum() < k:
                continue
            dense = dense[palmar]
            pts.append(dense[farthest_point_sampling(dense, k)])
        if not pts:
            continue
        P = np.concatenate(pts)
        cpts.append(P)
        cnrm.append(_closest_normals(meshes[n], P))
        clink.append(np.full(len(P), l))
        crank.append(np.arange(len(P)))
    if not cpts:
        raise HandLoadError(f"{parsed.source}: no contact candidates (no link with both geometry and contact points)")
    P, N, CL, R = np.concatenate(cpts), np.concatenate(cnrm), np.concatenate(clink), np.concatenate(crank)
    if specs is None:
        buried = _buried_candidates(tree, st.canonical, meshes, P, CL)
        if buried.any():
            where = ", ".join(f"{names[l]} {int((buried & (CL == l)).sum())}" for l in np.unique(CL[buried]))
            warnings.append(f"{int(buried.sum())} contact candidates lie inside another link in the open pose (unreachable) "
                            f"and were dropped: {where}")
        keep = ~buried
        if not keep.any():
            raise HandLoadError(f"{parsed.source}: every contact candidate is inside another link")
        P, N, CL = P[keep], N[keep], CL[keep]
        R = np.concatenate([np.arange(int((CL == l).sum())) for l in np.unique(CL)])
    return P, N, CL, R, types_raw


def stage_geometry(parsed: ParsedHand, tree: KinematicTree, meshes: dict, link_elements: dict, hand_dir: Path,
                   opt: BuildOptions, warnings: list[str], sources: list):
    """Stage 5: per-link distance grids (shared between identical links), self-collision surface
    samples, and the reference self-collision spheres of ``penetration_points.json``."""
    names = tree.link_names
    grids: list[LinkGrid] = []
    grid_of_key: dict[str, int] = {}
    link_grid = np.full(tree.num_links, -1, np.int64)
    for l, n in enumerate(names):
        if n not in meshes:
            continue
        parts = [(np.asarray(meshes[n].vertices), np.asarray(meshes[n].faces))] if opt.link_geometry == "hull" else _link_parts(link_elements[n])
        key = _geom_key(parts)
        if key not in grid_of_key:
            grid_of_key[key] = len(grids)
            grids.append(build_link_grid(parts, opt.grid_spacing, opt.grid_margin, opt.grid_max_nodes))
        link_grid[l] = grid_of_key[key]
    if not grids:
        raise HandLoadError(f"{parsed.source}: no link has collision or visual geometry")
    spts, snrm, slink = [], [], []
    for l, n in enumerate(names):
        if n not in meshes:
            continue
        dense, dn = sample_surface(meshes[n].vertices, meshes[n].faces, opt.dense_samples, seed=opt.seed)
        sel = farthest_point_sampling(dense, min(opt.surface_points_per_link, len(dense)))
        spts.append(dense[sel])
        snrm.append(dn[sel])
        slink.append(np.full(len(sel), l))
    spheres, sphere_links = np.zeros((0, 4)), np.zeros(0, np.int64)
    pp_path = hand_dir / "penetration_points.json"
    if pp_path.is_file():
        sources.append(pp_path)
        rows, lks = [], []
        for link, sph in read_penetration_points(pp_path).items():
            if link not in names:
                warnings.append(f"penetration_points.json names link {link!r}, which this hand does not have; ignored")
                continue
            els = link_elements.get(link) or []
            T = els[-1].origin if els else np.eye(4)
            c = trimesh.transform_points(sph[:, :3], T)
            rows.append(np.concatenate([c, sph[:, 3:]], 1))
            lks.append(np.full(len(sph), names.index(link)))
        if rows:
            spheres, sphere_links = np.concatenate(rows), np.concatenate(lks)
    surface = (np.concatenate(spts), np.concatenate(snrm), np.concatenate(slink))
    return grids, link_grid, surface, spheres, sphere_links


def stage_grasp_types(tree: KinematicTree, st: HandStructure, per_link: dict[str, int], types_raw: dict,
                      warnings: list[str]) -> dict[str, GraspType]:
    """Stage 6: grasp types from ``eigengrasps.json``, else proposed from the finger structure;
    ``full`` (every contact link) and ``fingertip`` (outermost contact link per finger) always exist."""
    names = tree.link_names
    grasp_types: dict[str, GraspType] = {}
    if not types_raw:
        lid = {n: i for i, n in enumerate(names)}
        proposed = structure.propose_grasp_types(tree, st.fingers, st.palm, {lid[n] for n in per_link}, st.canonical, st.closing, st.centres)
        types_raw = {t: {names[l]: per_link[names[l]] for l in links} for t, links in proposed.items()}
    for tname, links in types_raw.items():
        known_links = {k: min(v, per_link[k]) for k, v in links.items() if k in per_link}
        for k in links:
            if k not in per_link:
                warnings.append(f"grasp type {tname!r}: link {k!r} has no contact candidates; ignored")
        if not known_links:
            warnings.append(f"grasp type {tname!r} has no usable links; dropped")
            continue
        grasp_types[tname] = _grasp_type(tname, known_links, tree, st.closing)
    if "full" not in grasp_types:
        grasp_types["full"] = GraspType("full", dict(per_link), [])
    if "fingertip" not in grasp_types:
        # the outermost contact link of every finger: no other contact link below it
        idx = {n: i for i, n in enumerate(names)}
        below = {a for link in per_link for a in tree.ancestors(idx[link])[1:]}
        tips = {k: v for k, v in per_link.items() if idx[k] not in below}
        if tips and all(tips != g.links for g in grasp_types.values()):
            grasp_types["fingertip"] = _grasp_type("fingertip", tips, tree, st.closing)
    return grasp_types


def _with_recorded_open_values(tree: KinematicTree, q: np.ndarray, known: dict) -> np.ndarray:
    """``q`` (D,) with a known hand's recorded open pose (``canonical_list``, then ``canonical`` by
    joint name) put over it, clipped into the joint limits."""
    q = np.array(q, float)
    if "canonical_list" in known and len(known["canonical_list"]) == tree.dof:
        q = np.asarray(known["canonical_list"], float)
    for j, v in known.get("canonical", {}).items():
        if j in tree.actuated_joints:
            q[tree.actuated_joints.index(j)] = v
    return np.clip(q, tree.lower, tree.upper)


def _known_axes_below(tree: KinematicTree, root_link: str, known: dict) -> dict:
    """``known`` with its recorded axes (facts about the file's root frame) turned into the frame of
    ``root_link``, which becomes the root under ``--root-link``; the joints above it at their
    recorded open values (0 clipped into range where none is recorded)."""
    if root_link not in tree.link_names:
        return known  # stage_couplings names the bad link
    q = _with_recorded_open_values(tree, np.zeros(tree.dof), known)
    R = tree.forward_numpy(q)[tree.link_names.index(root_link), :3, :3]
    return {**known, "approach_axis": (R.T @ np.asarray(known["approach_axis"], float)).tolist(),
            "up_axis": (R.T @ np.asarray(known["up_axis"], float)).tolist()}


def stage_frame(parsed: ParsedHand, tree: KinematicTree, st: HandStructure, known: dict, opt: BuildOptions,
                contact_normals: np.ndarray, contact_links: np.ndarray, warnings: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """The hand frame: approach and up axes (root frame, unit) and where they came from.

    The hand must approach palm first (hands: the candidates face along the approach axis) or
    fingertips first (grippers, whose pads face each other). An inferred approach axis that points
    away from the fingers is flipped (warned); one given by ``--approach`` or recorded for a known
    hand is kept, with a warning.
    """
    if opt.approach is not None:
        approach, how = parse_axis(opt.approach), "--approach"
        up = parse_axis(opt.up) if opt.up is not None else np.asarray(known.get("up_axis", [0.0, 0.0, 0.0]), float)
        if np.linalg.norm(up - approach * (up @ approach)) < 1e-6:
            up = np.cross(approach, [1.0, 0, 0] if abs(approach[0]) < 0.9 else [0, 1.0, 0])
    elif "approach_axis" in known:
        approach, up, how = np.asarray(known["approach_axis"], float), np.asarray(known["up_axis"], float), "recorded (hands/known.py)"
    else:
        approach, up = structure.hand_axes(tree, st.canonical, st.centres, st.palm, st.fingers, st.closing)
        how = "inferred"
    if opt.up is not None:
        up = parse_axis(opt.up)
    approach = approach / np.linalg.norm(approach)
    up = up - approach * (up @ approach)
    if np.linalg.norm(up) < 1e-6:
        raise HandLoadError(f"{parsed.source}: up axis is parallel to the approach axis")
    up = up / np.linalg.norm(up)
    Tc = tree.forward_numpy(st.canonical)
    facing = float(np.einsum("cij,cj->ci", Tc[contact_links, :3, :3], contact_normals).mean(0) @ approach)
    tips = structure.leaf_links(tree, st.has_geometry)
    reach = float((structure.to_root(Tc, tips, st.centres[tips]).mean(0) - structure.to_root(Tc, st.palm, st.centres[st.palm])) @ approach) if tips else 0.0
    if approach_points_away(facing, reach):
        why = (f"the contact candidates face against it (mean normal . approach = {facing:.2f}) and the fingertips lie "
               f"{reach * 1000:.0f} mm along it from the palm")
        if how != "inferred":  # the user's or the reference's word: kept, but said
            warnings.append(f"the approach axis {np.round(approach, 3).tolist()} ({how}) points away from the palm: {why}; kept")
        else:
            warnings.append(f"the {how} approach axis {np.round(approach, 3).tolist()} pointed away from the fingers ({why}); "
                            f"flipped to {np.round(-approach, 3).tolist()}; pass --approach to choose another")
            approach, how = -approach, how + ", flipped"
    return approach, up, how


#: A palm farther than this (m) from the root, with the links between dropped as an arm, gets a
#: --root-link warning: the reference hands' roots are at their palms (within ~0.1 m).
PALM_FAR_FROM_ROOT = 0.10

#: Fingertips this far (m) ahead of the palm along the approach axis make it a fingertips-first
#: approach whatever way the candidates face.
TIPS_AHEAD = 0.02


def approach_points_away(facing: float, reach: float) -> bool:
    """Whether an approach axis points away from the hand's grasping side.

    ``facing``: mean contact-candidate normal . approach in the open pose (hands that approach palm
    first: clearly positive); ``reach`` (m): fingertips' mean position minus the palm's along the
    approach (grippers that approach fingertips first: clearly positive). Away when the fingertips
    lie behind the palm and the candidates do not face along it, or when the candidates face against
    it and the fingertips are not ahead either. A gripper whose curled pads face back towards its
    palm (the Robotiq 3-finger: facing -0.21, tips 142 mm ahead) approaches fingertips first; that
    is not away.
    """
    return (reach < 0 and facing <= 0) or (facing < -0.2 and reach < TIPS_AHEAD)


def _axis_name(v: np.ndarray) -> str:
    """``+z`` for an axis within 1 deg of a frame axis, else the rounded vector."""
    k = int(np.argmax(np.abs(v)))
    if abs(v[k]) > 0.9998:
        return ("+" if v[k] > 0 else "-") + "xyz"[k]
    return ",".join(f"{x:.3f}" for x in v)


#: A thumb found by geometry is a guess worth a warning when another finger's score
#: (:func:`structure.thumb_scores`) is within this of the thumb's.
THUMB_SCORE_MARGIN = 0.3


def _ambiguous_thumb(tree: KinematicTree, q: np.ndarray, closing: np.ndarray, fingers: list, centres: np.ndarray,
                     thumb_names: np.ndarray) -> list[str]:
    """A warning naming ``--thumb`` when the thumb was picked by geometry (no link named like one)
    and another finger closes against the rest almost as much."""
    if len(fingers) < 3 or any(thumb_names[l] for f in fingers for l in f.links):
        return []
    score = structure.thumb_scores(tree, q, closing, fingers, centres)
    order = np.argsort(score)
    if score[order[1]] - score[order[0]] >= THUMB_SCORE_MARGIN:
        return []
    names = tree.link_names
    chosen = f"{names[fingers[order[0]].tip]!r}" if score[order[0]] < 0 else "none"
    listed = ", ".join(f"{names[f.tip]} {s:+.2f}" for f, s in zip(fingers, score))
    return [f"thumb guessed by geometry as {chosen}, but no finger closes clearly against the others (opposition "
            f"scores {listed}; -1 is straight against them): pass --thumb LINK to name the thumb's tip"]


def inference_report(parsed: ParsedHand, tree: KinematicTree, st: HandStructure, approach: np.ndarray, up: np.ndarray,
                     axes_from: str, opt: BuildOptions) -> dict:
    """JSON-friendly record of every guess the build made and what settles it (printed by ``hands import``)."""
    names = tree.link_names
    couplings = [{"joint": tree.joint_names[l], "follows": tree.actuated_joints[tree.q_index[l]],
                  "multiplier": float(tree.multiplier[l]), "offset": float(tree.offset[l])}
                 for l in range(tree.num_links) if tree.q_index[l] >= 0 and tree.joint_names[l] not in tree.actuated_joints]
    thumbs = [names[f.tip] for f in st.fingers if f.thumb]
    return {
        "angle_unit": parsed.notes.get("angle", "radian (URDF)" if parsed.source.suffix.lower() == ".urdf" else "radian"),
        "root_link": names[0] + (" (--root-link)" if opt.root_link else ""),
        "palm": names[st.palm] + (" (--palm-link)" if opt.palm_link else " (inferred: deepest link above every fingertip)"),
        "above_palm_dropped": list(st.above_palm),
        "fingers": [[names[l] for l in f.links] for f in st.fingers],
        "thumb": (thumbs[0] if thumbs else None),
        "thumb_from": "--thumb" if opt.thumb_link else ("name or geometry" if thumbs else "none found"),
        "approach_axis": _axis_name(approach),
        "up_axis": _axis_name(up),
        "axes_from": axes_from,
        "closing": {j: {"sign": int(st.closing[i]), "from": st.closing_source[i]} for i, j in enumerate(tree.actuated_joints)},
        "thumb_opposed_by": st.thumb_opposed,  # the joint that swung the thumb into opposition (--open)
        "couplings": couplings,
        "couplings_from": list(parsed.notes.get("couplings_from", [])) + [f"--couple {j}={d}:{m:g}:{o:g}" for j, (d, m, o) in opt.couplings.items()],
        "link_geometry": opt.link_geometry,
    }


def build_hand_description(
    parsed: ParsedHand,
    hand_dir: Path | None = None,
    name: str | None = None,
    options: BuildOptions | None = None,
) -> HandDescription:
    """Build a description from a parsed URDF/MJCF and, when present in ``hand_dir``, the reference
    JSON files (``contact_points.json``, ``penetration_points.json``, ``eigengrasps.json``).

    Stages, each a function: parse (the caller: :func:`~graspforge.hands.urdf.parse_urdf` /
    :func:`~graspforge.hands.mjcf.parse_mjcf`) -> :func:`stage_couplings` -> :func:`stage_link_meshes` +
    :func:`stage_structure` -> :func:`stage_candidates` -> :func:`stage_geometry` -> :func:`stage_grasp_types`
    -> :func:`stage_frame`. What was inferred is in ``provenance["inferred"]`` (:func:`inference_report`).
    Deterministic: the same inputs and options give the same arrays.
    """
    opt = options or BuildOptions()
    hand_dir = Path(hand_dir) if hand_dir is not None else parsed.source.parent
    warnings = list(parsed.warnings)
    known = KNOWN_HANDS.get(parsed.name, {}) if opt.use_known_facts else {}
    if opt.root_link and "approach_axis" in known:
        known = _known_axes_below(parsed.tree, opt.root_link, known)
    sources = [parsed.source]
    tree = stage_couplings(parsed, known, opt, warnings)
    _warn_mirrored_servos(parsed, tree, warnings)
    if tree.dof == 0:  # a tool (robosuite's wiping_gripper), not a hand: nothing to close
        raise HandLoadError(f"{parsed.source}: no movable joint below the root {tree.link_names[0]!r}: a rigid tool, "
                            "not a hand or gripper (nothing closes)")
    link_elements, meshes = stage_link_meshes(parsed, tree, opt, warnings)
    if not meshes:
        raise HandLoadError(f"{parsed.source}: no link has collision or visual geometry")
    st = stage_structure(parsed, tree, meshes, known, opt, warnings)
    P, N, CL, R, types_raw = stage_candidates(parsed, tree, st, meshes, link_elements, hand_dir, opt, warnings, sources)
    grids, link_grid, (spts, snrm, slink), spheres, sphere_links = stage_geometry(parsed, tree, meshes, link_elements, hand_dir, opt, warnings, sources)
    per_link = {tree.link_names[l]: int((CL == l).sum()) for l in np.unique(CL)}
    grasp_types = stage_grasp_types(tree, st, per_link, types_raw, warnings)
    approach, up, axes_from = stage_frame(parsed, tree, st, known, opt, N, CL, warnings)

    uniq = sorted({str(p) for p in sources})
    provenance = {
        "generated_by": f"graspforge {__version__}",
        "source": str(parsed.source.name),
        "source_files_sha256": {_rel(Path(p), hand_dir): _file_sha(Path(p)) for p in uniq},
        "options": vars(opt),
        "inferred": inference_report(parsed, tree, st, approach, up, axes_from, opt),
    }
    desc = HandDescription(
        name=name or hand_dir.name or parsed.name, tree=tree, contact_points=P, contact_normals=N, contact_links=CL,
        contact_rank=R, link_grid=link_grid, grids=grids, surface_points=spts, surface_normals=snrm, surface_links=slink,
        spheres=spheres, sphere_links=sphere_links, grasp_types=grasp_types, canonical_q=st.canonical, approach_axis=approach,
        up_axis=up, contacts=PAPER_CONTACTS if (hand_dir / "contact_points.json").is_file() else AUTO_CANDIDATE_CONTACTS,
        provenance=provenance, source=parsed.source, warnings=warnings,
    )
    desc.validate()
    return desc


def _buried_candidates(tree: KinematicTree, q: np.ndarray, meshes: dict, points: np.ndarray, links: np.ndarray,
                       depth: float = 0.002) -> np.ndarray:
    """(C,) bool: candidates more than ``depth`` m inside another link's geometry at pose ``q``
    (a proximal phalanx's palmar side tucked under the palm, say): no object can reach them."""
    T = tree.forward_numpy(q)
    names = tree.link_names
    world = structure.to_root(T, links, points)
    out = np.zeros(len(points), bool)
    for l, n in enumerate(names):
        if n not in meshes:
            continue
        other = links != l
        if not other.any():
            continue
        local = (world[other] - T[l, :3, 3]) @ T[l, :3, :3]
        m = meshes[n]
        lo, hi = m.bounds
        near = np.all((local > lo - depth) & (local < hi + depth), axis=1)
        if not near.any():
            continue
        d, _, _ = exact_signed_distance(m.vertices, m.faces, local[near])
        idx = np.flatnonzero(other)[near]
        out[idx] |= np.asarray(d) > depth
    return out
