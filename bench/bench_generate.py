"""Synthesis speed, printed as JSON: time per optimiser iteration (energy + gradient + MALA* step)
for several batch sizes, and per-term forward+backward timings.

Settings of issue 3's targets: Allegro, 12 contacts, 2500 object points, graspqp energy, MALA*.

    python bench/bench_generate.py [--object box] [--batches 16 32 128 512] [--iterations 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from graspforge.config import load_config
from graspforge.energy.model import GraspEnergy
from graspforge.energy.scene import ObjectBatch
from graspforge.energy.terms import contact_distance_energy, joint_limit_energy
from graspforge.hands import load_hand
from graspforge.objects import load_object
from graspforge.backend import use_kernels
from graspforge.pipelines.synthesis import make_optimizer, synthesize


def _best(fn, repeat: int) -> float:
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2] * 1e3  # median, ms


def term_timings(hand, obj, B: int, K: int, repeat: int) -> dict:
    cfg = load_config(overrides={"grasps": B, "contacts": K, "optimizer.iterations": 60})
    # realistic poses and contacts: a short optimisation run first
    res = synthesize(hand, [obj], cfg)
    gs = res.grasp_sets[0]
    pose = torch.as_tensor(gs.hand_poses(), dtype=torch.float32)
    contacts = torch.as_tensor(gs.contact_indices)
    batch = ObjectBatch([obj], B)
    energy = GraspEnergy(hand, batch, cfg.energy)
    energy(pose, contacts)  # warm start the QP

    def run(f):
        def go():
            x = pose.clone().requires_grad_()
            out = f(x)
            out.sum().backward()
        return go

    def fk(x):
        st = hand.forward_kinematics(x)
        return st.links.pos.sum(-1).sum(-1)

    def dis(x):
        st = hand.forward_kinematics(x)
        p, n_h, d, n_o = energy.contact_geometry(st, contacts)
        return contact_distance_energy(d, n_o, n_h, "exp")

    def fc(x):
        st = hand.forward_kinematics(x)
        p, n_h, d, n_o = energy.contact_geometry(st, contacts)
        return energy.force_closure(p, n_o)

    def pen(x):
        return hand.penetration_depth(hand.forward_kinematics(x), energy.object_points).sum(-1)

    def hpen(x):
        return energy.hand_in_object(hand.forward_kinematics(x))

    def spen(x):
        return hand.self_penetration(hand.forward_kinematics(x))

    def joints(x):
        return joint_limit_energy(x[:, 9:], hand.lower, hand.upper)

    def total(x):
        return energy(x, contacts)[0]

    out = {name: round(_best(run(f), repeat), 3) for name, f in
           (("fk", fk), ("fk+E_dis", dis), ("fk+E_dis+E_fc", fc), ("fk+E_pen", pen), ("fk+E_hpen", hpen), ("fk+E_spen", spen), ("E_joints", joints), ("total", total))}
    with torch.no_grad():
        st = hand.forward_kinematics(pose)
        p, _, _, n_o = energy.contact_geometry(st, contacts)
        G = energy.qp.grasp_matrix(p, n_o, batch.center)
        out["qp_solve_warm"] = round(_best(lambda: energy.qp.solve(G), repeat), 3)
    return out


def iteration_timing(hand, obj, B: int, K: int, iterations: int) -> float:
    """Median ms of one optimiser step (energy + gradient + MALA*) at B grasps, after 5 warm-up steps."""
    cfg = load_config(overrides={"grasps": B, "contacts": K, "optimizer.iterations": iterations + 5})
    opt, _, _ = make_optimizer(hand, [obj], cfg)
    cuda = hand.device.type == "cuda"
    ts = []
    for i in range(iterations + 5):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        if i >= 5:
            ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--object", default="box")
    ap.add_argument("--hand", default="allegro")
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 128, 512])
    ap.add_argument("--contacts", type=int, default=12)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--compare-kernels", action="store_true", help="also time B = 16 and 32 on the torch backend (fused kernels off)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    hand = load_hand(args.hand, device=args.device)
    obj = load_object(args.object)
    out = {"hand": args.hand, "device": args.device, "object": args.object, "contacts": args.contacts, "threads": args.threads,
           "object_points": 2500, "energy": "graspqp", "optimizer": "mala_star",
           "ms_per_iteration": {}, "term_ms_fwd_bwd": {}}
    for B in args.batches:
        out["ms_per_iteration"][B] = round(iteration_timing(hand, obj, B, args.contacts, args.iterations), 2)
    for B in [b for b in args.batches if b <= 32]:
        out["term_ms_fwd_bwd"][B] = term_timings(hand, obj, B, args.contacts, args.repeat)
    if args.compare_kernels:
        with use_kernels("torch"):
            torch_path = {B: round(iteration_timing(hand, obj, B, args.contacts, args.iterations), 2) for B in (16, 32)}
        fused = {B: round(iteration_timing(hand, obj, B, args.contacts, args.iterations), 2) for B in (16, 32)}
        out["kernels_comparison_ms_per_iteration"] = {"torch_path": torch_path, "fused_kernels": fused,
                                                      "speedup": {B: round(torch_path[B] / fused[B], 2) for B in (16, 32)}}
    if 32 in out["ms_per_iteration"]:
        out["projected_7000_iterations_B32_s"] = round(out["ms_per_iteration"][32] * 7000 / 1e3, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
