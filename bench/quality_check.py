"""Issue 3's quality check: synthesise on shared YCB objects and measure on the exact meshes.

For each grasp type and optimiser: the fraction of grasps with mean |contact distance| < 5 mm,
object-in-hand penetration < 2 mm (exact hand meshes), finger-finger overlap < 1 mm (exact link
meshes), V(G) < 0.05, all four at once; and the mean-energy-vs-iteration curves. Prints JSON and
writes it (plus the grasp sets and a PNG of the curves when matplotlib is present) to --out.

    python bench/quality_check.py --out runs/quality [--iterations 7000] [--grasps 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from graspforge._io import atomic_write_json
from graspforge.config import load_config
from graspforge.evaluate import ExactHandMeshes, exact_grasp_metrics
from graspforge.hands import HandModel, load_hand_description
from graspforge.objects import load_object
from graspforge.pipelines.synthesis import synthesize

SHARED = Path(__file__).resolve().parents[2] / "shared" / "assets"
OBJECTS = ["005_tomato_soup_can", "013_apple", "055_baseball", "061_foam_brick", "065-a_cups"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("runs/quality"))
    ap.add_argument("--objects", nargs="+", default=OBJECTS)
    ap.add_argument("--types", nargs="+", default=["full", "precision"])
    ap.add_argument("--optimizers", nargs="+", default=["mala_star", "mala"])
    ap.add_argument("--iterations", type=int, default=7000)
    ap.add_argument("--grasps", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    desc = load_hand_description(SHARED / "hands" / "allegro")  # same kinematics as the built-in, plus exact meshes
    desc.name = "allegro"
    hand = HandModel(desc)
    exact = ExactHandMeshes.from_description(desc)
    objects = [load_object(SHARED / "objects" / "ycb" / o) for o in args.objects]
    report = {"iterations": args.iterations, "grasps_per_object": args.grasps, "objects": args.objects, "runs": {}}
    for opt in args.optimizers:
        for gtype in args.types if opt == "mala_star" else args.types[:1]:
            cfg = load_config(overrides={"grasps": args.grasps, "optimizer.iterations": args.iterations, "optimizer.name": opt, "seed": args.seed})
            t0 = time.perf_counter()
            res = synthesize(hand, objects, cfg, grasp_type=gtype)
            secs = time.perf_counter() - t0
            per_obj, allm = {}, []
            for obj, gs in zip(objects, res.grasp_sets):
                gs.save(args.out / f"{obj.name}__allegro__{gtype}__{opt}.npz")
                m = exact_grasp_metrics(gs, exact, obj)
                ok = {
                    "contact_lt_5mm": m["contact_distance"] < 0.005,
                    "penetration_lt_2mm": m["penetration_depth"] < 0.002,
                    "self_overlap_lt_1mm": m["self_penetration_depth"] < 0.001,
                    "V_lt_0.05": gs.qp_value < 0.05,
                }
                ok["all"] = np.logical_and.reduce(list(ok.values()))
                per_obj[obj.name] = {k: float(v.mean()) for k, v in ok.items()} | {
                    "mean_penetration_mm": float(m["penetration_depth"].mean() * 1e3),
                    "mean_hand_in_object_mm": float(m["hand_in_object_depth"].mean() * 1e3),
                    "mean_contact_distance_mm": float(m["contact_distance"].mean() * 1e3),
                }
                allm.append(ok)
            overall = {k: float(np.mean(np.concatenate([o[k] for o in allm]))) for k in allm[0]}
            curve = [(it, float(np.mean(e))) for it, e in res.stats.energy_curve]
            report["runs"][f"{gtype}/{opt}"] = {
                "overall": overall, "per_object": per_obj, "seconds": round(secs, 1),
                "accept_rate": round(res.stats.accept_rate, 3), "resets": res.stats.resets, "nan_resets": res.stats.nan_resets,
                "energy_curve": curve[:: max(1, len(curve) // 100)],
            }
            atomic_write_json(args.out / "quality.json", report)
            print(json.dumps({f"{gtype}/{opt}": {"overall": overall, "seconds": round(secs, 1)}}), flush=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for key, r in report["runs"].items():
            it, e = zip(*r["energy_curve"])
            ax.plot(it, e, label=key)
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("mean energy")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out / "energy_curves.png", dpi=120)
    except ImportError:
        pass
    print(json.dumps({k: v["overall"] for k, v in report["runs"].items()}, indent=1))


if __name__ == "__main__":
    main()
