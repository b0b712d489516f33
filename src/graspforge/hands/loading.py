"""Find and load a hand by built-in name, hand folder, or URDF/MJCF file."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import HandLoadError, UnknownNameError
from .description import BuildOptions, HandDescription, build_hand_description
from .model import HandModel

BUILTIN_DIR = Path(__file__).parent / "data"


def builtin_hand_names() -> list[str]:
    """Names of the hands shipped with the package."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / "hand.json").is_file())


def _parse(path: Path):
    suffix = path.suffix.lower()
    if suffix == ".urdf":
        from .urdf import parse_urdf

        return parse_urdf(path)
    if suffix == ".xml" or suffix == ".mjcf":
        from .mjcf import parse_mjcf

        return parse_mjcf(path)
    raise HandLoadError(f"{path}: not a URDF (.urdf) or MJCF (.xml) file")


def load_hand_description(name_or_path: str | Path, options: BuildOptions | None = None) -> HandDescription:
    """A built-in name, a graspforge hand folder (``hand.json``), a folder in the reference layout
    (one URDF/MJCF + optional JSON files), or a URDF/MJCF file."""
    s = str(name_or_path)
    if s in builtin_hand_names():
        return HandDescription.load(BUILTIN_DIR / s)
    path = Path(s).expanduser()
    if not path.exists():
        known = ", ".join(builtin_hand_names()) or "none"
        raise UnknownNameError(f"no built-in hand or file named {s!r} (built-in hands: {known})")
    if path.is_dir():
        if (path / "hand.json").is_file():
            return HandDescription.load(path)
        models = sorted(path.glob("*.urdf")) + sorted(path.glob("*.xml"))
        if len(models) != 1:
            raise HandLoadError(f"{path}: expected exactly one .urdf or .xml file in the hand folder, found {[m.name for m in models]}")
        return build_hand_description(_parse(models[0]), hand_dir=path, name=path.name, options=options)
    return build_hand_description(_parse(path), hand_dir=path.parent, name=path.stem, options=options)


def load_hand(name_or_path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> HandModel:
    """Load a hand and put it on ``device`` (see :func:`load_hand_description`)."""
    return HandModel(load_hand_description(name_or_path), device=device, dtype=dtype)
