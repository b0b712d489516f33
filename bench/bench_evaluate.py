"""Seconds per evaluated grasp in MuJoCo, per protocol and worker count; prints JSON.

    python bench/bench_evaluate.py GRASPFILE [--hand HAND] [--workers 1 2]

Times scene building separately from simulation (the scene is built once per file).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from graspforge.config import physics_protocol
from graspforge.io.grasp_set import GraspSet
from graspforge.pipelines.evaluation import grasp_set_object
from graspforge.evaluate.scene import build_scene
from graspforge.evaluate.simulate import GraspInputs, simulate_grasps
from graspforge.hands import load_hand_description
from graspforge.hands.meshes import link_collision_meshes
from graspforge.objects import collision_pieces


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("grasp_file")
    ap.add_argument("--hand", help="hand to simulate (default: the file's)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    torch.set_num_threads(1)
    gs = GraspSet.load(args.grasp_file)
    desc = load_hand_description(args.hand or gs.hand)
    obj = grasp_set_object(gs)
    t = time.perf_counter()
    pieces, origin = collision_pieces(obj)
    meshes = link_collision_meshes(desc)
    prep = time.perf_counter() - t
    inputs = GraspInputs(gs.root_position, gs.root_quaternion, gs.pregrasp_joint_positions, gs.joint_positions, gs.squeeze_joint_positions)
    out = {"file": args.grasp_file, "grasps": len(gs), "hand_geometry": meshes.origin, "object_pieces": len(pieces),
           "object_geometry": origin, "prepare_s": prep, "runs": []}
    for proto in ("strict", "reference"):
        physics = physics_protocol(proto)
        t = time.perf_counter()
        scene = build_scene(desc, meshes, pieces, physics, obj.name, origin)
        build = time.perf_counter() - t
        for w in args.workers:
            t = time.perf_counter()
            res = simulate_grasps(scene, physics, inputs, workers=w)
            dt = time.perf_counter() - t
            out["runs"].append({"protocol": proto, "workers": w, "build_s": build, "seconds": dt, "seconds_per_grasp": dt / len(gs),
                                "success_rate": sum(r["success"] for r in res) / len(res)})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
