"""``graspforge evaluate``: physics validation and metrics of grasp files."""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from ..config import PROTOCOLS, EvaluateConfig, load_config, physics_protocol
from ..errors import GraspforgeError
from ..evaluate.simulate import default_workers
from ..hands import load_hand_description
from ..hands.loading import builtin_hand_names
from ..io.export import other_hand_model
from ..io.grasp_set import GraspSet, GraspSetError
from ..pipelines.evaluation import (EvaluationError, evaluate_grasp_set, grasp_set_object, pool_rows, read_sidecar, settings_key,
                                    summary_row, write_evaluation)
from .progress import progress_bar


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="simulate grasps in MuJoCo and compute success, UGR, entropy, penetration",
                       description="Execute every grasp of the given grasp files in MuJoCo under a disturbance protocol, measure "
                                   "penetration on the exact meshes, and write the per-grasp results back into each file "
                                   "(plus a <stem>.eval.json summary).")
    p.add_argument("files", nargs="+", metavar="GRASPFILE", help="grasp-set .npz files, or folders of them")
    p.add_argument("--protocol", nargs="+", default=["strict"], choices=PROTOCOLS,
                   help="disturbance protocols (default strict); the first one sets the 'success' array")
    p.add_argument("--workers", type=int, default=None, help="simulation processes (default: one per CPU core)")
    p.add_argument("--hand", help="hand to simulate (default: the hand named in each file); e.g. a URDF folder for exact meshes")
    p.add_argument("--hand-model", metavar="MJCF",
                   help="simulate the grasps in another model of their hand (e.g. DexGraspBench's Allegro MJCF), aligned "
                        "to it by forward kinematics; results are written back to the original files")
    p.add_argument("--object", dest="object_spec", help="object mesh to use instead of the file's recorded source (one grasp file only)")
    p.add_argument("--config", help="TOML file with [physics] / [metrics] settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting, e.g. physics.force=2")
    p.add_argument("--keep-successful", action="store_true", help="also write <stem>.successful.npz with the successful grasps")
    p.add_argument("--force", action="store_true", help="re-evaluate files that already hold results for the same settings")
    p.add_argument("--no-geometry", action="store_true", help="skip the exact-mesh penetration / contact-distance metrics")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)


def _grasp_files(items: list[str]) -> list[Path]:
    out: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            found = sorted(q for q in p.glob("*.npz") if not q.name.endswith(".successful.npz"))
            if not found:
                raise GraspSetError(f"{p}: folder holds no grasp files (*.npz)")
            out += found
        else:
            out.append(p)
    return out


def _hand_spec(grasps, override: str | None) -> str:
    if override:
        return override
    if grasps.hand in builtin_hand_names():
        return grasps.hand
    try:  # a hand given by path at synthesis time is recorded in the run's configuration
        spec = tomllib.loads(grasps.config_toml).get("hand")
        if isinstance(spec, str) and spec:
            return spec
    except tomllib.TOMLDecodeError:
        pass
    return grasps.hand


