"""``graspforge view | render | heatmap``: pictures of grasp files."""

from __future__ import annotations

import argparse
import os
import sys
import webbrowser
from pathlib import Path

import numpy as np

from ..evaluate.checks import check_hand, grasp_set_object
from ..hands import load_hand_description
from ..io.grasp_set import GraspSet
from ..viz.heatmap import contact_heatmaps
from ..viz.page import write_grasp_page
from ..viz.render import RENDER_CELL, render_grasps
from ..viz.scene import HandDisplay, VizError
from .evaluate import _grasp_files, _hand_spec


def add_parser(sub) -> None:
    v = sub.add_parser("view", help="write an interactive HTML page of a grasp file (and open it)",
                       description="A self-contained page (works offline): the object, the posed hand, contacts and normals, "
                       "energies and evaluation results; a slider steps through the grasps.")
    v.add_argument("grasp_file")
    v.add_argument("--index", type=int, nargs="+", help="grasps to show (default: the first --max)")
    v.add_argument("--max", type=int, default=32, help="grasps on the page when --index is not given (default %(default)s)")
    v.add_argument("--out", help="page path (default: next to the grasp file, .html)")
    v.add_argument("--hand", help="hand to draw (default: the one named in the file)")
    v.add_argument("--object", dest="object_spec", help="object mesh instead of the file's recorded source")
    v.add_argument("--no-open", action="store_true", help="do not open the page in a browser")
    v.set_defaults(func=cmd_view)
    r = sub.add_parser("render", help="write PNG pictures of grasps (three views each), no display needed")
    r.add_argument("grasp_files", nargs="+", help="grasp files or folders of them")
    r.add_argument("--out", required=True, help="folder for the PNGs")
    r.add_argument("--index", type=int, nargs="+", help="grasps to draw in each file (default all)")
    r.add_argument("--hand")
    r.set_defaults(func=cmd_render)
    h = sub.add_parser("heatmap", help="contact-frequency heatmaps on the hand, one PNG per grasp type",
                       description="For every hand surface sample, the fraction of grasps in which it lies within --distance of "
                       "the object, drawn on the hand in its open pose.")
    h.add_argument("grasp_files", nargs="+", help="grasp files or folders of them (one hand)")
    h.add_argument("--out", required=True, help="folder for the PNGs")
    h.add_argument("--distance", type=float, default=3.0, help="contact distance in mm (default %(default)s)")
    h.add_argument("--successful", action="store_true", help="count only grasps marked successful by `graspforge evaluate`")
    h.add_argument("--hand")
    h.set_defaults(func=cmd_heatmap)


def _load(path: Path, hand: str | None, object_spec: str | None = None):
    gs = GraspSet.load(path)
    desc = load_hand_description(_hand_spec(gs, hand))
    check_hand(gs, desc, where=f"{path} (pass --hand)")
    return gs, desc, grasp_set_object(gs, object_spec, where=str(path))


def _browser_available() -> bool:
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_view(args: argparse.Namespace) -> int:
    path = Path(args.grasp_file)
    gs, desc, obj = _load(path, args.hand, args.object_spec)
    out = Path(args.out) if args.out else path.with_suffix(".html")
    write_grasp_page(gs, HandDisplay.from_description(desc), obj, out, indices=args.index, max_grasps=args.max)
    print(f"wrote {out}")
    if not args.no_open and _browser_available():
        webbrowser.open(out.resolve().as_uri())
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    displays: dict[str, HandDisplay] = {}
    n = 0
    for path in _grasp_files(args.grasp_files):
        gs, desc, obj = _load(path, args.hand)
        display = displays.setdefault(desc.name, HandDisplay.from_description(desc, cell=RENDER_CELL))
        n += len(render_grasps(gs, display, obj, args.out, indices=args.index, prefix=path.stem))
    print(f"wrote {n} PNGs to {args.out}")
    return 0


def cmd_heatmap(args: argparse.Namespace) -> int:
    sets, desc = [], None
    for path in _grasp_files(args.grasp_files):
        gs, d, obj = _load(path, args.hand)
        if desc is not None and d.name != desc.name:
            raise VizError(f"{path}: hand {d.name!r}, but earlier files are of {desc.name!r}; one heatmap run per hand")
        desc = d
        if args.successful:
            if "success" not in gs.extra:
                raise VizError(f"{path}: not evaluated (no 'success'); run `graspforge evaluate` first or drop --successful")
            gs = gs.select(np.asarray(gs.extra["success"], bool))
        sets.append((gs, obj))
    if args.distance <= 0:
        raise VizError("--distance must be > 0 mm")
    out = contact_heatmaps(desc, sets, args.out, distance=args.distance / 1000.0)
    for gtype, p in out.items():
        print(f"{gtype}: {p}")
    return 0
