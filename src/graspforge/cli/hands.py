"""``graspforge hands ...``: inspect built-in and user hands."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from ..config import ConfigError
from ..hands import builtin_hand_names, import_hand, load_hand, load_hand_description, user_hand_names
from ..hands.description import AUTO_CANDIDATE_CONTACTS, BuildOptions, HandDescription
from ..pipelines.synthesis import smoke_test
from ..viz import render_hand
from .generate import check_device


def add_parser(sub) -> None:
    p = sub.add_parser("hands", help="list and inspect hands")
    hs = p.add_subparsers(dest="hands_command", metavar="SUBCOMMAND", required=True)
    show = hs.add_parser("show", help="print a hand's joints, links, contact candidates and grasp types")
    show.add_argument("hand", help="built-in name, hand folder, or URDF/MJCF file")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_show)
    lst = hs.add_parser("list", help="list the built-in and imported hands")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
    imp = hs.add_parser("import", help="make a hand from a URDF/MJCF (with or without the reference JSON files)",
                        description="Build a hand from a URDF/MJCF with meshes: contact candidates on the palmar side of "
                        "finger and palm links, collision grids, self-collision samples, hand frame, grasp types, open "
                        "pose, mimic joints. The reference's contact_points.json / penetration_points.json / "
                        "eigengrasps.json next to the model are used when present. Writes a hand folder that "
                        "'--hand NAME' finds (in $GRASPFORGE_HANDS_DIR or ~/.local/share/graspforge/hands).")
    imp.add_argument("model", help="URDF (.urdf) or MJCF (.xml) file, or a folder holding exactly one")
    imp.add_argument("--name", required=True, help="name to load the hand by")
    imp.add_argument("--out", default=None, help="write the hand folder here instead of the user hands folder")
    imp.add_argument("--candidates-per-link", type=int, default=BuildOptions.default_candidates_per_link,
                     help="contact candidates per link without a contact file (default %(default)s)")
    imp.add_argument("--link-candidates", nargs="+", default=[], metavar="LINK=N",
                     help="candidates for named links (0 leaves a link out; a named link with no palmar side gets them anywhere)")
    imp.add_argument("--no-known-facts", action="store_true",
                     help="infer open pose, axes and couplings even for hands graspforge knows (hands/known.py)")
    imp.add_argument("--angle", choices=["degree", "radian"], default=None,
                     help="MJCF only: read the file's angles in this unit (default: its <compiler angle>, MuJoCo's degree "
                     "when it sets none, radian when every range is implausibly small and its servos command radians)")
    imp.add_argument("--root-link", default=None, metavar="LINK", help="the hand starts at this link; links above it (arm, mount) are cut off")
    imp.add_argument("--palm-link", default=None, metavar="LINK", help="the palm (default: the deepest link above every fingertip); geometry above it is dropped")
    imp.add_argument("--thumb", default=None, metavar="LINK", help="a link of the thumb (default: by name, then by geometry)")
    imp.add_argument("--closing", nargs="+", default=[], metavar="JOINT=SIGN",
                     help="which way a joint closes: +1, -1, or 0 (does not close); default from its range, else its servo's ctrlrange")
    imp.add_argument("--open", nargs="+", default=[], metavar="JOINT=VALUE",
                     help="open (canonical) pose of these joints, rad or m, instead of the inferred one")
    imp.add_argument("--couple", nargs="+", default=[], metavar="FOLLOWER=DRIVER:MULT[:OFFSET]",
                     help="drive FOLLOWER from DRIVER (follower = MULT * driver + OFFSET), for joints the file leaves independent")
    imp.add_argument("--approach", default=None, metavar="AXIS", help="approach axis in the root frame: x, y, z, -x, -y, -z or ax,ay,az")
    imp.add_argument("--up", default=None, metavar="AXIS", help="up axis in the root frame (same forms as --approach)")
    imp.add_argument("--geometry", choices=["hull", "mesh"], default=BuildOptions.link_geometry,
                     help="synthesise against each link's convex hull (default: what evaluate simulates for an imported hand) "
                     "or its exact meshes")
    imp.add_argument("--force", action="store_true", help="replace an existing hand folder")
    imp.add_argument("--json", action="store_true", help="print the summary as JSON")
    imp.set_defaults(func=cmd_import)
    chk = hs.add_parser("check", help="draw a hand's candidates and collision geometry, and run a synthesis smoke test",
                        description="Writes a PNG (three views: collision geometry, contact candidates with normals, "
                        "approach/up axes) and optimises a few grasps on a built-in sphere; reports what went wrong "
                        "if they do not converge. Exit code 1 when the smoke test fails.")
    chk.add_argument("hand", help="built-in or imported name, hand folder, or URDF/MJCF file")
    chk.add_argument("--out", default=None, help="PNG path (default HAND_check.png)")
    chk.add_argument("--grasp-type", default="full")
    chk.add_argument("--grasps", type=int, default=16)
    chk.add_argument("--contacts", type=int, default=4, help="contacts per grasp (default %(default)s)")
    chk.add_argument("--iterations", type=int, default=1500, help="optimiser iterations, schedule compressed (default %(default)s)")
    chk.add_argument("--radius", type=float, default=0.03, help="sphere radius, m (default %(default)s)")
    chk.add_argument("--no-smoke", action="store_true", help="only draw the picture")
    chk.add_argument("--device", default="cpu", help="device of the smoke test's synthesis: cpu, cuda, ... (default cpu)")
    chk.set_defaults(func=cmd_check)


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
        "contacts_per_grasp": int(d.contacts),
        "grasp_types": {k: {"links": v.links, "curl_joints": v.curl_joints, "curl_signs": v.curl_signs or [1] * len(v.curl_joints)}
                        for k, v in d.grasp_types.items()},
        "approach_axis": np.round(d.approach_axis, 6).tolist(),
        "up_axis": np.round(d.up_axis, 6).tolist(),
        "collision_grids": len(d.grids),
        "self_collision_samples": int(len(d.surface_points)),
        "reference_spheres": int(len(d.spheres)),
        "inferred": d.provenance.get("inferred"),
        "warnings": list(d.warnings),
    }


def _print_summary(s: dict) -> None:
    print(f"hand {s['name']}: {s['dof']} DoF, {len(s['links'])} links (root {s['root_link']}), {s['num_candidates']} contact candidates, "
          f"{s['contacts_per_grasp']} contacts per grasp by default (generate --contacts N)")
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
        curl = (f"; curls {', '.join(j + (' (to lower)' if s < 0 else '') for j, s in zip(v['curl_joints'], v['curl_signs']))}"
                if v["curl_joints"] else "")
        print(f"  {k}: {links}{curl}")
    print(f"\ncollision: {s['collision_grids']} link distance grids, {s['self_collision_samples']} self-collision samples, {s['reference_spheres']} reference spheres")
    inf = s.get("inferred")
    if inf:
        print("\ninferred (each settled by the flag named):")
        print(f"  angle unit: {inf['angle_unit']}  (--angle)")
        print(f"  root link: {inf['root_link']}  (--root-link)")
        print(f"  palm: {inf['palm']}  (--palm-link)")
        if inf["above_palm_dropped"]:
            print(f"  above the palm, not grasping geometry (dropped): {', '.join(inf['above_palm_dropped'])}")
        print(f"  fingers: {'; '.join(' > '.join(f) for f in inf['fingers'])}")
        print(f"  thumb: {inf['thumb'] or 'none'} ({inf['thumb_from']})  (--thumb)")
        print(f"  approach axis {inf['approach_axis']}, up axis {inf['up_axis']} ({inf['axes_from']})  (--approach, --up)")
        print("  closing: " + ", ".join(f"{j} {'+1' if c['sign'] > 0 else '-1' if c['sign'] < 0 else '0'} ({c['from']})" for j, c in inf["closing"].items()) + "  (--closing JOINT=SIGN)")
        if inf.get("thumb_opposed_by"):
            j = inf["thumb_opposed_by"]
            q = next(x["canonical"] for x in s["joints"] if x["name"] == j)
            print(f"  open pose: thumb swung into opposition by {j} = {q:.3f}  (--open {j}=VALUE)")
        if inf["couplings_from"]:
            print(f"  couplings from: {', '.join(inf['couplings_from'])}")
        print(f"  synthesis geometry: {inf['link_geometry']}  (--geometry)")
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
    rows = [summary(load_hand_description(n)) | {"kind": "built-in"} for n in builtin_hand_names()]
    rows += [summary(load_hand_description(n)) | {"kind": "imported"} for n in user_hand_names()]
    if args.json:
        print(json.dumps([{k: r[k] for k in ("name", "kind", "dof", "num_candidates")} | {"links": len(r["links"]), "grasp_types": sorted(r["grasp_types"])} for r in rows], indent=1))
        return 0
    print(f"{'hand':<14} {'kind':<9} {'DoF':>4} {'links':>6} {'candidates':>11}  grasp types")
    for r in rows:
        print(f"{r['name']:<14} {r['kind']:<9} {r['dof']:>4} {len(r['links']):>6} {r['num_candidates']:>11}  {', '.join(sorted(r['grasp_types']))}")
    return 0


def _assignments(items: list[str], flag: str, expected: str, parse, last: bool = False) -> dict:
    """``NAME=VALUE`` items of ``flag`` -> {name: parse(VALUE)}, split at the first ``=`` (the last
    with ``last``: joint names may hold one); a missing name or a value ``parse`` refuses
    (ValueError) is one ConfigError saying what was ``expected``."""
    out = {}
    for it in items:
        name, sep, v = it.rpartition("=") if last else it.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = parse(v)
        except ValueError:
            raise ConfigError(f"{flag} {it!r}: expected {expected}") from None
    return out


def _count(v: str) -> int:
    n = int(v)
    if n < 0:
        raise ValueError
    return n


def _sign(v: str) -> int:
    if v.strip() not in ("+1", "1", "-1", "0"):
        raise ValueError
    return int(v)


def _finite(v: str) -> float:
    x = float(v)
    if not math.isfinite(x):
        raise ValueError
    return x


def _coupling(v: str) -> tuple[str, float, float]:
    driver, *nums = v.split(":")
    if not driver or len(nums) not in (1, 2):
        raise ValueError
    mult, offset = _finite(nums[0]), _finite(nums[1]) if len(nums) == 2 else 0.0
    if mult == 0:
        raise ValueError
    return driver, mult, offset


def cmd_import(args: argparse.Namespace) -> int:
    if args.candidates_per_link < 1:
        raise ConfigError("--candidates-per-link must be >= 1")
    opts = BuildOptions(default_candidates_per_link=args.candidates_per_link,
                        link_candidates=_assignments(args.link_candidates, "--link-candidates", "LINK=N (N an integer >= 0)", _count),
                        use_known_facts=not args.no_known_facts, root_link=args.root_link, palm_link=args.palm_link,
                        thumb_link=args.thumb, approach=args.approach, up=args.up,
                        closing=_assignments(args.closing, "--closing", "JOINT=+1, JOINT=-1 or JOINT=0", _sign, last=True),
                        open_pose=_assignments(args.open, "--open", "JOINT=VALUE (a finite number, rad or m)", _finite, last=True),
                        couplings=_assignments(args.couple, "--couple", "FOLLOWER=DRIVER:MULT or FOLLOWER=DRIVER:MULT:OFFSET "
                                               "(MULT a non-zero number)", _coupling),
                        link_geometry=args.geometry, angle=args.angle)
    desc, folder = import_hand(args.model, args.name, out=args.out, options=opts, force=args.force)
    s = summary(desc) | {"folder": str(folder)}
    if args.json:
        print(json.dumps(s, indent=1))
    else:
        _print_summary(s)
        print(f"\nwritten to {folder}; use it as --hand {args.name if args.out is None else folder}")
        if desc.contacts == AUTO_CANDIDATE_CONTACTS:
            # generated candidates converge less surely than a hand-made contact file's
            print("generate --best-of 2 keeps the lower-energy of two candidates per grasp: on the reference hands imported "
                  "without their contact files, strict success 79 % -> 89 % at twice the synthesis time (a run twice as "
                  "long: 84 %)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    desc = load_hand_description(args.hand)
    desc.grasp_type(args.grasp_type)  # unknown type: clear error before any work
    out = args.out or f"{desc.name}_check.png"
    render_hand(desc, out)
    print(f"{desc.name}: {desc.dof} DoF, {len(desc.contact_points)} contact candidates; picture written to {out}")
    for w in desc.warnings:
        print(f"warning: {w}")
    if args.no_smoke:
        return 0
    if getattr(args, "threads_global", None) is None:
        torch.set_num_threads(1)  # small batched ops: one thread is faster (see generate)
    hand = load_hand(args.hand, device=check_device(args.device))
    r = smoke_test(hand, grasps=args.grasps, iterations=args.iterations, radius=args.radius, grasp_type=args.grasp_type, contacts=args.contacts)
    print(f"smoke test: {args.grasps} grasps, {args.contacts} contacts, {args.iterations} iterations on a {args.radius * 100:g} cm "
          f"sphere in {r.seconds:.1f} s: {r.ok_fraction:.0%} with mean |contact distance| < 5 mm "
          f"(median {np.median(r.contact_distance) * 1000:.1f} mm)")
    print("median energy terms: " + ", ".join(f"{k[7:]} {v:.4f}" for k, v in r.terms.items()))
    for p in r.problems:
        print(f"problem: {p}")
    print("smoke test passed" if r.passed else "smoke test FAILED")
    return 0 if r.passed else 1
