"""``graspforge hands ...``: inspect built-in and user hands."""

from __future__ import annotations

import argparse
import json

import numpy as np

from ..hands import builtin_hand_names, load_hand_description
from ..hands.description import HandDescription


def add_parser(sub) -> None:
    p = sub.add_parser("hands", help="list and inspect hands")
    hs = p.add_subparsers(dest="hands_command", metavar="SUBCOMMAND", required=True)
    show = hs.add_parser("show", help="print a hand's joints, links, contact candidates and grasp types")
    show.add_argument("hand", help="built-in name, hand folder, or URDF/MJCF file")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_show)
    lst = hs.add_parser("list", help="list the built-in hands")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)


def summary(d: HandDescription) -> dict:
    """A JSON-friendly summary of a hand description."""
    t = d.tree
    types = t.actuated_joint_types()
    coupled = []
    for l in range(t.num_links):
        if t.q_index[l] >= 0 and t.joint_names[l] not in t.actuated_joints:
            coupled.append({"joint": t.joint_names[l], "follows": t.actuated_joints[t.q_index[l]], "multiplier": float(t.multiplier[l]), "offset": float(t.offset[l])})
    return {
        "name": d.name,
        "dof": d.dof,
        "joints": [
            {"name": j, "type": types[i], "lower": float(t.lower[i]), "upper": float(t.upper[i]), "canonical": float(d.canonical_q[i])}
            for i, j in enumerate(t.actuated_joints)
        ],
        "coupled_joints": coupled,
        "links": list(t.link_names),
        "root_link": t.link_names[0],
        "contact_candidates": d.candidates_per_link(),
        "num_candidates": int(len(d.contact_points)),
        "grasp_types": {k: {"links": v.links, "curl_joints": v.curl_joints} for k, v in d.grasp_types.items()},
        "approach_axis": np.round(d.approach_axis, 6).tolist(),
        "up_axis": np.round(d.up_axis, 6).tolist(),
        "collision_grids": len(d.grids),
        "self_collision_samples": int(len(d.surface_points)),
        "reference_spheres": int(len(d.spheres)),
        "warnings": list(d.warnings),
    }


def _print_summary(s: dict) -> None:
    print(f"hand {s['name']}: {s['dof']} DoF, {len(s['links'])} links (root {s['root_link']}), {s['num_candidates']} contact candidates")
    print(f"approach axis {s['approach_axis']}, up axis {s['up_axis']} (root frame)")
    print("\njoints (limits, canonical pose):")
    w = max(len(j["name"]) for j in s["joints"]) if s["joints"] else 4
    for j in s["joints"]:
        unit = "m" if j["type"] == "prismatic" else "rad"
        print(f"  {j['name']:<{w}}  {j['type']:<9} [{j['lower']:+.4f}, {j['upper']:+.4f}] {unit}  canonical {j['canonical']:+.4f}")
    for c in s["coupled_joints"]:
        print(f"  {c['joint']:<{w}}  follows {c['follows']} x {c['multiplier']:+.6g} {c['offset']:+.4g}")
    print("\nlinks (contact candidates):")
    for l in s["links"]:
        n = s["contact_candidates"].get(l, 0)
        print(f"  {l}{'  ' + str(n) if n else ''}")
    print("\ngrasp types:")
    for k, v in s["grasp_types"].items():
        links = ", ".join(f"{a} ({b})" for a, b in v["links"].items())
        curl = f"; curls {', '.join(v['curl_joints'])}" if v["curl_joints"] else ""
        print(f"  {k}: {links}{curl}")
    print(f"\ncollision: {s['collision_grids']} link distance grids, {s['self_collision_samples']} self-collision samples, {s['reference_spheres']} reference spheres")
    for wmsg in s["warnings"]:
        print(f"warning: {wmsg}")


def cmd_show(args: argparse.Namespace) -> int:
    s = summary(load_hand_description(args.hand))
    if args.json:
        print(json.dumps(s, indent=1))
    else:
        _print_summary(s)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = [summary(load_hand_description(n)) for n in builtin_hand_names()]
    if args.json:
        print(json.dumps([{k: r[k] for k in ("name", "dof", "num_candidates")} | {"links": len(r["links"]), "grasp_types": sorted(r["grasp_types"])} for r in rows], indent=1))
        return 0
    print(f"{'hand':<14} {'DoF':>4} {'links':>6} {'candidates':>11}  grasp types")
    for r in rows:
        print(f"{r['name']:<14} {r['dof']:>4} {len(r['links']):>6} {r['num_candidates']:>11}  {', '.join(sorted(r['grasp_types']))}")
    return 0
