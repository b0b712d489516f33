"""Aggregate the evaluation sidecars (<stem>.eval.json) of grasp-file folders into one JSON table.

    python bench/eval_table.py runs/a runs/b [--objects NAME ...]

Per folder: grasps, success / UGR / joint entropy per protocol (UGR pooled over objects: unique
successful grasps / grasps generated; H averaged over objects), mean D (mm) and seconds per grasp.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def folder_table(folder: Path, only: set[str] | None) -> dict:
    rows = []
    for side in sorted(folder.glob("*.eval.json")):
        d = json.loads(side.read_text())
        if only and d["object"] not in only:
            continue
        rows.append(d)
    if not rows:
        return {"folder": str(folder), "objects": 0}
    protocols = [p for p in ("strict", "reference") if all(p in r["summary"] for r in rows)]
    out: dict = {"folder": str(folder), "objects": len(rows), "hand_geometry": sorted({r["hand_geometry"] for r in rows})}
    n = np.array([r["summary"][protocols[0]]["grasps"] for r in rows], float)
    out["grasps"] = int(n.sum())
    for p in protocols:
        s = [r["summary"][p] for r in rows]
        out[p] = {
            "success": float(np.dot([x["success_rate"] for x in s], n) / n.sum()),
            "ugr": float(sum(x["unique"] for x in s) / n.sum()),
            "H": float(np.mean([x["joint_entropy"] for x in s])),
            "seconds_per_grasp": float(np.dot([x["seconds_per_grasp"] for x in s], n) / n.sum()),
        }
    s0 = [r["summary"][protocols[0]] for r in rows]
    out["D_mm"] = float(np.mean([x.get("D_mm", np.nan) for x in s0]))
    out["self_penetration_mm"] = float(np.mean([x.get("self_penetration_mm", np.nan) for x in s0]))
    out["geometry_seconds_per_grasp"] = float(sum(r["seconds"].get("geometry", 0.0) for r in rows) / n.sum())
    out["per_object"] = {r["object"]: {p: round(r["summary"][p]["success_rate"], 3) for p in protocols} for r in rows}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--objects", nargs="*", help="only these objects")
    args = ap.parse_args()
    only = set(args.objects) if args.objects else None
    print(json.dumps([folder_table(Path(f), only) for f in args.folders], indent=1))


if __name__ == "__main__":
    main()
