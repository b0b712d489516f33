"""Grasp sets written in the file formats other grasp projects read, and read back.

- ``dexgraspnet``: one ``OBJECT.npy`` per (hand, type, object) holding a list of dicts
  ``{"scale", "qpos", "energy", "E_dis", ...}`` (DexGraspNet's layout). ``qpos`` maps
  ``WRJTx/y/z`` (root translation, m), ``WRJRx/y/z`` (root rotation as static-axis x-y-z Euler
  angles, transforms3d's default ``sxyz``) and every actuated joint name to a float. Pre-grasp and
  squeeze targets ride along as ``qpos_pregrasp`` / ``qpos_squeeze`` (same keys), which
  DexGraspNet's own readers ignore. DexGraspNet's loaders read only its Shadow hand
  (``mjcf/shadow_hand_wrist_free.xml``: a free palm, no wrist joints, joints ``robot0:FFJ3`` ...):
  grasps of graspforge's ``shadow_hand`` are written in that model, ``WRJT*`` / ``WRJR*`` the pose
  of the ``robot0_palm`` link (the wrist joints folded in) and its 22 joint names, with
  graspforge's own root-link ``qpos`` dicts under ``graspforge``.
- ``graspqp``: one ``OBJECT.dexgrasp.pt`` (a ``torch.save`` dict) per job, in GraspQP's folder
  layout ``OBJECT/grasp_predictions/HAND/K_contacts/ENERGY/TYPE/`` (TYPE ``default`` for the full
  hand): ``values`` (N,) energies, ``parameters`` = {joint: (N,)} plus ``root_pose`` (N, 7)
  x y z qw qx qy qz, ``grasp_velocities`` = {joint: (N,)} the squeeze offsets (squeeze - grasp),
  ``contact_idx`` (N, K), ``grasp_type``, ``contact_links``; graspforge's extras (pre-grasp, object
  source and scale) under ``graspforge``.
- ``dexgraspbench``: one ``I.npy`` dict per grasp in ``HAND/TYPE/OBJECT/`` with ``obj_path``,
  ``obj_scale``, ``obj_pose`` (7, identity: grasps live in the object frame) and
  ``pregrasp_qpos`` / ``grasp_qpos`` / ``squeeze_qpos`` = [x y z qw qx qy qz, joints...].

Poses are the hand *root link* of graspforge's hand description, in the object's frame, with the
joints in the description's order (``joint_names`` in every manifest). Projects whose hand files put
the root elsewhere (DexGraspBench's MJCF palms) need that fixed offset applied by the user.

The readers never unpickle anything but plain containers and numpy arrays (a restricted
unpickler for ``.npy`` object arrays; ``torch.load(weights_only=True)`` for ``.pt``).
"""

from __future__ import annotations

import io
import pickle
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import trimesh
import trimesh.transformations as tf
from scipy.spatial.transform import Rotation

from .._io import atomic_write_bytes, atomic_write_json, safe_filename
from ..errors import GraspforgeError, HandLoadError
from ..hands import load_hand_description
from ..hands.alignment import align_to_mjcf, mjcf_body_pose
from ..hands.kinematics import link_world_pose
from ..objects import collision_pieces, load_recorded_object
from .dataset_index import read_dataset_index
from .grasp_set import GraspSet

EXPORT_FORMATS = ("dexgraspnet", "graspqp", "dexgraspbench")
DGN_TRANSLATION = ("WRJTx", "WRJTy", "WRJTz")
DGN_ROTATION = ("WRJRx", "WRJRy", "WRJRz")
#: the joints DexGraspNet's loaders read (its Shadow hand, grasp_generation/mjcf/shadow_hand_wrist_free.xml), in their order
DGN_SHADOW_JOINTS = tuple("robot0:" + j for j in (
    "FFJ3 FFJ2 FFJ1 FFJ0 MFJ3 MFJ2 MFJ1 MFJ0 RFJ3 RFJ2 RFJ1 RFJ0 LFJ4 LFJ3 LFJ2 LFJ1 LFJ0 THJ4 THJ3 THJ2 THJ1 THJ0").split())
#: the link of graspforge's shadow_hand whose frame is DexGraspNet's free root (its "robot0:palm" body)
DGN_SHADOW_PALM = "robot0_palm"
#: GraspQP names the full-hand grasp type's folder "default"
_GRASPQP_DEFAULT = "default"


class ExportError(GraspforgeError, ValueError):
    """A grasp file in a foreign format that cannot be written or read."""


