"""graspforge grasps judged by DexGraspBench (github.com/JYChen18/DexGraspBench), the field's MuJoCo
benchmark, beside graspforge's own ``evaluate``: per-grasp agreement, success rates side by side,
per object. DexGraspBench is run from a checkout outside this repository, in its own Python
environment; nothing of it is copied into graspforge. Prints JSON.

    python bench/dexgraspbench.py --dgb ~/DexGraspBench --python ~/dgb-env/bin/python \\
        --grasps runs/allegro_test/ --hand allegro --work /tmp/dgb-work [--protocol strict] [--workers 2]

``--grasps``: graspforge grasp files (.npz) or folders of them, made with the built-in hand that
DexGraspBench's ``--hand`` model is aligned to (``dataset export --hand-model``). Grasps already
evaluated with ``--protocol`` keep their verdicts; the others are evaluated first.

Preparation (into ``--work``, the checkout is never modified): DexGraspBench's hand XMLs read visual
meshes from MuJoCo Menagerie, a 554 MB git submodule usually absent. Visual geoms have contype 0 and
never touch anything, so where a mesh file is missing it is replaced by a box of the body's collision
geoms' size (their bounding box); the bodies' masses then come from those boxes at the XML's density.
A hand whose *collision* geoms use missing meshes (DexGraspBench's Shadow fingertips) cannot be
judged this way: give ``--menagerie DIR``, a folder in Menagerie's layout (``DIR/shadow_hand/assets/...``),
from which the missing files are copied. The whole submodule does that; so does MuJoCo's own copy of
Menagerie's Shadow hand shipped in the ``mujoco-mjx`` wheel (``pip download --no-deps mujoco-mjx``,
unzip, ``DIR = mujoco/mjx/test_data``). Without it the script says so and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))



def prepare(dgb: Path, hand: str, work: Path, menagerie: Path | None = None) -> Path:
    """A runnable copy of ``dgb`` (src, config, the hand's assets) under ``work/dgb``: missing meshes
    taken from ``menagerie`` (a folder in MuJoCo Menagerie's layout) where it has them, missing visual
    meshes replaced by boxes; returns the hand XML of the copy."""
    import mujoco
    import trimesh

    from graspforge.hands.mjcf import compile_without_missing_meshes

    dst = work / "dgb"
    if dst.exists():
        shutil.rmtree(dst)
    for sub in ("src", "config"):
        shutil.copytree(dgb / sub, dst / sub)
    shutil.copytree(dgb / "assets" / "hand", dst / "assets" / "hand")
    xml = dst / "assets" / "hand" / hand / "right_hand.xml"
    if not xml.is_file():
        raise SystemExit(f"{dgb}: no hand {hand!r} (assets/hand/{hand}/right_hand.xml)")
    spec = mujoco.MjSpec.from_file(str(xml))
    meshdir = (xml.parent / (spec.meshdir or "")).resolve()
    # meshdir points into third_party/ of the original checkout layout: rebuild that path in the copy
    missing = [m for m in spec.meshes if not (meshdir / m.file).is_file()]
    copied = []
    if menagerie is not None and missing:
        # meshdir is .../third_party/mujoco_menagerie/MODEL/assets: the same relative path in ``menagerie``
        parts = meshdir.parts
        rel = Path(*parts[parts.index("mujoco_menagerie") + 1:]) if "mujoco_menagerie" in parts else Path(meshdir.name)
        for m in missing:
            src = menagerie / rel / m.file
            if src.is_file():
                (meshdir / m.file).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, meshdir / m.file)
                copied.append(m.file)
        missing = [m for m in missing if m.file not in copied]
    if not missing:
        (work / "prepared.json").write_text(json.dumps({"hand": hand, "xml": str(xml), "menagerie_meshes": copied,
                                                         "placeholder_meshes": []}, indent=1))
        return xml
    model = compile_without_missing_meshes(xml)  # collision geometry only: the size of each body
    boxes: dict[str, np.ndarray] = {}
    for b in range(1, model.nbody):
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for gid in np.flatnonzero(model.geom_bodyid == b):
            if not (model.geom_contype[gid] or model.geom_conaffinity[gid]):
                continue
            c, h = model.geom_aabb[gid][:3], model.geom_aabb[gid][3:]  # box in the geom's frame
            corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * h + c
            pts = corners @ Rotation.from_quat(model.geom_quat[gid][[1, 2, 3, 0]]).as_matrix().T + model.geom_pos[gid]
            lo, hi = np.minimum(lo, pts.min(0)), np.maximum(hi, pts.max(0))
        if np.all(np.isfinite(lo)):
            boxes[model.body(b).name] = hi - lo
    body_of_mesh: dict[str, str] = {}
    for body in spec.bodies:
        for g in body.geoms:
            body_of_mesh.setdefault(g.meshname, body.name)
    made = []
    for m in missing:
        size = boxes.get(body_of_mesh.get(m.name, ""), np.full(3, 0.01))
        scale = np.asarray(m.scale, float)
        scale = np.where(scale == 0, 1.0, scale)
        path = meshdir / m.file
        path.parent.mkdir(parents=True, exist_ok=True)
        trimesh.creation.box(extents=np.maximum(size, 1e-3) / np.abs(scale)).export(path)
        made.append(m.file)
    # a mesh that a colliding geom uses cannot be replaced without changing contacts
    bad = _colliding_mesh_geoms(xml, {m.name for m in missing})
    if bad:
        raise SystemExit(f"{hand}: collision geoms use meshes that are not here ({', '.join(sorted(bad))}): DexGraspBench's "
                         "verdicts on this hand need MuJoCo Menagerie's meshes (git submodule update --init in the checkout, "
                         "or --menagerie DIR)")
    (work / "prepared.json").write_text(json.dumps({"hand": hand, "xml": str(xml), "menagerie_meshes": copied,
                                                     "placeholder_meshes": made}, indent=1))
    return xml


def _colliding_mesh_geoms(xml: Path, mesh_names: set[str]) -> set[str]:
    """Names of meshes in ``mesh_names`` used by geoms that collide (compiled with placeholders)."""
    import mujoco

    model = mujoco.MjModel.from_xml_path(str(xml))
    out = set()
    for g in range(model.ngeom):
        if model.geom_type[g] == int(mujoco.mjtGeom.mjGEOM_MESH) and (model.geom_contype[g] or model.geom_conaffinity[g]):
            name = model.mesh(model.geom_dataid[g]).name
            if name in mesh_names:
                out.add(name)
    return out


def graspforge_verdicts(files: list[Path], protocol: str, workers: int, hand: str | None,
                        hand_model: str | None = None) -> dict[str, np.ndarray]:
    """Per grasp file: graspforge's success array under ``protocol`` (evaluating files that lack it,
    with the hand source ``hand`` when given). With ``hand_model`` (an MJCF) every file is evaluated
    anew in that model of its hand (``evaluate --hand-model``)."""
    from graspforge.io.grasp_set import GraspSet

    todo = files if hand_model else [f for f in files if f"eval_{protocol}_success" not in GraspSet.load(f).extra]
    if todo:
        cmd = [sys.executable, "-m", "graspforge.cli.main", "evaluate", *map(str, todo), "--protocol", protocol, "--workers", str(workers)]
        cmd += ["--hand", hand] if hand else []
        cmd += ["--hand-model", str(hand_model), "--force", "--no-geometry"] if hand_model else []
        subprocess.run(cmd, check=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    return {f.name: np.asarray(GraspSet.load(f).extra[f"eval_{protocol}_success"], bool) for f in files}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dgb", type=Path, required=True, help="a checkout of DexGraspBench (github.com/JYChen18/DexGraspBench)")
    ap.add_argument("--python", default=sys.executable, help="the Python that has DexGraspBench's requirements (its README)")
    ap.add_argument("--grasps", type=Path, nargs="*", default=[], help="graspforge grasp files or folders of them")
    ap.add_argument("--hand", default="allegro", help="DexGraspBench hand (assets/hand/HAND), e.g. allegro, shadow, leap")
    ap.add_argument("--work", type=Path, default=Path("dgb-work"))
    ap.add_argument("--protocol", default="strict", help="graspforge's protocol to compare with")
    ap.add_argument("--graspforge-hand", default=None, help="the hand source the grasps were made with, when not built in "
                    "(e.g. DexGraspBench's own MJCF imported: the fairest comparison, both simulate the same hand)")
    ap.add_argument("--menagerie", type=Path, default=None, help="a folder in MuJoCo Menagerie's layout with the hand's "
                    "meshes (the submodule, or mujoco/mjx/test_data of the mujoco-mjx wheel for Shadow)")
    ap.add_argument("--in-hand-model", action="store_true", help="graspforge simulates the grasps in DexGraspBench's model "
                    "of the hand too (evaluate --hand-model), not in the hand they were made with")
    ap.add_argument("--prepare-only", action="store_true", help="prepare the copy under --work, print its hand XML, stop")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)))
    args = ap.parse_args()
    if not (args.dgb / "src" / "main.py").is_file():
        print(json.dumps({"skipped": f"no DexGraspBench checkout at {args.dgb}"}))
        return 0
    from graspforge.io.export import export_grasps, load_npy_safely

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    files = []
    for g in args.grasps:
        files += sorted(g.glob("*.npz")) if g.is_dir() else [g]
    t0 = time.perf_counter()
    if args.prepare_only:
        print(prepare(args.dgb, args.hand, work, args.menagerie))
        return 0
    if not files:
        ap.error("--grasps: no grasp files given")
    xml = prepare(args.dgb, args.hand, work, args.menagerie)
    ours = graspforge_verdicts(files, args.protocol, args.workers, args.graspforge_hand, xml if args.in_hand_model else None)
    export = work / "export"
    if export.exists():
        shutil.rmtree(export)
    manifest = export_grasps(files, "dexgraspbench", export, hand_models=[xml],
                             hand_sources=[args.graspforge_hand] if args.graspforge_hand else [])
    if not manifest.get("hand_models"):
        raise SystemExit("; ".join(manifest.get("warnings", [])) or "the hand did not align to DexGraspBench's model")
    hands = sorted({j["hand"] for j in manifest["jobs"]})
    t1 = time.perf_counter()
    for hand in hands:
        cmd = [args.python, "src/main.py", "task=eval", f"hand={args.hand}", f"save_dir={export / hand}", f"n_worker={args.workers}",
               "skip=False"]
        p = subprocess.run(cmd, cwd=work / "dgb", capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"DexGraspBench failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    t2 = time.perf_counter()
    rows, both = [], np.zeros((2, 2), int)
    for job, f in zip(manifest["jobs"], files):
        mine = ours[f.name]
        theirs = np.zeros(len(mine), bool)
        found = np.zeros(len(mine), bool)
        details = []
        for rel in job["files"]:
            ev = export / rel.replace("/graspdata/", "/evaluation/", 1)
            i = int(Path(rel).stem)
            if ev.is_file():
                d = load_npy_safely(ev)
                theirs[i], found[i] = bool(d.get("succ_flag")), True
                details.append((float(d.get("delta_pos", np.nan)), float(d.get("delta_angle", np.nan)), float(d.get("ho_pene", np.nan))))
        m = np.zeros((2, 2), int)
        for a, b in zip(mine[found], theirs[found]):
            m[int(a), int(b)] += 1
        both += m
        det = np.array(details) if details else np.full((1, 3), np.nan)
        rows.append({"object": job["object"], "type": job["grasp_type"], "grasps": int(found.sum()),
                     "graspforge_success": float(mine[found].mean()) if found.any() else None,
                     "dexgraspbench_success": float(theirs[found].mean()) if found.any() else None,
                     "agreement": float((mine[found] == theirs[found]).mean()) if found.any() else None,
                     "both_pass": int(m[1, 1]), "only_graspforge": int(m[1, 0]), "only_dexgraspbench": int(m[0, 1]), "both_fail": int(m[0, 0]),
                     "dgb_median_shift_mm": float(np.nanmedian(det[:, 0]) * 1000), "dgb_median_turn_deg": float(np.nanmedian(det[:, 1])),
                     "dgb_median_penetration_mm": float(np.nanmedian(det[:, 2]) * 1000)})
    n = int(both.sum())
    out = {"hand": args.hand, "protocol": args.protocol, "graspforge_in_hand_model": bool(args.in_hand_model), "grasps": n, "per_object": rows,
           "graspforge_success": float((both[1].sum()) / max(n, 1)), "dexgraspbench_success": float(both[:, 1].sum() / max(n, 1)),
           "agreement": float((both[0, 0] + both[1, 1]) / max(n, 1)),
           "table": {"both_pass": int(both[1, 1]), "only_graspforge": int(both[1, 0]), "only_dexgraspbench": int(both[0, 1]),
                     "both_fail": int(both[0, 0])},
           "hand_model": manifest["hand_models"], "warnings": manifest.get("warnings", []),
           "seconds": {"graspforge_evaluate": round(t1 - t0, 1), "dexgraspbench": round(t2 - t1, 1)}}
    (work / "agreement.json").write_text(json.dumps(out, indent=1))
    brief = {k: v for k, v in out.items() if k != "hand_model"}
    brief["hand_model"] = {h: {"model": m["model"], "anchor_error_mm": round(m["anchor_error_m"] * 1000, 2)} for h, m in out["hand_model"].items()}
    print(json.dumps(brief, indent=1))
    print(f"# full record: {work / 'agreement.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