#: what the geometry columns measure (printed under the table): none of them comes from the simulation
GEOMETRY_LEGEND = (
    "# geometry, at each file's grasp pose on exact meshes, not from the simulation: D mm = mean over grasps of the deepest "
    "object surface sample inside the hand; self mm = deepest hand-hand penetration; |d| mm = mean distance to the object "
    "of the contact points recorded in the file by synthesis (generate's maxpen is the optimiser's worst sample over a set)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    overrides = dict(kv.split("=", 1) for kv in args.set if "=" in kv)
    bad = [kv for kv in args.set if "=" not in kv]
    if bad:
        raise SystemExit(f"graspforge: error: --set needs KEY=VALUE, got {bad[0]!r}")
    base = EvaluateConfig(physics=physics_protocol(args.protocol[0]))
    cfg = load_config(args.config, overrides, base=base)
    if args.workers is not None:
        cfg.workers = args.workers
    cfg.validate()
    workers = cfg.workers or default_workers()
    files = _grasp_files(args.files)
    if args.object_spec and len(files) > 1:
        raise SystemExit("graspforge: error: --object applies to a single grasp file")
    hands: dict[str, object] = {}
    rows, failures = [], []
    t_all = time.perf_counter()
    for path in files:
        try:
            grasps = GraspSet.load(path)
            side = read_sidecar(path)
            own = _hand_spec(grasps, args.hand)
            spec = f"{own} in {args.hand_model}" if args.hand_model else own
            key = settings_key(cfg, args.protocol, not args.no_geometry, spec)
            done = side is not None and side.get("settings_key") == key and all(f"eval_{p}_success" in grasps.extra for p in args.protocol)
            if done and not args.force:
                print(f"{path}: already evaluated with these settings (--force to redo)", file=sys.stderr)
                rows.append(summary_row(str(path), grasps.object_name, grasps.hand, grasps.grasp_type, len(grasps), side["summary"], args.protocol))
                continue
            if spec not in hands:
                hands[spec] = (other_hand_model(load_hand_description(own), args.hand_model) if args.hand_model
                               else (load_hand_description(own), None))
            desc, to_model = hands[spec]
            simulated = to_model(grasps) if to_model else grasps
            obj = grasp_set_object(grasps, args.object_spec, where=str(path))
            bar = None
            if not args.quiet:
                bar = progress_bar(len(grasps) * len(args.protocol), path.name[:40], "grasp")
            try:
                result = evaluate_grasp_set(simulated, desc, obj, cfg, tuple(args.protocol), workers=workers,
                                            geometry=not args.no_geometry, progress=bar.update if bar else None)
            except EvaluationError as exc:
                raise EvaluationError(f"{path}: {exc}") from exc
            finally:
                if bar is not None:
                    bar.close()
            write_evaluation(path, grasps, result, cfg, spec, obj, key)
            for e in result.errors:
                print(f"{path}: {e}", file=sys.stderr)
            if args.keep_successful:
                keep = grasps.select(np.asarray(result.arrays["success"], bool))
                keep.save(path.with_name(path.name[: -len(path.suffix)] + ".successful.npz"))
            rows.append(summary_row(str(path), grasps.object_name, grasps.hand, grasps.grasp_type, len(grasps), result.summary, args.protocol))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one bad file must not stop the others; reported and counted
            if not isinstance(exc, (GraspforgeError, OSError)):
                raise
            msg = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            print(f"graspforge: error: {msg}", file=sys.stderr)
            failures.append(msg)
    overall = pool_rows(rows, args.protocol)
    if args.json:
        print(json.dumps({"files": rows, "overall": overall, "physics": {p: (cfg.physics if cfg.physics.protocol == p else physics_protocol(p)).__dict__ for p in args.protocol},
                          "failed": failures, "seconds": time.perf_counter() - t_all}, indent=1, default=float))
    else:
        print(_table(rows, overall, args.protocol))
        if not args.no_geometry:
            print(GEOMETRY_LEGEND)
        for p in args.protocol:  # every physics constant, printed with the results
            ph = cfg.physics if cfg.physics.protocol == p else physics_protocol(p)
            print(f"# physics {p}: " + ", ".join(f"{k}={v}" for k, v in ph.__dict__.items() if k != "protocol"))
    return 1 if failures else 0


def _table(rows: list[dict], overall: dict, protocols: list[str]) -> str:
    cols = [("object", 24, "s"), ("type", 9, "s"), ("grasps", 6, "d")]
    for p in protocols:
        cols += [(f"success_{p}", 9, "%"), (f"ugr_{p}", 8, "%"), (f"H_{p}", 6, ".2f")]
    cols += [("D_mm", 6, ".2f"), ("self_penetration_mm", 7, ".2f"), ("contact_distance_mm", 7, ".2f")]
    heads = {"success_": "succ ", "ugr_": "UGR ", "H_": "H "}

    def head(name):
        for pre, short in heads.items():
            if name.startswith(pre):
                return short + name[len(pre):][:3]
        return {"D_mm": "D mm", "self_penetration_mm": "self mm", "contact_distance_mm": "|d| mm"}.get(name, name)

    def cell(v, w, f):
        if f == "s":
            return f"{str(v)[:w]:<{w}}"
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return f"{'-':>{w}}"
        return f"{v * 100:>{w - 1}.1f}%" if f == "%" else f"{v:>{w}{f}}"

    lines = [" ".join(f"{head(c):<{w}}" if f == "s" else f"{head(c):>{w}}" for c, w, f in cols)]
    for r in rows:
        lines.append(" ".join(cell(r.get(c), w, f) for c, w, f in cols))
    if rows:
        o = dict(overall, object="overall", type="", grasps=overall["grasps"])
        lines.append(" ".join(cell(o.get(c), w, f) for c, w, f in cols))
    sec = ", ".join(f"{p} {overall.get(f'seconds_per_grasp_{p}', float('nan')):.3f} s/grasp" for p in protocols)
    lines.append(f"# {sec}")
    return "\n".join(lines)

