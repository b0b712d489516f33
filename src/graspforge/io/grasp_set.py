"""A set of grasps of one hand on one object, and its file format.

File: a NumPy ``.npz`` (no pickled objects: ``np.load(path, allow_pickle=False)`` reads it with
NumPy alone). Schema, ``format_version`` 1 (N grasps, K contacts, D actuated joints):

| key | shape / type | meaning |
|---|---|---|
| ``format_version`` | () int | 1 |
| ``hand`` | () str | hand name |
| ``joint_names`` | (D,) str | order of every joint array |
| ``grasp_type`` | () str | full, precision, pinch, fingertip, ... |
| ``object_name``, ``object_source``, ``object_hash`` | () str | object name, mesh path or ``builtin:...``, sha256 of its mesh arrays |
| ``object_scale`` | () float | scale applied to the mesh file |
| ``root_position`` | (N, 3) float | hand root link position in the object's mesh frame, m |
| ``root_quaternion`` | (N, 4) float | root link orientation, w-x-y-z |
| ``joint_positions`` | (N, D) float | the optimised joints (exactly what was optimised) |
| ``pregrasp_joint_positions`` | (N, D) float | opened ~1-2 cm at the contacts |
| ``squeeze_joint_positions`` | (N, D) float | closed ~5 mm into the object at the contacts |
| ``contact_points`` | (N, K, 3) float | hand contact points, object frame, m |
| ``contact_normals`` | (N, K, 3) float | object's outward unit normals at those points |
| ``contact_links`` | (N, K) str | link of each contact |
| ``contact_indices`` | (N, K) int | hand contact-candidate index of each contact |
| ``contact_distance`` | (N, K) float | object signed distance at each contact, m (positive inside) |
| ``energy`` | (N,) float | total energy |
| ``energy_dis``, ``energy_fc``, ``energy_pen``, ``energy_spen``, ``energy_joints`` | (N,) float | unweighted terms |
| ``energy_hpen`` | (N,) float | unweighted hand-in-object term (optional: absent in older files) |
| ``qp_value`` | (N,) float | V(G), the force-closure QP value (NaN if not computed) |
| ``config_toml`` | () str | the resolved run configuration |
| ``software`` | () str | ``graspforge X.Y.Z`` |
| ``created`` | () str | ISO time |
| extra arrays | (N, ...) | e.g. evaluation results (``success``, ...) added by ``graspforge evaluate`` |
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from .._io import atomic_savez
from ..errors import GraspforgeError

FORMAT_VERSION = 1
TERM_KEYS = ("energy_dis", "energy_fc", "energy_pen", "energy_spen", "energy_joints")
#: terms written when present (files from before graspforge 0.x had no E_hpen)
OPTIONAL_TERM_KEYS = ("energy_hpen",)
_SCALARS = ("hand", "grasp_type", "object_name", "object_source", "object_hash", "config_toml", "software", "created")


class GraspSetError(GraspforgeError, ValueError):
    """A grasp-set file that is missing, unreadable, of another version or inconsistent."""


@dataclass
class GraspSet:
    hand: str
    joint_names: list[str]
    grasp_type: str
    object_name: str
    object_source: str
    object_hash: str
    object_scale: float
    root_position: np.ndarray
    root_quaternion: np.ndarray
    joint_positions: np.ndarray
    pregrasp_joint_positions: np.ndarray
    squeeze_joint_positions: np.ndarray
    contact_points: np.ndarray
    contact_normals: np.ndarray
    contact_links: np.ndarray
    contact_indices: np.ndarray
    contact_distance: np.ndarray
    energy: np.ndarray
    terms: dict[str, np.ndarray]
    qp_value: np.ndarray
    config_toml: str = ""
    software: str = f"graspforge {__version__}"
    created: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def __len__(self) -> int:
        return int(self.root_position.shape[0])

    @property
    def num_contacts(self) -> int:
        return int(self.contact_points.shape[1])

    def validate(self) -> None:
        N, D = len(self.root_position), len(self.joint_names)
        shapes = {
            "root_position": (N, 3), "root_quaternion": (N, 4), "joint_positions": (N, D),
            "pregrasp_joint_positions": (N, D), "squeeze_joint_positions": (N, D), "energy": (N,), "qp_value": (N,),
        }
        for k, s in shapes.items():
            if np.shape(getattr(self, k)) != s:
                raise GraspSetError(f"grasp set: {k} has shape {np.shape(getattr(self, k))}, expected {s}")
        K = np.shape(self.contact_points)[1] if np.ndim(self.contact_points) == 3 else -1
        for k, s in {"contact_points": (N, K, 3), "contact_normals": (N, K, 3), "contact_links": (N, K), "contact_indices": (N, K), "contact_distance": (N, K)}.items():
            if np.shape(getattr(self, k)) != s:
                raise GraspSetError(f"grasp set: {k} has shape {np.shape(getattr(self, k))}, expected {s}")
        for k in TERM_KEYS:
            if np.shape(self.terms.get(k)) != (N,):
                raise GraspSetError(f"grasp set: energy term {k} missing or not of shape ({N},)")
        for k in OPTIONAL_TERM_KEYS:
            if k in self.terms and np.shape(self.terms[k]) != (N,):
                raise GraspSetError(f"grasp set: energy term {k} is not of shape ({N},)")
        for k, v in self.extra.items():
            if np.shape(v)[:1] != (N,):
                raise GraspSetError(f"grasp set: extra array {k} must have {N} rows")
        for k in ("root_position", "root_quaternion", "joint_positions", "contact_points"):
            if not np.all(np.isfinite(getattr(self, k))):
                raise GraspSetError(f"grasp set: {k} holds non-finite values")

    # -- files ----------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        arr = {
            "format_version": np.asarray(FORMAT_VERSION),
            "joint_names": np.asarray(self.joint_names, dtype=str),
            "object_scale": np.asarray(float(self.object_scale)),
            "root_position": np.asarray(self.root_position, np.float64),
            "root_quaternion": np.asarray(self.root_quaternion, np.float64),
            "joint_positions": np.asarray(self.joint_positions, np.float64),
            "pregrasp_joint_positions": np.asarray(self.pregrasp_joint_positions, np.float64),
            "squeeze_joint_positions": np.asarray(self.squeeze_joint_positions, np.float64),
            "contact_points": np.asarray(self.contact_points, np.float64),
            "contact_normals": np.asarray(self.contact_normals, np.float64),
            "contact_links": np.asarray(self.contact_links, dtype=str),
            "contact_indices": np.asarray(self.contact_indices, np.int64),
            "contact_distance": np.asarray(self.contact_distance, np.float64),
            "energy": np.asarray(self.energy, np.float64),
            "qp_value": np.asarray(self.qp_value, np.float64),
        }
        for k in _SCALARS:
            arr[k] = np.asarray(str(getattr(self, k)))
        for k in TERM_KEYS + tuple(k for k in OPTIONAL_TERM_KEYS if k in self.terms):
            arr[k] = np.asarray(self.terms[k], np.float64)
        for k, v in self.extra.items():
            if k in arr:
                raise GraspSetError(f"extra array {k!r} would overwrite a schema field")
            arr[k] = np.asarray(v)
        return arr

    def save(self, path: str | Path) -> Path:
        """Write atomically (temporary file, then rename)."""
        path = Path(path)
        atomic_savez(path, compressed=True, **self.to_arrays())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "GraspSet":
        path = Path(path)
        if not path.is_file():
            raise GraspSetError(f"grasp set file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
        except Exception as e:  # zipfile / format errors of many kinds
            raise GraspSetError(f"{path}: not a readable grasp-set file ({type(e).__name__}: {e})") from e
        try:
            version = int(a["format_version"])
        except (KeyError, TypeError, ValueError):
            raise GraspSetError(f"{path}: no format_version: not a graspforge grasp set") from None
        if version != FORMAT_VERSION:
            raise GraspSetError(f"{path}: format_version {version} is not supported (this graspforge reads {FORMAT_VERSION})")
        known = set(_SCALARS) | set(TERM_KEYS) | set(OPTIONAL_TERM_KEYS) | {
            "format_version", "joint_names", "object_scale", "root_position", "root_quaternion", "joint_positions",
            "pregrasp_joint_positions", "squeeze_joint_positions", "contact_points", "contact_normals", "contact_links",
            "contact_indices", "contact_distance", "energy", "qp_value",
        }
        try:
            return cls(
                **{k: str(a[k]) for k in _SCALARS},
                joint_names=[str(x) for x in a["joint_names"]],
                object_scale=float(a["object_scale"]),
                root_position=a["root_position"].astype(np.float64),
                root_quaternion=a["root_quaternion"].astype(np.float64),
                joint_positions=a["joint_positions"].astype(np.float64),
                pregrasp_joint_positions=a["pregrasp_joint_positions"].astype(np.float64),
                squeeze_joint_positions=a["squeeze_joint_positions"].astype(np.float64),
                contact_points=a["contact_points"].astype(np.float64),
                contact_normals=a["contact_normals"].astype(np.float64),
                contact_links=a["contact_links"].astype(str),
                contact_indices=a["contact_indices"].astype(np.int64),
                contact_distance=a["contact_distance"].astype(np.float64),
                energy=a["energy"].astype(np.float64),
                terms={k: a[k].astype(np.float64) for k in TERM_KEYS + OPTIONAL_TERM_KEYS if k in a},  # missing ones: validate() names them
                qp_value=a["qp_value"].astype(np.float64),
                extra={k: v for k, v in a.items() if k not in known},
            )
        except GraspSetError as e:
            raise GraspSetError(f"{path}: {e}") from e
        except (KeyError, TypeError, ValueError) as e:
            raise GraspSetError(f"{path}: malformed grasp set ({type(e).__name__}: {e})") from e

    def select(self, mask: np.ndarray) -> "GraspSet":
        """The grasps where ``mask`` (N,) is true (or at the given indices)."""
        m = np.asarray(mask)
        pick = lambda x: np.asarray(x)[m]  # noqa: E731
        return GraspSet(
            hand=self.hand, joint_names=self.joint_names, grasp_type=self.grasp_type, object_name=self.object_name,
            object_source=self.object_source, object_hash=self.object_hash, object_scale=self.object_scale,
            root_position=pick(self.root_position), root_quaternion=pick(self.root_quaternion),
            joint_positions=pick(self.joint_positions), pregrasp_joint_positions=pick(self.pregrasp_joint_positions),
            squeeze_joint_positions=pick(self.squeeze_joint_positions), contact_points=pick(self.contact_points),
            contact_normals=pick(self.contact_normals), contact_links=pick(self.contact_links),
            contact_indices=pick(self.contact_indices), contact_distance=pick(self.contact_distance),
            energy=pick(self.energy), terms={k: pick(v) for k, v in self.terms.items()}, qp_value=pick(self.qp_value),
            config_toml=self.config_toml, software=self.software, created=self.created,
            extra={k: pick(v) for k, v in self.extra.items()},
        )

    @classmethod
    def concatenate(cls, sets: list["GraspSet"]) -> "GraspSet":
        """The grasps of ``sets`` one after the other; they must be of one hand, grasp type and object
        (by content hash and scale) and carry the same energy terms and extra arrays. Scalars (config,
        software, creation time) are the first set's."""
        if not sets:
            raise GraspSetError("concatenate: no grasp sets given")
        a = sets[0]
        for b in sets[1:]:
            same = (b.hand == a.hand and list(b.joint_names) == list(a.joint_names) and b.grasp_type == a.grasp_type
                    and b.object_hash == a.object_hash and float(b.object_scale) == float(a.object_scale))
            if not same:
                raise GraspSetError(f"concatenate: {b.hand}/{b.grasp_type}/{b.object_name} does not match {a.hand}/{a.grasp_type}/{a.object_name}")
            if b.num_contacts != a.num_contacts or set(b.terms) != set(a.terms) or set(b.extra) != set(a.extra):
                raise GraspSetError("concatenate: the sets differ in contact count, energy terms or extra arrays")
        cat = lambda k: np.concatenate([np.asarray(getattr(g, k)) for g in sets])  # noqa: E731
        return cls(
            hand=a.hand, joint_names=a.joint_names, grasp_type=a.grasp_type, object_name=a.object_name,
            object_source=a.object_source, object_hash=a.object_hash, object_scale=a.object_scale,
            root_position=cat("root_position"), root_quaternion=cat("root_quaternion"), joint_positions=cat("joint_positions"),
            pregrasp_joint_positions=cat("pregrasp_joint_positions"), squeeze_joint_positions=cat("squeeze_joint_positions"),
            contact_points=cat("contact_points"), contact_normals=cat("contact_normals"), contact_links=cat("contact_links"),
            contact_indices=cat("contact_indices"), contact_distance=cat("contact_distance"), energy=cat("energy"),
            terms={k: np.concatenate([g.terms[k] for g in sets]) for k in a.terms}, qp_value=cat("qp_value"),
            config_toml=a.config_toml, software=a.software, created=a.created,
            extra={k: np.concatenate([g.extra[k] for g in sets]) for k in a.extra},
        )

    def hand_poses(self) -> np.ndarray:
        """(N, 3 + 6 + D) hand pose vectors (root position, 6D rotation, joints) for graspforge models."""
        import torch

        from ..geometry.rotations import matrix_to_rot6d, quaternion_to_matrix

        R = quaternion_to_matrix(torch.as_tensor(self.root_quaternion))
        return np.concatenate([self.root_position, matrix_to_rot6d(R).numpy(), self.joint_positions], 1)
