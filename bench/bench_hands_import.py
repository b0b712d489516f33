"""The importer on each shared hand with its JSON files removed: does the hand it makes converge?

    python bench/bench_hands_import.py [--hands allegro panda ...] [--bare]

Per hand: a copy of the shared folder without *.json is imported (``--bare`` also withholds the
recorded facts of hands/known.py: open pose, axes, couplings), then 16 grasps are optimised on a
6 cm sphere (hands check's smoke test, schedule compressed to --iterations). Prints JSON lines:
candidates, grasp types, the fraction of grasps with mean |contact distance| < 5 mm, seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from graspforge.hands import BuildOptions, HandModel, load_hand_description
from graspforge.pipelines.synthesis import smoke_test

SHARED = Path(__file__).resolve().parents[2] / "shared" / "assets" / "hands"
HANDS = ["allegro", "shadow_hand", "ability_hand", "robotiq3", "robotiq2", "panda", "schunk_2f"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hands", nargs="+", default=HANDS)
    ap.add_argument("--bare", action="store_true", help="also withhold the recorded facts (hands/known.py)")
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--contacts", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name in args.hands:
        with tempfile.TemporaryDirectory() as tmp:
            dst = Path(tmp) / name
            shutil.copytree(SHARED / name, dst, ignore=shutil.ignore_patterns("*.json"))
            t = time.perf_counter()
            desc = load_hand_description(dst, options=BuildOptions(use_known_facts=not args.bare), use_cache=False)
            build_s = time.perf_counter() - t
            r = smoke_test(HandModel(desc), grasps=16, iterations=args.iterations, radius=0.03, contacts=args.contacts)
        print(json.dumps({
            "hand": name, "known_facts": not args.bare, "dof": desc.dof, "candidates": int(len(desc.contact_points)),
            "grasp_types": {k: sorted(v.links) for k, v in desc.grasp_types.items()},
            "approach_axis": np.round(desc.approach_axis, 3).tolist(), "up_axis": np.round(desc.up_axis, 3).tolist(),
            "contact_ok_fraction": r.ok_fraction, "median_contact_distance_mm": float(np.median(r.contact_distance) * 1000),
            "build_seconds": build_s, "smoke_seconds": r.seconds, "problems": r.problems,
            "warnings": desc.warnings,
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
