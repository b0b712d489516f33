"""Find and load a hand by built-in name, hand folder, or URDF/MJCF file."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from .. import __version__
from .._io import cache_dir
from ..errors import HandLoadError, UnknownNameError
from .description import FORMAT_VERSION, BuildOptions, HandDescription, build_hand_description
from .mjcf import parse_mjcf
from .model import HandModel
from .urdf import parse_urdf

BUILTIN_DIR = Path(__file__).parent / "data"


def builtin_hand_names() -> list[str]:
    """Names of the hands shipped with the package."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / "hand.json").is_file())


def user_hands_dir() -> Path:
    """Folder of imported hands, loaded by name: ``GRASPFORGE_HANDS_DIR``, else
    ``$XDG_DATA_HOME/graspforge/hands`` (``~/.local/share/graspforge/hands``)."""
    env = os.environ.get("GRASPFORGE_HANDS_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "graspforge" / "hands"


def user_hand_names() -> list[str]:
    """Names of the hands imported into :func:`user_hands_dir` (built-in names shadow them)."""
    d = user_hands_dir()
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if (p / "hand.json").is_file() and p.name not in builtin_hand_names())


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def import_hand(model: str | Path, name: str, out: str | Path | None = None, options: BuildOptions | None = None,
                force: bool = False) -> tuple[HandDescription, Path]:
    """Build a hand from a URDF/MJCF file (or a folder holding one, with the reference JSON files
    when present) and write it as a hand folder (``hand.json`` + ``geometry.npz``).

    ``out`` defaults to ``user_hands_dir() / name``, so that ``load_hand(name)`` finds it. An
    existing folder is replaced only with ``force``. Returns the description and the folder.
    """
    if not _NAME.match(name):
        raise HandLoadError(f"hand name {name!r}: use letters, digits, '_', '-' or '.', starting with a letter or digit")
    if out is None and name in builtin_hand_names():
        raise HandLoadError(f"{name!r} is a built-in hand; choose another name or give an output folder")
    folder = Path(out).expanduser() if out is not None else user_hands_dir() / name
    if (folder / "hand.json").exists() and not force:
        raise HandLoadError(f"{folder} already holds a hand; pass force=True (--force) to replace it")
    path = Path(model).expanduser()
    if not path.exists():
        raise HandLoadError(f"{path}: no such file or folder")
    if path.is_dir():
        models = sorted(path.glob("*.urdf")) + sorted(path.glob("*.xml"))
        if len(models) != 1:
            raise HandLoadError(f"{path}: expected exactly one .urdf or .xml file in the folder, found {[m.name for m in models]}")
        model_file, hand_dir = models[0], path
    else:
        model_file, hand_dir = path, path.parent
    desc = build_hand_description(_parse(model_file, (options or BuildOptions()).angle), hand_dir=hand_dir, name=name, options=options)
    desc.source = None
    desc.provenance["origin"] = f"imported by 'graspforge hands import' from {model_file.name}"
    desc.save(folder)
    return desc, folder


def _parse(path: Path, angle: str | None = None):
    """Parse a URDF or MJCF; ``angle`` ("degree" / "radian") overrides an MJCF's angle unit."""
    suffix = path.suffix.lower()
    if suffix == ".urdf":
        if angle == "degree":
            raise HandLoadError(f"{path}: a URDF's angles are radians; --angle degree applies to MJCF files only")
        return parse_urdf(path)
    if suffix == ".xml" or suffix == ".mjcf":
        return parse_mjcf(path, angle=angle)
    raise HandLoadError(f"{path}: not a URDF (.urdf) or MJCF (.xml) file")


MESH_SUFFIXES = {".obj", ".stl", ".ply", ".dae", ".glb", ".gltf", ".off", ".msh"}


def _source_key(model: Path, hand_dir: Path, parsed, name: str, options: BuildOptions) -> str:
    """Content hash of everything a description is built from (model, JSON files, meshes, options)."""
    files = {model.resolve()}
    files |= {p.resolve() for p in hand_dir.glob("*.json")}
    files |= {e.path.resolve() for els in (*parsed.collisions.values(), *parsed.visuals.values()) for e in els if e.path is not None}
    files |= {p.resolve() for p in hand_dir.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and p.is_file()}
    h = hashlib.sha256()
    h.update(f"{FORMAT_VERSION}|{__version__}|{name}|{sorted(vars(options).items())}".encode())
    for f in sorted(files):
        h.update(str(f.relative_to(hand_dir.resolve()) if f.is_relative_to(hand_dir.resolve()) else f.name).encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:32]


def _build_cached(model: Path, hand_dir: Path, name: str, options: BuildOptions | None, use_cache: bool) -> HandDescription:
    options = options or BuildOptions()
    parsed = _parse(model, options.angle)
    folder = cache_dir() / "hands" / _source_key(model, hand_dir, parsed, name, options)
    if use_cache and (folder / "hand.json").is_file():
        try:
            desc = HandDescription.load(folder)
            desc.source = model
            return desc
        except HandLoadError:
            pass  # a damaged cache entry is rebuilt
    desc = build_hand_description(parsed, hand_dir=hand_dir, name=name, options=options)
    if use_cache:
        try:
            desc.save(folder)
        except OSError:
            pass  # full disk or read-only cache: the description is still good
    return desc


def load_hand_description(name_or_path: str | Path, options: BuildOptions | None = None, use_cache: bool = True) -> HandDescription:
    """A built-in name, the name of an imported hand (:func:`import_hand`), a graspforge hand folder (``hand.json``), a folder in the reference layout
    (one URDF/MJCF + optional JSON files), or a URDF/MJCF file.

    Descriptions built from URDF/MJCF are cached on disk by content hash (``GRASPFORGE_CACHE_DIR``).
    """
    s = str(name_or_path)
    if s in builtin_hand_names():
        return HandDescription.load(BUILTIN_DIR / s)
    if _NAME.match(s) and (user_hands_dir() / s / "hand.json").is_file() and not Path(s).exists():
        return HandDescription.load(user_hands_dir() / s)
    path = Path(s).expanduser()
    if not path.exists():
        known = ", ".join(builtin_hand_names() + user_hand_names()) or "none"
        raise UnknownNameError(f"no hand or file named {s!r} (known hands: {known})")
    if path.is_dir():
        if (path / "hand.json").is_file():
            return HandDescription.load(path)
        models = sorted(path.glob("*.urdf")) + sorted(path.glob("*.xml"))
        if len(models) != 1:
            raise HandLoadError(f"{path}: expected exactly one .urdf or .xml file in the hand folder, found {[m.name for m in models]}")
        return _build_cached(models[0], path, path.name, options, use_cache)
    return _build_cached(path, path.parent, path.stem, options, use_cache)


def load_hand(name_or_path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
              self_collision_points_per_link: int = 128) -> HandModel:
    """Load a hand and put it on ``device`` (see :func:`load_hand_description`)."""
    return HandModel(load_hand_description(name_or_path), device=device, dtype=dtype,
                     self_collision_points_per_link=self_collision_points_per_link)
