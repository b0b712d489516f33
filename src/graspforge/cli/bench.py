"""``graspforge bench paper``: the paper's comparison at a size this machine can run, and its report."""

from __future__ import annotations

import argparse
import sys

from ..pipelines.paper import PaperBench, Setting, run_paper_bench, write_report
from .generate import check_device


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: `bench paper` reruns the GraspQP paper's comparison and writes a report")
    bs = p.add_subparsers(dest="bench_command", metavar="SUBCOMMAND", required=True)
    b = bs.add_parser("paper", help="synthesise + evaluate every (hand, method, type, contacts) setting; write REPORT/report.md/.html",
                      description="Every setting is synthesised on every object and evaluated under both protocols; files are kept "
                      "under OUT/runs, so an interrupted run resumes. The report: Table-1 layout (UGR / H per hand, overall, D) "
                      "with the paper's numbers, unique grasps vs seeds (Figure 4), energy curves, timings.")
    b.add_argument("--objects", nargs="+", help="folders of meshes, mesh files, built-in objects (not needed with --report-only)")
    b.add_argument("--hands", nargs="+", default=["allegro"])
    b.add_argument("--methods", nargs="+", default=["graspqp:mala_star", "dexgraspnet:mala"], help="rows: ENERGY:OPTIMIZER (crossed with --grasp-types and --contacts), "
                   "ENERGY:OPTIMIZER:TYPE:CONTACTS (one row), or `paper` (the five rows of the paper's Table 1)")
    b.add_argument("--grasp-types", nargs="+", default=["full"])
    b.add_argument("--contacts", type=int, nargs="+", default=[12])
    b.add_argument("--grasps", type=int, default=32, help="grasps per object (default %(default)s)")
    b.add_argument("--iterations", type=int, help="optimiser iterations (default: the full schedule)")
    b.add_argument("--seeds-object", help="object for the unique-grasps-vs-seeds curve (first hand, 12 contacts, full)")
    b.add_argument("--seeds", type=int, nargs="+", default=[512], help="largest seed count (default 512); the curve is taken at 8, 16, ...")
    b.add_argument("--objects-per-batch", type=int, default=5)
    b.add_argument("--workers", type=int, default=1, help="parallel synthesis units (processes)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--device", default="cpu", help="synthesis device: cpu, cuda, cuda:1, ... (evaluation stays on CPU cores)")
    b.add_argument("--out", required=True, help="report folder")
    b.add_argument("--report-only", action="store_true", help="only (re)write the report from finished runs")
    b.add_argument("--no-heatmaps", action="store_true", help="leave the contact heatmaps out of the report (they load every mesh)")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_paper)


def cmd_paper(args: argparse.Namespace) -> int:
    if not args.report_only:
        if not args.objects:
            print("graspforge bench paper: --objects is required (unless --report-only)", file=sys.stderr)
            return 2
        settings = list(dict.fromkeys(s for m in args.methods for s in Setting.parse(m, args.grasp_types, args.contacts)))
        bench = PaperBench(objects=list(args.objects), hands=list(args.hands), settings=settings, grasps=args.grasps,
                           iterations=args.iterations, seeds_object=args.seeds_object, seeds=list(args.seeds), seed=args.seed,
                           objects_per_batch=args.objects_per_batch)
        try:
            check_device(args.device)
            r = run_paper_bench(bench, args.out, workers=args.workers, device=args.device,
                                progress=None if args.quiet else (lambda p: print(f"done: {p}", file=sys.stderr, flush=True)))
        except KeyboardInterrupt:
            print(f"graspforge: interrupted; finished objects are kept under {args.out}/runs; rerun the same command to go on", file=sys.stderr)
            return 130
        print(f"{r['units']} synthesis units run in {r['seconds']:.0f} s")
    path = write_report(args.out, heatmaps=not args.no_heatmaps)
    print(f"report: {path} and {path.with_suffix('.html')}")
    return 0
