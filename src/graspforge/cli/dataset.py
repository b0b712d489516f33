"""``graspforge dataset ...``: build resumable grasp datasets over many objects, hands and types."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import ENERGY_METHODS, OPTIMIZERS, load_config
from ..io.export import export_grasps
from ..pipelines.dataset_build import DatasetSettings, build_dataset, dataset_summary, parse_shard
from .generate import check_device, synthesis_overrides, with_iterations


def add_parser(sub) -> None:
    p = sub.add_parser("dataset", help="build and inspect grasp datasets (many objects x hands x grasp types)")
    ds = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)
    b = ds.add_parser("build", help="plan, synthesise, evaluate and keep grasps for every (object, hand, type) job",
                      description="Plans every (object, hand, grasp type) job, packs objects into optimisation batches, "
                      "synthesises, evaluates (strict protocol by default) and keeps the successful grasps: one grasp "
                      "file per job under OUT/grasps and one index (OUT/index.csv, index.json). Interrupted at any "
                      "moment, the same command resumes where it stopped.")
    b.add_argument("--hands", nargs="+", default=["allegro"], help="built-in or imported names, hand folders, URDF/MJCF files")
    b.add_argument("--objects", nargs="+", required=True, help="folders of meshes, mesh files, built-in objects (box, sphere:radius=0.03)")
    b.add_argument("--grasp-types", nargs="+", default=["full"])
    b.add_argument("--grasps-per-object", type=int, help="grasps generated per job (default 32)")
    b.add_argument("--out", required=True, help="dataset folder")
    b.add_argument("--keep", choices=("successful", "all"), default="successful", help="grasps written per job (default successful)")
    b.add_argument("--no-evaluate", action="store_true", help="skip the MuJoCo evaluation (needs --keep all)")
    b.add_argument("--protocol", choices=("strict", "reference"), default="strict")
    b.add_argument("--objects-per-batch", type=int, default=8, help="objects optimised together (default %(default)s)")
    b.add_argument("--workers", type=int, default=1, help="parallel jobs (processes or Ray tasks)")
    b.add_argument("--backend", choices=("local", "ray"), default="local")
    b.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray instance)")
    b.add_argument("--shard", default="0/1", help="i/n: run only share i of n disjoint shares of the jobs, counting from 0 (0/4 ... 3/4); "
                   "auto: from SLURM_ARRAY_TASK_ID/_MIN/_COUNT (arrays from 0 or 1 alike)")
    b.add_argument("--contacts", type=int)
    b.add_argument("--energy", choices=ENERGY_METHODS)
    b.add_argument("--optimizer", choices=OPTIMIZERS)
    b.add_argument("--iterations", type=int, help="optimiser iterations, the schedule compressed to fit (as generate)")
    b.add_argument("--seed", type=int)
    b.add_argument("--device", default="cpu", help="synthesis device: cpu, cuda, cuda:1, ... (evaluation stays on CPU cores)")
    b.add_argument("--config", type=Path, help="TOML file with any synthesis setting")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_build)
    i = ds.add_parser("info", help="print a dataset's summary")
    i.add_argument("dataset")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)
    e = ds.add_parser("export", help="write grasps (a dataset, grasp files or folders of them) in another project's format",
                      description="dexgraspnet: OBJECT.npy lists of qpos dicts; graspqp: OBJECT.dexgrasp.pt dicts in GraspQP's "
                      "folder layout; dexgraspbench: HAND/graspdata/TYPE/OBJECT/I.npy (one dict per grasp, pregrasp/grasp/squeeze "
                      "qpos) and objects/ in DexGraspBench's object layout, HAND being a DexGraspBench save_dir. Poses are the hand "
                      "root link in the object frame, or with --hand-model the pose and joints of DexGraspBench's own hand model; "
                      "OUT/manifest.json lists every file with its object, scale and joint names.")
    e.add_argument("sources", nargs="+", help="dataset folders, grasp files (.npz) or folders of them")
    e.add_argument("--format", required=True, choices=("dexgraspnet", "graspqp", "dexgraspbench"))
    e.add_argument("--out", default=None, help="folder (default DATASET/exports/FORMAT for one dataset)")
    e.add_argument("--hand-model", action="append", default=[], metavar="MJCF",
                   help="dexgraspbench: a DexGraspBench hand model (e.g. DGB/assets/hand/allegro/right_hand.xml); each hand is "
                   "aligned to the one that fits by forward kinematics of both, and its grasps are written in that model")
    e.add_argument("--hand", action="append", default=[], metavar="SOURCE",
                   help="with --hand-model: a hand folder or URDF/MJCF file the grasps were made with (hands not built in or imported)")
    e.set_defaults(func=cmd_export)


def cmd_build(args: argparse.Namespace) -> int:
    cfg = with_iterations(load_config(args.config, synthesis_overrides(args.set, grasps=args.grasps_per_object, contacts=args.contacts,
                                                                       seed=args.seed, energy=args.energy, optimizer=args.optimizer)),
                          args.iterations)
    settings = DatasetSettings(hands=list(args.hands), grasp_types=list(args.grasp_types), objects=list(args.objects), keep=args.keep,
                               evaluate=not args.no_evaluate, protocol=args.protocol, objects_per_batch=args.objects_per_batch)
    shard = parse_shard(args.shard)

    def progress(rec: dict) -> None:
        if not args.quiet:
            s = "" if rec["success"] is None else f", success {rec['success']:.0%}"
            print(f"{rec['job']}: {rec['kept']}/{rec['generated']} kept{s}", file=sys.stderr, flush=True)

    try:
        rep = build_dataset(args.out, settings, cfg, workers=args.workers, shard=shard, backend=args.backend, address=args.address,
                            progress=progress, device=str(check_device(args.device)), threads=args.threads_global)
    except KeyboardInterrupt:
        print(f"graspforge: interrupted; finished jobs are kept in {args.out} (index up to date); rerun the same command to go on", file=sys.stderr)
        return 130
    print(f"{rep.planned} jobs planned (shard {args.shard}), {rep.skipped} already done, {rep.finished} finished now in {rep.seconds:.1f} s; "
          f"index: {Path(args.out) / 'index.csv'} ({len(rep.rows)} rows)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    s = dataset_summary(args.dataset)
    if args.json:
        print(json.dumps(s, indent=1))
        return 0
    succ = "n/a" if s["success"] is None else f"{s['success']:.1%}"
    print(f"{args.dataset}: {s['jobs']} jobs, {s['objects']} objects, hands {', '.join(s['hands'])}, types {', '.join(s['types'])}")
    print(f"grasps generated {s['generated']}, kept {s['kept']}, success {succ}")
    print(f"synthesis {s['synthesis_seconds']:.0f} s, evaluation {s['evaluation_seconds']:.0f} s (summed over jobs)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.hand_model and args.format != "dexgraspbench":
        raise SystemExit("graspforge: error: --hand-model is for --format dexgraspbench")
    m = export_grasps(args.sources, args.format, args.out, args.hand_model, args.hand)
    out = Path(args.out) if args.out else Path(args.sources[0]) / "exports" / args.format
    n_files = sum(len(j["files"]) for j in m["jobs"])
    n_grasps = sum(j["grasps"] for j in m["jobs"])
    for w in m.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    for hand, h in m.get("hand_models", {}).items():
        print(f"{hand}: written in {h['model']}'s hand model (joint anchors agree within {h['anchor_error_m'] * 1000:.1f} mm)")
    print(f"{n_grasps} grasps of {len(m['jobs'])} jobs written as {args.format} ({n_files} files) to {out}; manifest: {out / 'manifest.json'}")
    return 0