@dataclass
class ExportedGrasps:
    """What a foreign-format file holds, as arrays: root pose (N, 3) m and (N, 4) w-x-y-z in the
    object frame, joints (N, D) in ``joint_names`` order; ``pregrasp`` / ``squeeze`` may be None
    where the format has no place for them."""

    joint_names: list[str]
    root_position: np.ndarray
    root_quaternion: np.ndarray
    joint_positions: np.ndarray
    pregrasp_joint_positions: np.ndarray | None
    squeeze_joint_positions: np.ndarray | None
    energy: np.ndarray | None
    object_scale: float
    grasp_type: str | None = None

    def __len__(self) -> int:
        return len(self.root_position)


# -- safe reading of pickled .npy files --------------------------------------------------------
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    # np.load(allow_pickle=True) would run any callable a file names; these files come from other
    # people, so only numpy's array/scalar reconstructors are let through
    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays and plain containers are read)")


def load_npy_safely(path: str | Path):
    """The content of a ``.npy`` file; object arrays (lists/dicts saved with ``np.save``) are
    unpickled with numpy's reconstructors as the only allowed globals. 0-d object arrays are
    returned as their element."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ExportError(f"{path}: cannot read ({e.strerror or e})") from e
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if not dtype.hasobject:
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
        arr = _NumpyOnlyUnpickler(f).load()
    except Exception as e:  # foreign bytes fail in many ways (numpy's header parser alone raises tokenize errors)
        raise ExportError(f"{path}: not a readable .npy file ({type(e).__name__}: {e})") from e
    if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
        raise ExportError(f"{path}: malformed object array")
    return arr.item() if arr.shape == () else arr


def _float(v, where: str) -> float:
    try:
        x = float(np.asarray(v, dtype=np.float64).reshape(()))
    except (TypeError, ValueError) as e:
        raise ExportError(f"{where}: not a number ({type(v).__name__})") from e
    if not np.isfinite(x):
        raise ExportError(f"{where}: not finite")
    return x


# -- rotations -------------------------------------------------------------------------------
def quaternion_to_euler_sxyz(q: np.ndarray) -> np.ndarray:
    """(N, 4) w-x-y-z -> (N, 3) static-axis x-y-z Euler angles (rad)."""
    return np.array([tf.euler_from_matrix(tf.quaternion_matrix(qi), "sxyz") for qi in np.asarray(q, np.float64)]).reshape(-1, 3)


def euler_sxyz_to_quaternion(e: np.ndarray) -> np.ndarray:
    """(N, 3) static-axis x-y-z Euler angles (rad) -> (N, 4) w-x-y-z unit quaternions (w >= 0)."""
    q = np.array([tf.quaternion_from_euler(*ei, axes="sxyz") for ei in np.asarray(e, np.float64)]).reshape(-1, 4)
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)


# -- writers ---------------------------------------------------------------------------------
def _energy_method(gs: GraspSet) -> str:
    try:
        return str(tomllib.loads(gs.config_toml).get("energy", {}).get("method", "graspqp"))
    except (tomllib.TOMLDecodeError, AttributeError):
        return "graspqp"


def _qpos_dict(names: list[str], root_position: np.ndarray, euler: np.ndarray, q: np.ndarray) -> dict[str, float]:
    d = {k: float(v) for k, v in zip(DGN_TRANSLATION, root_position)}
    d.update({k: float(v) for k, v in zip(DGN_ROTATION, euler)})
    d.update({n: float(v) for n, v in zip(names, q)})
    return d


def _npy_bytes(obj) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(obj, dtype=object) if isinstance(obj, list) else obj, allow_pickle=True)
    return buf.getvalue()


def _object_stem(gs: GraspSet) -> str:
    return safe_filename(gs.object_name, "object")


def _dexgraspnet_shadow(gs: GraspSet):
    """(kinematic tree, palm link index, our index of each of DexGraspNet's joints) when ``gs`` is of
    a Shadow hand whose joints are DexGraspNet's (``robot0_FFJ3`` for ``robot0:FFJ3``) and whose
    description has the ``robot0_palm`` link; else None. That link's frame is DexGraspNet's root and
    the joints turn alike (graspforge's shadow_hand checked against DexGraspNet's MJCF with its own
    kinematics: bench/peer_loaders.py)."""
    names = list(gs.joint_names)
    ours = [n.replace("robot0:", "robot0_") for n in DGN_SHADOW_JOINTS]
    if not set(ours) <= set(names):
        return None
    try:
        desc = load_hand_description(gs.hand)
    except GraspforgeError:
        return None
    tree = desc.tree
    if list(desc.joint_names) != names or DGN_SHADOW_PALM not in tree.link_names:
        return None
    return tree, tree.link_names.index(DGN_SHADOW_PALM), [names.index(n) for n in ours]


def write_dexgraspnet(gs: GraspSet, out: str | Path) -> list[Path]:
    """``OUT/HAND/TYPE/OBJECT.npy``: DexGraspNet's list of qpos dicts (a Shadow hand's in
    DexGraspNet's own model, see the module docstring)."""
    path = Path(out) / gs.hand / gs.grasp_type / f"{_object_stem(gs)}.npy"
    euler = quaternion_to_euler_sxyz(gs.root_quaternion)
    names = list(gs.joint_names)
    shadow = _dexgraspnet_shadow(gs) if len(gs) else None
    targets = {"qpos": gs.joint_positions, "qpos_pregrasp": gs.pregrasp_joint_positions, "qpos_squeeze": gs.squeeze_joint_positions}
    theirs = {}
    if shadow is not None:  # the palm's pose per target (the wrist joints move it), DexGraspNet's joints
        tree, palm, idx = shadow
        for key, q in targets.items():
            pos, rot = link_world_pose(tree, palm, gs.root_position, gs.root_quaternion, q)
            eul = np.array([tf.euler_from_matrix(r, "sxyz") for r in rot]).reshape(-1, 3)
            theirs[key] = [_qpos_dict(list(DGN_SHADOW_JOINTS), pos[i], eul[i], q[i, idx]) for i in range(len(gs))]
    rows = []
    for i in range(len(gs)):
        ours = {key: _qpos_dict(names, gs.root_position[i], euler[i], q[i]) for key, q in targets.items()}
        row = {"scale": float(gs.object_scale)}
        if theirs:
            row.update({key: v[i] for key, v in theirs.items()})
            row["graspforge"] = {"frame": "root link", "joint_names": names, **ours}
        else:
            row.update(ours)
        row["energy"] = float(gs.energy[i])
        for k, v in gs.terms.items():  # energy_dis -> E_dis, DexGraspNet's names
            row["E_" + k.removeprefix("energy_")] = float(v[i])
        rows.append(row)
    atomic_write_bytes(path, _npy_bytes(rows))
    return [path]


def write_graspqp(gs: GraspSet, out: str | Path) -> list[Path]:
    """``OUT/OBJECT/grasp_predictions/HAND/K_contacts/ENERGY/TYPE/OBJECT.dexgrasp.pt``."""
    stem = _object_stem(gs)
    K = int(np.shape(gs.contact_indices)[1])
    tdir = _GRASPQP_DEFAULT if gs.grasp_type == "full" else gs.grasp_type
    path = Path(out) / stem / "grasp_predictions" / gs.hand / f"{K}_contacts" / _energy_method(gs) / tdir / f"{stem}.dexgrasp.pt"

    def columns(a: np.ndarray) -> dict[str, torch.Tensor]:
        return {n: torch.tensor(a[:, j], dtype=torch.float32) for j, n in enumerate(gs.joint_names)}

    params = columns(gs.joint_positions)
    params["root_pose"] = torch.tensor(np.concatenate([gs.root_position, gs.root_quaternion], 1), dtype=torch.float32)
    data = {
        "values": torch.tensor(gs.energy, dtype=torch.float32),
        "parameters": params,
        "grasp_velocities": columns(gs.squeeze_joint_positions - gs.joint_positions),
        "contact_idx": torch.tensor(gs.contact_indices, dtype=torch.long),
        "grasp_type": None if gs.grasp_type == "full" else gs.grasp_type,
        "contact_links": [list(map(str, r)) for r in gs.contact_links],
        "graspforge": {
            "format": 1, "hand": gs.hand, "grasp_type": gs.grasp_type, "joint_names": list(gs.joint_names),
            "pregrasp": columns(gs.pregrasp_joint_positions), "object_name": gs.object_name,
            "object_source": gs.object_source, "object_scale": float(gs.object_scale),
            # float32 loses sub-micrometre detail; the exact values ride along in float64
            "root_pose": torch.tensor(np.concatenate([gs.root_position, gs.root_quaternion], 1), dtype=torch.float64),
        },
    }
    buf = io.BytesIO()
    torch.save(data, buf)
    atomic_write_bytes(path, buf.getvalue())
    return [path]


#: DexGraspBench sets an object's mass from this file: density' = obj_mass / (mass / (density scale^3) * obj_scale^3)
DGB_DENSITY = 1000.0


def write_dexgraspbench_object(gs: GraspSet, out: str | Path) -> Path:
    """The object of ``gs`` in DexGraspBench's object layout (what ``obj_path`` names), under
    ``OUT/objects/OBJECT-HASH8/``: ``urdf/meshes/convex_piece_NNN.obj`` (the convex pieces
    graspforge's evaluation simulates, in metres: ``obj_scale`` 1), ``mesh/simplified.obj`` (the
    mesh), and ``info/simplified.json`` (``mass`` / ``density`` / ``scale``, from which DexGraspBench
    derives the pieces' volume to set its own object mass), written last. Made once per object."""
    folder = Path(out) / "objects" / f"{_object_stem(gs)}-{gs.object_hash[:8]}"
    info = folder / "info" / "simplified.json"
    if info.is_file():
        return folder
    try:
        obj = load_recorded_object(gs.object_source, gs.object_scale, gs.object_hash, where=f"{gs.object_name} ({gs.hand})")
    except (GraspforgeError, OSError, ValueError) as e:
        raise ExportError(f"cannot write the object of {gs.object_name!r} for DexGraspBench: {e}") from e
    pieces, origin = collision_pieces(obj)
    volume = 0.0
    for i, (v, f) in enumerate(pieces):
        m = trimesh.Trimesh(np.asarray(v), np.asarray(f), process=False)
        volume += abs(float(m.volume))
        atomic_write_bytes(folder / "urdf" / "meshes" / f"convex_piece_{i:03d}.obj", m.export(file_type="obj").encode())
    mesh = trimesh.Trimesh(np.asarray(obj.vertices), np.asarray(obj.faces), process=False)
    atomic_write_bytes(folder / "mesh" / "simplified.obj", mesh.export(file_type="obj").encode())
    atomic_write_json(info, {"mass": DGB_DENSITY * volume, "density": DGB_DENSITY, "scale": 1.0,
                             "graspforge": {"object": gs.object_name, "source": gs.object_source, "scale": gs.object_scale,
                                            "content_hash": gs.object_hash, "pieces": len(pieces), "pieces_from": origin}})
    return folder


def write_dexgraspbench(gs: GraspSet, out: str | Path, alignment=None) -> list[Path]:
    """``OUT/HAND/graspdata/TYPE/OBJECT/I.npy``: one DexGraspBench dict per grasp, and the object in
    its layout (:func:`write_dexgraspbench_object`). ``OUT/HAND`` is what DexGraspBench calls a
    ``save_dir``.

    With ``alignment`` (:class:`graspforge.hands.alignment.HandAlignment` of the hand to a
    DexGraspBench MJCF) the qpos vectors are in DexGraspBench's hand model: the pose of its MJCF
    frame and its joints in its order; without, in graspforge's (root link, ``joint_names``), which
    DexGraspBench cannot execute."""
    obj_dir = write_dexgraspbench_object(gs, out)
    folder = Path(out) / gs.hand / "graspdata" / gs.grasp_type / _object_stem(gs)
    pos, quat = gs.root_position, gs.root_quaternion
    joints = {"pregrasp_qpos": gs.pregrasp_joint_positions, "grasp_qpos": gs.joint_positions, "squeeze_qpos": gs.squeeze_joint_positions}
    names = list(gs.joint_names)
    poses = {k: np.concatenate([pos, quat], 1) for k in joints}
    if alignment is not None:
        # per target: with joints folded into the root (a wrist their model lacks) the root moves too
        poses = {k: np.concatenate(alignment.root_pose(pos, quat, v), 1) for k, v in joints.items()}
        joints = {k: alignment.joints(v) for k, v in joints.items()}
        names = list(alignment.joint_names)
    paths = []
    for i in range(len(gs)):
        d = {
            "obj_path": str(obj_dir.resolve()), "obj_scale": 1.0,
            "obj_pose": np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
            **{k: np.concatenate([poses[k][i], v[i]]) for k, v in joints.items()},
            "joint_names": names, "hand": gs.hand, "hand_model": alignment.model if alignment is not None else gs.hand,
            "grasp_type": gs.grasp_type, "energy": float(gs.energy[i]), "graspforge_index": i,
        }
        p = folder / f"{i}.npy"
        atomic_write_bytes(p, _npy_bytes(d))
        paths.append(p)
    return paths


def in_hand_model(gs: GraspSet, alignment, desc, root_in_frame: tuple[np.ndarray, np.ndarray] | None = None) -> GraspSet:
    """The grasps of ``gs`` as grasps of another model of the same hand: ``desc`` (a
    :class:`~graspforge.hands.description.HandDescription`, e.g. DexGraspBench's Allegro MJCF
    imported) with ``alignment`` (:func:`graspforge.hands.alignment.align_to_mjcf` of the grasps' hand
    to that file) and ``root_in_frame``, the position (3,) m and rotation (3, 3) of ``desc``'s root
    link in the alignment's frame (:func:`graspforge.hands.alignment.mjcf_body_pose`; None: identity).
    Root poses move to that link, joints to its joints (by name, in its order); the object frame,
    contacts and energies stay. For simulating grasps in the hand that will execute them.

    When the alignment's frame hangs below joints that model lacks (DexGraspBench's Shadow has no
    wrist), each target folds our wrist into its own root pose: the result's root is the grasp
    target's, and ``extra["stage_root_pose"]`` (N, 3, 7) holds the root position (m) and w-x-y-z
    quaternion at the pre-grasp, grasp and squeeze targets, for a simulation that moves the root
    between them (a welded root, as DexGraspBench's mocap does)."""
    names = list(alignment.joint_names)
    missing = [n for n in desc.joint_names if n not in names]
    if missing:
        raise ExportError(f"{alignment.model}: joints {missing[:4]} of hand {desc.name!r} have no counterpart in the alignment")
    cols = [names.index(n) for n in desc.joint_names]

    def root(q_ours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos, quat = alignment.root_pose(gs.root_position, gs.root_quaternion, q_ours if alignment.frame_link else None)
        if root_in_frame is not None:
            R_frame = Rotation.from_quat(quat[:, [1, 2, 3, 0]])
            pos = pos + R_frame.apply(np.asarray(root_in_frame[0], np.float64))
            q = (R_frame * Rotation.from_matrix(root_in_frame[1])).as_quat()[:, [3, 0, 1, 2]]
            quat = q * np.where(q[:, :1] < 0, -1.0, 1.0)
        return pos, quat

    extra = dict(gs.extra)
    if alignment.frame_link:
        stages = [root(q) for q in (gs.pregrasp_joint_positions, gs.joint_positions, gs.squeeze_joint_positions)]
        extra["stage_root_pose"] = np.stack([np.concatenate(s, 1) for s in stages], 1)
        pos, quat = stages[1]
    else:
        pos, quat = root(gs.joint_positions)
    theirs = lambda q: alignment.joints(q)[:, cols]  # noqa: E731
    return replace(gs, hand=desc.name, joint_names=list(desc.joint_names), root_position=pos, root_quaternion=quat,
                   joint_positions=theirs(gs.joint_positions), pregrasp_joint_positions=theirs(gs.pregrasp_joint_positions),
                   squeeze_joint_positions=theirs(gs.squeeze_joint_positions), extra=extra)


def other_hand_model(ours, mjcf: str | Path):
    """Another model of the hand ``ours`` (a :class:`~graspforge.hands.description.HandDescription`),
    from the MJCF file ``mjcf``: its description and the map of our grasp sets into it
    (:func:`in_hand_model`), with the alignment found by forward kinematics of both. Raises
    :class:`~graspforge.errors.HandLoadError` when the file cannot be loaded or is another hand."""
    desc = load_hand_description(mjcf)
    alignment = align_to_mjcf(ours, mjcf)
    root = mjcf_body_pose(mjcf, desc.tree.link_names[0])
    return desc, lambda gs: in_hand_model(gs, alignment, desc, root)


WRITERS = {"dexgraspnet": write_dexgraspnet, "graspqp": write_graspqp, "dexgraspbench": write_dexgraspbench}


def export_grasp_set(gs: GraspSet, fmt: str, out: str | Path, alignment=None) -> list[Path]:
    """Write ``gs`` in format ``fmt`` under folder ``out``; returns the files written.
    ``alignment`` (dexgraspbench only): the hand in DexGraspBench's model."""
    if fmt not in WRITERS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "dexgraspbench":
        return write_dexgraspbench(gs, out, alignment)
    return WRITERS[fmt](gs, out)


# -- readers ---------------------------------------------------------------------------------
def _joint_matrix(rows: list[dict], names: list[str], where: str) -> np.ndarray:
    out = np.empty((len(rows), len(names)))
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise ExportError(f"{where}: grasp {i} is not a dict")
        for j, n in enumerate(names):
            if n not in r:
                raise ExportError(f"{where}: grasp {i} has no joint {n!r}")
            out[i, j] = _float(r[n], f"{where}: grasp {i} joint {n!r}")
    return out


def read_dexgraspnet(path: str | Path, joint_names: list[str]) -> ExportedGrasps:
    """Read a DexGraspNet ``.npy`` list of qpos dicts; ``joint_names`` says which keys are joints, in order."""
    where = str(path)
    data = load_npy_safely(path)
    rows = list(data) if isinstance(data, (np.ndarray, list)) else None
    if not rows or not all(isinstance(r, dict) and isinstance(r.get("qpos"), dict) for r in rows):
        raise ExportError(f"{where}: expected a non-empty list of dicts with a 'qpos' dict")
    # graspforge's own root-link dicts where the file's qpos are DexGraspNet's Shadow model
    ours = [r.get("graspforge") for r in rows]
    src = ours if all(isinstance(g, dict) and isinstance(g.get("qpos"), dict) for g in ours) else rows
    qpos = [r["qpos"] for r in src]
    trans = _joint_matrix(qpos, list(DGN_TRANSLATION), where)
    euler = _joint_matrix(qpos, list(DGN_ROTATION), where)
    names = list(joint_names)

    def optional(key: str) -> np.ndarray | None:
        if all(isinstance(r.get(key), dict) for r in src):
            return _joint_matrix([r[key] for r in src], names, where)
        return None

    energy = np.array([_float(r["energy"], f"{where}: energy") if "energy" in r else np.nan for r in rows])
    return ExportedGrasps(names, trans, euler_sxyz_to_quaternion(euler), _joint_matrix(qpos, names, where), optional("qpos_pregrasp"),
                          optional("qpos_squeeze"), energy, _float(rows[0].get("scale", 1.0), f"{where}: scale"))


def read_graspqp(path: str | Path, joint_names: list[str] | None = None) -> ExportedGrasps:
    """Read a GraspQP ``.dexgrasp.pt`` dict (``torch.load(weights_only=True)``: no arbitrary code)."""
    where = str(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise ExportError(f"{where}: file not found") from e
    except Exception as e:  # torch raises many kinds (zip, unpickling, runtime) on foreign bytes
        raise ExportError(f"{where}: not a readable .dexgrasp.pt file ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("parameters"), dict) or "root_pose" not in data["parameters"]:
        raise ExportError(f"{where}: expected a dict with 'parameters' holding 'root_pose' and the joints")
    params = data["parameters"]
    extra = data.get("graspforge") if isinstance(data.get("graspforge"), dict) else {}
    names = list(joint_names or extra.get("joint_names") or [k for k in params if k != "root_pose"])

    def as_array(v, shape_tail: tuple, what: str) -> np.ndarray:
        try:
            a = np.asarray(v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ExportError(f"{where}: {what} is not numeric") from e
        if a.ndim != 1 + len(shape_tail) or a.shape[1:] != shape_tail or not np.all(np.isfinite(a)):
            raise ExportError(f"{where}: {what} has shape {a.shape} or non-finite values")
        return a

    exact = extra.get("root_pose")
    pose = as_array(exact if exact is not None else params["root_pose"], (7,), "root_pose")
    N = len(pose)

    def joints(d, what: str) -> np.ndarray:
        if not isinstance(d, dict):
            raise ExportError(f"{where}: {what} is not a dict of joints")
        missing = [n for n in names if n not in d]
        if missing:
            raise ExportError(f"{where}: {what} lacks joints {missing[:3]}")
        a = np.stack([as_array(d[n], (), f"{what}[{n!r}]") for n in names], 1) if names else np.zeros((N, 0))
        if len(a) != N:
            raise ExportError(f"{where}: {what} has {len(a)} grasps, root_pose {N}")
        return a

    q = joints(params, "parameters")
    squeeze = q + joints(data["grasp_velocities"], "grasp_velocities") if "grasp_velocities" in data else None
    pre = joints(extra["pregrasp"], "graspforge.pregrasp") if "pregrasp" in extra else None
    energy = as_array(data["values"], (), "values") if "values" in data else None
    gtype = extra.get("grasp_type") or data.get("grasp_type") or "full"
    quat = pose[:, 3:7] / np.linalg.norm(pose[:, 3:7], axis=1, keepdims=True).clip(1e-12)
    return ExportedGrasps(names, pose[:, :3], quat, q, pre, squeeze, energy, float(extra.get("object_scale", 1.0)), str(gtype))


def read_dexgraspbench(paths: list[str | Path], joint_names: list[str] | None = None) -> ExportedGrasps:
    """Read DexGraspBench per-grasp ``.npy`` dicts (one grasp each) into arrays."""
    if not paths:
        raise ExportError("no DexGraspBench files given")
    rows = []
    for p in paths:
        d = load_npy_safely(p)
        if not isinstance(d, dict) or not all(k in d for k in ("grasp_qpos", "pregrasp_qpos", "squeeze_qpos")):
            raise ExportError(f"{p}: expected a dict with pregrasp_qpos, grasp_qpos and squeeze_qpos")
        rows.append((str(p), d))
    arrays = {}
    for key in ("pregrasp_qpos", "grasp_qpos", "squeeze_qpos"):
        try:
            a = np.stack([np.asarray(d[key], dtype=np.float64).reshape(-1) for _, d in rows])
        except (TypeError, ValueError) as e:
            raise ExportError(f"{rows[0][0]}...: {key} is not a vector of the same length in every file ({e})") from e
        if a.shape[1] < 7 or not np.all(np.isfinite(a)):
            raise ExportError(f"{rows[0][0]}...: {key} must hold 7 pose values and the joints, all finite")
        arrays[key] = a
    g = arrays["grasp_qpos"]
    names = list(joint_names or rows[0][1].get("joint_names") or [f"joint_{j}" for j in range(g.shape[1] - 7)])
    if len(names) != g.shape[1] - 7:
        raise ExportError(f"{rows[0][0]}: {g.shape[1] - 7} joints in grasp_qpos, {len(names)} joint names")
    quat = g[:, 3:7] / np.linalg.norm(g[:, 3:7], axis=1, keepdims=True).clip(1e-12)
    energy = np.array([_float(d.get("energy", np.nan), f"{p}: energy") if "energy" in d else np.nan for p, d in rows])
    return ExportedGrasps(names, g[:, :3], quat, g[:, 7:], arrays["pregrasp_qpos"][:, 7:], arrays["squeeze_qpos"][:, 7:], energy,
                          _float(rows[0][1].get("obj_scale", 1.0), f"{rows[0][0]}: obj_scale"), rows[0][1].get("grasp_type"))


# -- whole datasets --------------------------------------------------------------------------
def _grasp_files(source: Path) -> tuple[list[tuple[str, Path]], str | None]:
    """(job, grasp file) pairs of a dataset folder, a folder of grasp files or one grasp file, and the
    dataset root (None for loose files)."""
    if source.is_dir() and ((source / "dataset.toml").is_file() or (source / "index.json").is_file()):
        return [(row["job"], source / row["file"]) for row in read_dataset_index(source)], str(source.resolve())
    if source.is_dir():
        files = sorted(p for p in source.glob("*.npz") if not p.name.startswith("."))
        if not files:
            raise ExportError(f"{source}: neither a graspforge dataset nor a folder of grasp files (.npz)")
        return [(p.stem, p) for p in files], None
    if source.is_file():
        return [(source.stem, source)], None
    raise ExportError(f"{source}: no such file or folder")


def _alignments(sets: list[GraspSet], hand_models: list[str | Path], hand_sources: list[str | Path] = ()) -> tuple[dict, list[str]]:
    """For each hand among ``sets``: its alignment to the first of ``hand_models`` (MJCF files) that
    fits, and notes on the hands none fits. Hands are loaded by name, or from ``hand_sources``
    (folders, URDF/MJCF files) whose description carries the grasp files' hand name."""
    given = {}
    for src in hand_sources:
        d = load_hand_description(str(src))
        given[d.name] = d
    out, notes = {}, []
    for hand in sorted({gs.hand for gs in sets}):
        try:
            desc = given[hand] if hand in given else load_hand_description(hand)
        except GraspforgeError as e:
            raise ExportError(f"grasps of hand {hand!r}: cannot load the hand to align it ({e}); name its source with --hand") from e
        tried = []
        for xml in hand_models:
            try:
                out[hand] = align_to_mjcf(desc, xml)
                break
            except HandLoadError as e:
                tried.append(str(e))
        if hand not in out:
            notes.append(f"{hand}: no DexGraspBench hand model fits ({'; '.join(tried) or 'none given'}): its poses are graspforge's "
                         "root link and joints, which DexGraspBench cannot execute")
    return out, notes


def export_grasps(sources: list[str | Path], fmt: str, out: str | Path | None = None,
                  hand_models: list[str | Path] = (), hand_sources: list[str | Path] = ()) -> dict:
    """Export grasp files to ``out``: every job of each dataset folder in ``sources``, every grasp
    file of a folder, or single grasp files. ``out`` defaults to ``ROOT/exports/FMT`` for one dataset.

    ``hand_models`` (dexgraspbench): MJCF files of DexGraspBench's hands; each grasp set's hand is
    aligned to the one that fits (:func:`graspforge.hands.alignment.align_to_mjcf`) and its grasps
    are written in that model; ``hand_sources`` load hands that are not built-in or imported by name.
    Writes ``out/manifest.json`` (format, conventions, one entry per job,
    warnings) last; rerunning rewrites the same files. Returns the manifest.
    """
    if fmt not in WRITERS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if not sources:
        raise ExportError("nothing to export: give a dataset folder, grasp files or folders of them")
    jobs, roots = [], []
    for src in sources:
        pairs, root = _grasp_files(Path(src))
        jobs += pairs
        roots.append(root)
    if out is None:
        if len(roots) != 1 or roots[0] is None:
            raise ExportError("give --out: the default (DATASET/exports/FORMAT) needs exactly one dataset folder")
        out = Path(roots[0]) / "exports" / fmt
    out = Path(out)
    sets = [GraspSet.load(p) for _, p in jobs]
    aligned, notes = _alignments(sets, list(hand_models), list(hand_sources)) if fmt == "dexgraspbench" and hand_models else ({}, [])
    entries, warnings = [], list(notes)
    for (job, _), gs in zip(jobs, sets):
        al = aligned.get(gs.hand)
        files = export_grasp_set(gs, fmt, out, al) if len(gs) else []
        entry = {"job": job, "object": gs.object_name, "object_source": gs.object_source, "object_scale": gs.object_scale,
                 "hand": gs.hand, "grasp_type": gs.grasp_type, "grasps": len(gs), "joint_names": list(gs.joint_names),
                 "files": [str(f.relative_to(out)) for f in files]}
        if al is not None:
            outside = {k: int(al.outside_range(al.joints(v)).sum()) for k, v in
                       (("pregrasp", gs.pregrasp_joint_positions), ("grasp", gs.joint_positions), ("squeeze", gs.squeeze_joint_positions))}
            entry["hand_model"] = {"model": al.model, "joint_names": al.joint_names, "outside_range": outside}
            if any(outside.values()):
                warnings.append(f"{job}: grasps with joint targets outside {al.model}'s ranges (its actuators clamp them): "
                                + ", ".join(f"{k} {v}/{len(gs)}" for k, v in outside.items()))
        entries.append(entry)
    manifest = {
        "format": fmt, "sources": [str(Path(s).resolve()) for s in sources], "jobs": entries, "warnings": warnings,
        "conventions": "hand root-link pose in the object frame (m; quaternions w-x-y-z; DexGraspNet rotations as sxyz Euler "
                       "angles); joints in joint_names order; object = object_source mesh scaled by object_scale",
    }
    if aligned:
        manifest["hand_models"] = {}
        for h, a in aligned.items():
            ours = next(list(gs.joint_names) for gs in sets if gs.hand == h)
            manifest["hand_models"][h] = {
                "model": a.model, "rotation": a.rotation.tolist(), "translation_m": a.translation.tolist(), "anchor_error_m": a.error,
                # their joint -> [our joint, sign]
                "joints": {n: [ours[int(src)], int(sg)] for n, src, sg in zip(a.joint_names, a.source, a.sign)},
            }
        manifest["conventions"] = ("dexgraspbench, aligned hands: qpos = [pose of the hand model's MJCF frame in the object frame "
                                   "(m, w-x-y-z), its joints in its order]; objects in objects/ (metres, obj_scale 1)")
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


def export_dataset(root: str | Path, fmt: str, out: str | Path | None = None, hand_models: list[str | Path] = ()) -> dict:
    """Export every job's grasp file of dataset ``root`` (see :func:`export_grasps`)."""
    return export_grasps([root], fmt, out, hand_models)


def read_export(path: str | Path, fmt: str, joint_names: list[str] | None = None) -> ExportedGrasps:
    """Read one exported file (a folder of per-grasp files for ``dexgraspbench``)."""
    if fmt == "dexgraspnet":
        if joint_names is None:
            raise ExportError("reading the DexGraspNet format needs the hand's joint names")
        return read_dexgraspnet(path, joint_names)
    if fmt == "graspqp":
        return read_graspqp(path, joint_names)
    if fmt == "dexgraspbench":
        p = Path(path)
        files = sorted(p.glob("*.npy"), key=lambda f: (len(f.stem), f.stem)) if p.is_dir() else [p]
        return read_dexgraspbench(files, joint_names)
    raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
