"""Aggregate the evaluation sidecars (<stem>.eval.json) of grasp-file folders into one JSON table.

    python bench/eval_table.py runs/a runs/b [--objects NAME ...]

Per folder, the same pooled figures as ``graspforge evaluate``'s overall row
(:func:`graspforge.pipelines.evaluation.pool_rows`), plus exact-geometry seconds per grasp.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from graspforge.pipelines.evaluation import pool_rows, summary_row


def folder_table(folder: Path, only: set[str] | None) -> dict:
    sides = [json.loads(p.read_text()) for p in sorted(folder.glob("*.eval.json"))]
    sides = [d for d in sides if not only or d["object"] in only]
    if not sides:
        return {"folder": str(folder), "objects": 0}
    protocols = [p for p in ("strict", "reference") if all(p in d["summary"] for d in sides)]
    rows = [summary_row(d["grasp_file"], d["object"], d["hand"], "", d["summary"][protocols[0]]["grasps"], d["summary"], protocols)
            for d in sides]
    out = {"folder": str(folder), "objects": len(rows), "hand_geometry": sorted({d["hand_geometry"] for d in sides})}
    out.update(pool_rows(rows, protocols))
    out["geometry_seconds_per_grasp"] = sum(d["seconds"].get("geometry", 0.0) for d in sides) / out["grasps"]
    out["per_object"] = {r["object"]: {p: round(r[f"success_{p}"], 3) for p in protocols} for r in rows}
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
