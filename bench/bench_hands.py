"""Hand geometry figures, printed as JSON:

- FK + contact points (and their backward pass) for B = 1024 Allegro poses, ms;
- the collision-grid depth error against the exact link meshes (max and 95th percentile, finger
  links, palm/base links and all links) for each hand found in ../shared/assets/hands.

    python bench/bench_hands.py [--hands-dir DIR] [--threads 1] [--batch 1024]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from graspforge.hands import HandModel, load_hand_description
from graspforge.hands.checks import collision_grid_errors, summarize_errors


def _time(fn, repeat: int = 20) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def fk_timing(batch: int) -> dict:
    m = HandModel(load_hand_description("allegro"))
    g = torch.Generator().manual_seed(0)
    pose = m.canonical_pose(batch)
    pose[:, :3] = torch.randn(batch, 3, generator=g) * 0.05
    pose[:, 3:9] = torch.randn(batch, 6, generator=g)
    pose[:, 9:] = m.lower + (m.upper - m.lower) * torch.rand(batch, m.dof, generator=g)
    idx = torch.randint(0, m.num_candidates, (batch, 12), generator=g)

    def fwd():
        with torch.no_grad():
            m.contact_points(m.forward_kinematics(pose), idx)

    p = pose.clone().requires_grad_()

    def fwd_bwd():
        pts, nrm = m.contact_points(m.forward_kinematics(p), idx)
        (pts.sum() + nrm.sum()).backward()

    def all_candidates():
        with torch.no_grad():
            m.all_contact_candidates(m.forward_kinematics(pose))

    def fk_only():
        with torch.no_grad():
            m.forward_kinematics(pose)

    out = {}
    urdf = Path(__file__).resolve().parents[2] / "shared" / "assets" / "hands" / "allegro" / "allegro_hand.urdf"
    if urdf.is_file():  # the same FK through pytorch_kinematics, for scale
        import pytorch_kinematics as pk

        chain = pk.build_chain_from_urdf(urdf.read_text())
        q = pose[:, 9:].clone()

        def pk_fk():
            with torch.no_grad():
                chain.forward_kinematics(q)

        out["pytorch_kinematics_fk_ms"] = round(_time(pk_fk), 3)
    return out | {
        "hand": "allegro", "batch": batch, "contacts": 12,
        "fk_ms": round(_time(fk_only), 3),
        "fk_contacts_ms": round(_time(fwd), 3),
        "fk_contacts_fwd_bwd_ms": round(_time(fwd_bwd), 3),
        "fk_all_92_candidates_ms": round(_time(all_candidates), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hands-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "assets" / "hands")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1024)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {"threads": args.threads, "fk": fk_timing(args.batch), "collision_depth_error": {}}
    if args.hands_dir.is_dir():
        for d in sorted(p for p in args.hands_dir.iterdir() if p.is_dir()):
            desc = load_hand_description(d)
            s = summarize_errors(collision_grid_errors(desc))
            s.update({"dof": desc.dof, "grids": len(desc.grids), "grid_nodes": int(sum(g.values.size for g in desc.grids))})
            out["collision_depth_error"][d.name] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.items()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
