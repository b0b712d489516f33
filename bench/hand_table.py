"""Per hand: DoF, candidates, seconds per optimiser iteration at B = 32, and strict-protocol success /
UGR / H / D on a few YCB objects (full type), next to the paper's Table 1 row. Prints JSON lines.

    python bench/hand_table.py [--hands allegro panda ...] [--iterations 7000] [--out runs/hands]

Grasp files and their evaluations are written under --out (one folder per hand); a hand whose
files are already evaluated is not redone. ``--iterations`` below the default compresses the
optimiser's schedule (OptimizerConfig.compressed), so short runs still end cold.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from graspforge.config import EvaluateConfig, GenerateConfig
from graspforge.io.grasp_set import GraspSet
from graspforge.pipelines.evaluation import evaluate_grasp_set, pool_rows, read_sidecar, summary_row, write_evaluation
from graspforge.hands import load_hand
from graspforge.objects import load_object
from graspforge.pipelines.synthesis import synthesize

SHARED = Path(__file__).resolve().parents[2] / "shared" / "assets"
OBJECTS = ["005_tomato_soup_can", "013_apple", "036_wood_block", "044_flat_screwdriver", "065-a_cups"]
HANDS = ["allegro", "shadow_hand", "ability_hand", "robotiq3", "robotiq2", "panda", "schunk_2f"]
#: METHOD.md s. 9 (paper Table 1, 12 contacts, full, GraspQP + MALA*, Isaac Lab protocol, 50 DexGraspNet objects): UGR, H
PAPER = {"allegro": (0.76, 3.6), "shadow_hand": (0.63, 3.5), "robotiq3": (0.57, 3.0), "robotiq2": (0.29, 3.2), "ability_hand": (0.35, 2.6)}


def time_per_iteration(hand, obj, batch: int = 32, iterations: int = 40) -> float:
    cfg = GenerateConfig(grasps=batch)
    cfg.optimizer.iterations = iterations
    cfg.optimizer.refine_fraction = 0.0
    synthesize(hand, [obj], GenerateConfig(grasps=batch, optimizer=cfg.optimizer).validate())  # warm-up (numba, caches)
    t = time.perf_counter()
    synthesize(hand, [obj], cfg.validate())
    return (time.perf_counter() - t) / iterations


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hands", nargs="+", default=HANDS)
    ap.add_argument("--objects", nargs="+", default=OBJECTS)
    ap.add_argument("--iterations", type=int, default=GenerateConfig().optimizer.iterations)
    ap.add_argument("--grasps", type=int, default=32)
    ap.add_argument("--contacts", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path("runs/hands"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    objs = [load_object(SHARED / "objects" / "ycb" / o / f"{o}.obj") for o in args.objects]
    for name in args.hands:
        hand = load_hand(name)
        desc = hand.description
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        files = [folder / f"{o.name}.npz" for o in objs]
        synth_s = None
        if not all(f.is_file() for f in files):
            cfg = GenerateConfig(hand=name, grasps=args.grasps, contacts=args.contacts, seed=0)
            cfg.optimizer = cfg.optimizer.compressed(args.iterations)
            t = time.perf_counter()
            res = synthesize(hand, objs, cfg.validate())
            synth_s = time.perf_counter() - t
            for gs, f in zip(res.grasp_sets, files):
                gs.save(f)
        rows, eval_s = [], 0.0
        config = EvaluateConfig()
        for o, f in zip(objs, files):
            side = read_sidecar(f)
            if side is None:
                gs = GraspSet.load(f)
                t = time.perf_counter()
                result = evaluate_grasp_set(gs, desc, o, config, protocols=("strict",), workers=1)
                eval_s += time.perf_counter() - t
                write_evaluation(f, gs, result, config, name, o)
                side = read_sidecar(f)
            rows.append(summary_row(str(f), o.name, name, "full", args.grasps, side["summary"], ("strict",)))
        pooled = pool_rows(rows, ("strict",))
        out = {
            "hand": name, "dof": desc.dof, "candidates": int(len(desc.contact_points)),
            "seconds_per_iteration_B32": time_per_iteration(hand, objs[0]),
            "iterations": args.iterations, "objects": [o.name for o in objs], "grasps_per_object": args.grasps,
            "synthesis_seconds": synth_s, "evaluation_seconds": eval_s or None,
            "strict": pooled, "paper_table1_ugr_H": PAPER.get(name),
        }
        print(json.dumps(out, default=float), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
