"""Import every hand file under the given folders and see whether it grasps: ``hands import``,
``hands check``, synthesis on YCB objects, MuJoCo evaluation; one table row per hand.

    python bench/import_zoo.py DIR... [--objects 013_apple 005_tomato_soup_can] [--grasps 16]
        [--iterations 1500] [--flags FILE_STEM='--thumb L --closing J=+1' ...] [--generate-flags '--best-of 2']
        [--smoke] [--threads 1]

Every ``*.xml`` / ``*.urdf`` under the folders is tried (files MuJoCo or the URDF parser refuse count
as "import failed", with the reason). Each step runs the real CLI in a subprocess, with the hand
written to a temporary folder (``--work``, default a temp dir). Columns: import ok, import seconds,
DoF (after couplings), coupled joints, grasp types, strict success per object, and D (mean
penetration depth of the object into the hand, mm, from ``evaluate``). Public set used in issue 17:
robosuite 1.5.2's ``models/assets/grippers`` (``pip download --no-deps robosuite==1.5.2``, unzip;
never committed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

YCB = Path(__file__).resolve().parents[2] / "shared" / "assets" / "objects" / "ycb"


def cli(args: list[str], threads: int) -> subprocess.CompletedProcess:
    """``graspforge ARGS`` in a subprocess (the project's own CLI, as a user would run it)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    return subprocess.run([sys.executable, "-m", "graspforge.cli.main", "--threads", str(threads), *args],
                          capture_output=True, text=True, env=env)


def last_line(r: subprocess.CompletedProcess) -> str:
    lines = [x for x in (r.stderr.strip().splitlines() + r.stdout.strip().splitlines()) if x.strip()]
    return lines[-1][:160] if lines else f"exit {r.returncode}"


def run_hand(model: Path, work: Path, args) -> dict:
    name = model.stem.replace(" ", "_")
    row: dict = {"hand": name, "file": str(model), "flags": args.flags.get(model.stem, ""), "generate_flags": args.generate_flags}
    folder = work / "hands" / name
    t = time.perf_counter()
    r = cli(["hands", "import", str(model), "--name", name, "--out", str(folder), "--force", "--json", *shlex.split(row["flags"])], args.threads)
    row["import_s"] = round(time.perf_counter() - t, 1)
    if r.returncode != 0:
        row["import"] = "failed: " + last_line(r)
        return row
    s = json.loads(r.stdout[r.stdout.index("{"):])
    row.update(import_="ok", dof=s["dof"], couplings=len(s["coupled_joints"]), grasp_types=sorted(s["grasp_types"]),
               warnings=s["warnings"], inferred=s.get("inferred"))
    row["import"] = row.pop("import_")
    chk = ["hands", "check", str(folder), "--out", str(work / f"{name}_check.png")] + ([] if args.smoke else ["--no-smoke"])
    r = cli(chk, args.threads)
    row["check"] = "ok" if r.returncode == 0 else "FAILED: " + last_line(r)
    for obj in args.objects:
        out = work / "grasps" / name / obj
        t = time.perf_counter()
        r = cli(["generate", "--hand", str(folder), "--object", str(YCB / obj / f"{obj}.obj"), "--grasps", str(args.grasps),
                 "--iterations", str(args.iterations), "--out", str(out), "--quiet", *shlex.split(args.generate_flags)], args.threads)
        row[f"{obj}_synth_s"] = round(time.perf_counter() - t, 1)
        if r.returncode != 0:
            row[obj] = "synthesis failed: " + last_line(r)
            continue
        r = cli(["evaluate", str(out), "--protocol", "strict", "--workers", "1", "--json", "--quiet", "--force"], args.threads)
        if r.returncode != 0:
            row[obj] = "evaluation failed: " + last_line(r)
            continue
        ev = json.loads(r.stdout[r.stdout.index("{"):])["overall"]
        row[obj] = {"strict": ev.get("success_strict"), "D_mm": ev.get("D_mm"), "contact_mm": ev.get("contact_distance_mm")}
    return row


def table(rows: list[dict], objects: list[str]) -> str:
    head = "| hand | import | s | DoF | couplings | grasp types | " + " | ".join(f"{o} strict | D mm" for o in objects) + " | flags |"
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["hand"], r["import"] if r["import"] == "ok" else r["import"][:70], f"{r['import_s']:.0f}",
                 str(r.get("dof", "-")), str(r.get("couplings", "-")), ",".join(r.get("grasp_types", [])) or "-"]
        for o in objects:
            v = r.get(o)
            if isinstance(v, dict):
                cells += [f"{100 * v['strict']:.0f} %", f"{v['D_mm']:.1f}" if v["D_mm"] is not None else "-"]
            else:
                cells += [(v or "-")[:50], "-"]
        cells.append(f"`{r['flags']}`" if r["flags"] else "")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--objects", nargs="+", default=["013_apple", "005_tomato_soup_can"])
    ap.add_argument("--grasps", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--only", nargs="+", default=None, metavar="STEM", help="only these file stems")
    ap.add_argument("--flags", nargs="+", default=[], metavar="STEM=FLAGS", help="import flags for one hand file, e.g. jaco=\"--thumb thumb_distal\"")
    ap.add_argument("--generate-flags", default="", metavar="FLAGS", help="extra flags for every generate call, e.g. \"--best-of 2\"")
    ap.add_argument("--smoke", action="store_true", help="run hands check's synthesis smoke test too (slower)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None, help="keep hands and grasps here (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    args.flags = dict(f.split("=", 1) for f in args.flags)
    files = sorted(p for d in args.dirs for p in (*d.rglob("*.xml"), *d.rglob("*.urdf")))
    if args.only:
        files = [f for f in files if f.stem in args.only]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for f in files:
            row = run_hand(f, work, args)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("warnings", "inferred")}), flush=True)
    print(table(rows, args.objects))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
