"""``graspforge generate``: synthesise grasps for a hand on one or more objects."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write_text, safe_filename
from ..config import ENERGY_METHODS, OPTIMIZERS, dump_toml, load_config
from ..hands import load_hand
from ..io.grasp_set import GraspSet, GraspSetError
from ..objects import load_objects
from ..pipelines.synthesis import contacts_per_grasp, physics_check_hand, synthesize
from .progress import progress_bar


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="synthesise grasps (GraspQP + MALA* by default)",
                       description="Synthesise grasps for a hand on objects; one grasp-set file per (object, hand, grasp type).")
    p.add_argument("--hand", help="built-in hand name, hand folder, or URDF/MJCF file (default allegro)")
    p.add_argument("--object", dest="objects", nargs="+", metavar="OBJECT",
                   help="built-in object (box, sphere:radius=0.03, ...), mesh file, or folder of meshes (default box)")
    p.add_argument("--grasps", type=int, help="grasps per object (default 32)")
    p.add_argument("--grasp-type", nargs="+", help="full, precision, pinch, fingertip, ... (default full)")
    p.add_argument("--contacts", type=int, help="contacts per grasp K (default: the hand's own - 12 for the built-in hands, "
                   "4 for hands imported without a contact file)")
    p.add_argument("--energy", choices=ENERGY_METHODS, help="force-closure energy (default graspqp)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="annealer (default mala_star)")
    p.add_argument("--iterations", type=int, help="optimiser iterations (default 7000); the annealing schedule (step-size and "
                   "temperature decay, resets) is compressed to fit, so a short run still ends cold (--set optimizer.iterations=N "
                   "changes the count alone)")
    p.add_argument("--seed", type=int, help="random seed; the same seed reproduces a run bit for bit on one machine")
    p.add_argument("--best-of", type=int, metavar="N",
                   help="optimise each grasp N times (independent populations) and keep the lowest-energy one (default 1; "
                        "costs N syntheses)")
    p.add_argument("--check-rounds", type=int, metavar="N",
                   help="physics check in the loop: simulate every grasp (check.protocol, default dexgraspbench) and replace "
                        "failing ones from up to N fresh synthesis rounds (default 0: off; each round costs one more synthesis)")
    p.add_argument("--check-hand", metavar="MJCF",
                   help="run the physics check in this model of the hand (the one that will execute the grasps, e.g. "
                        "DexGraspBench's Allegro), aligned to ours by forward kinematics (default: the synthesised hand)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument("--objects-per-batch", type=int, default=0, help="objects optimised together (default: all, up to 8)")
    p.add_argument("--config", type=Path, help="TOML file with any setting (see the written config.toml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any setting, e.g. energy.w_pen=50")
    p.add_argument("--out", help="output folder (default ./grasps)")
    p.add_argument("--resume", action="store_true", help="skip (object, hand, type) outputs that already exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)


def check_device(name: str):
    """``torch.device(name)``, or a clear exit when it is not a device or not available here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise SystemExit(f"graspforge: error: --device {name!r} is not a device ({e}); use cpu, cuda, cuda:1, ...") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"graspforge: error: --device {name} asked for, but this torch build sees no CUDA device "
                             f"(torch {torch.__version__}; the default install is the CPU build)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SystemExit(f"graspforge: error: --device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type != "cpu":
        raise SystemExit(f"graspforge: error: --device {name}: only cpu and cuda devices are supported")
    return device


def synthesis_overrides(sets: list[str] = (), resume: bool = False, **values) -> dict:
    """Dotted config overrides from command-line values (``None`` = not given) and ``--set KEY=VALUE`` items.

    ``values`` keys: hand, objects, grasps, contacts, best_of, seed, device, out, energy, optimizer, check_rounds, check_hand.
    ``--iterations`` is not an override: :func:`with_iterations` compresses the schedule after loading.
    """
    keys = {"hand": "hand", "objects": "objects", "grasps": "grasps", "contacts": "contacts", "best_of": "best_of", "seed": "seed",
            "device": "device", "out": "out", "energy": "energy.method", "optimizer": "optimizer.name",
            "check_rounds": "check.rounds", "check_hand": "check.hand"}
    o: dict = {keys[k]: v for k, v in values.items() if v is not None}
    if resume:
        o["resume"] = True
    for item in sets:
        if "=" not in item:
            raise SystemExit(f"graspforge: error: --set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        o[k.strip()] = v.strip()
    return o


def _overrides(args: argparse.Namespace) -> dict:
    return synthesis_overrides(args.set, args.resume, hand=args.hand, objects=args.objects, grasps=args.grasps, contacts=args.contacts,
                               best_of=args.best_of, seed=args.seed, device=args.device, out=args.out, energy=args.energy, optimizer=args.optimizer,
                               check_rounds=args.check_rounds,
                               check_hand=args.check_hand)


def with_iterations(cfg, iterations: int | None):
    """``cfg`` with its optimiser schedule compressed to ``iterations`` (``--iterations``; None: as
    is): every decay and reset period scaled (:meth:`~graspforge.config.OptimizerConfig.compressed`),
    as ``hands check`` and the benches do, so that the run ends as cold as the full schedule. Validated."""
    if iterations is not None:
        cfg.optimizer = cfg.optimizer.compressed(iterations)
    return cfg.validate()


def _safe(s: str) -> str:
    return safe_filename(s, "object")


def object_stems(objects) -> list[str]:
    """File-name stems: the object name, or the full spec of a parametrised built-in; objects whose
    stems collide (two meshes named alike) get a short content hash appended."""
    stems = [_safe(o.source[len("builtin:"):] if str(o.source).startswith("builtin:") else o.name) for o in objects]
    dup = {s for s in stems if stems.count(s) > 1}
    return [f"{s}-{o.content_hash[:8]}" if s in dup else s for s, o in zip(stems, objects)]


def output_path(out: Path, stem: str, hand: str, grasp_type: str) -> Path:
    return out / f"{stem}__{_safe(hand)}__{_safe(grasp_type)}.npz"


def hand_span(desc) -> float:
    """The largest distance (m) between two contact candidates of ``desc`` over its open (canonical)
    pose and its joint limits: how wide an object the hand can reach around."""
    tree = desc.tree
    span = 0.0
    for q in (desc.canonical_q, tree.lower, tree.upper, 0.5 * (tree.lower + tree.upper)):
        T = tree.forward_numpy(np.asarray(q, np.float64))
        L = desc.contact_links
        p = np.einsum("cij,cj->ci", T[L, :3, :3], desc.contact_points) + T[L, :3, 3]
        span = max(span, float(np.max(np.linalg.norm(p[:, None] - p[None], axis=-1))))
    return span


def _summary_table(rows: list[dict]) -> str:
    checked = any(r.get("check") is not None for r in rows)
    head = f"{'object':<24} {'type':<10} {'grasps':>6} {'E mean':>9} {'E min':>9} {'|d|<5mm':>8} {'V<0.05':>7} {'maxpen':>7} {'s':>7}"
    head += f" {'check':>6}" if checked else ""
    lines = [head, "-" * len(head)]
    for r in rows:
        line = (f"{r['object'][:24]:<24} {r['type'][:10]:<10} {r['grasps']:>6} {r['e_mean']:>9.3f} {r['e_min']:>9.3f} "
                f"{r['contact_ok']:>7.0%} {r['v_ok']:>7.0%} {r['pen_mm']:>7.2f} {r['seconds']:>7.1f}")
        if checked:
            line += f" {r['check']:>6.0%}" if r.get("check") is not None else f" {'-':>6}"
        lines.append(line)
    return "\n".join(lines)


def _config(args: argparse.Namespace):
    """The run's configuration: ``--config`` file, ``--set`` and flag overrides, ``--iterations``
    compression, ``--grasp-type`` and ``--threads``; validated. Also the grasp types as a list."""
    cfg = with_iterations(load_config(args.config, _overrides(args)), args.iterations)
    if args.grasp_type:
        cfg.grasp_type = ",".join(args.grasp_type)
    if args.threads_global is not None:
        cfg.threads = args.threads_global
    return cfg, [t for t in cfg.grasp_type.replace(",", " ").split() if t]


def _preflight(hand, objects, cfg, types: list[str]) -> None:
    """Every check that can fail before any work (unknown grasp types, a check hand that is not a
    model of this hand), and the warnings a user should read first (too few candidates, an object
    wider than the hand spans)."""
    for t in types:
        hand.description.grasp_type(t)
        n_cand = int(hand.description.candidate_mask(t).sum())
        if cfg.contacts > n_cand:
            print(f"graspforge: warning: --contacts {cfg.contacts} exceeds the {n_cand} contact candidates of grasp type {t!r} "
                  f"of {hand.description.name!r}: candidates will repeat (as the reference allows)", file=sys.stderr)
    if cfg.check.rounds:
        physics_check_hand(hand, cfg.check)
    elif cfg.check.hand:
        print("graspforge: warning: check.hand is used only with --check-rounds N (N >= 1)", file=sys.stderr)
    span = hand_span(hand.description)
    for obj in objects:
        smallest = float(np.min(obj.extents))
        if smallest > span:
            print(f"graspforge: warning: object {obj.name!r} is {smallest * 1000:.0f} mm across at its narrowest, more than "
                  f"{hand.description.name!r} spans ({span * 1000:.0f} mm between its farthest contact candidates): its grasps "
                  "may not close around it (wrong units? --set scale, or a mesh in millimetres)", file=sys.stderr)


def _pending(objects, stems: list[str], out: Path, hand, gtype: str, resume: bool) -> tuple[list, int]:
    """(object, output path) pairs still to synthesise for ``gtype``, and how many ``--resume`` skips
    (outputs that exist and load; an unreadable one is redone)."""
    todo, skipped = [], 0
    for obj, stem in zip(objects, stems):
        path = output_path(out, stem, hand.description.name, hand.description.grasp_type(gtype).name)
        if resume and path.exists():
            try:
                GraspSet.load(path)
                skipped += 1
                continue
            except GraspSetError:
                pass
        todo.append((obj, path))
    return todo, skipped


def _summary_row(gs: GraspSet, obj, gtype: str, path: Path, seconds: float) -> dict:
    pen = gs.extra["penetration_depth"]
    return {
        "object": obj.name, "type": gtype, "grasps": len(gs), "e_mean": float(np.mean(gs.energy)),
        "e_min": float(np.min(gs.energy)), "contact_ok": float(np.mean(np.abs(gs.contact_distance).mean(1) < 0.005)),
        "v_ok": float(np.mean(gs.qp_value < 0.05)), "pen_mm": float(np.max(pen)) * 1e3 if len(pen) else math.nan,
        "seconds": seconds, "path": str(path),
        "check": float(np.mean(gs.extra["check_success"])) if "check_success" in gs.extra else None,
    }


def cmd_generate(args: argparse.Namespace) -> int:
    cfg, types = _config(args)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = check_device(cfg.device)
    out = Path(cfg.out)

    # everything is checked before anything is written: a failed command leaves no folder behind
    hand = load_hand(cfg.hand, device=device, self_collision_points_per_link=cfg.energy.self_collision_points)
    cfg.contacts = contacts_per_grasp(cfg, hand)  # config.toml records the number used
    objects = load_objects(cfg.objects)
    _preflight(hand, objects, cfg, types)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.toml", dump_toml(cfg))
    per_batch = args.objects_per_batch or min(8, len(objects))
    stems = object_stems(objects)
    rows, skipped = [], 0
    t_start = time.perf_counter()
    try:
        for gtype in types:
            todo, n_skip = _pending(objects, stems, out, hand, gtype, cfg.resume)
            skipped += n_skip
            for i in range(0, len(todo), per_batch):
                chunk = todo[i:i + per_batch]
                names = ", ".join(o.name for o, _ in chunk)
                bar = None
                if not args.quiet:
                    bar = progress_bar(cfg.best_of * (cfg.optimizer.iterations + cfg.optimizer.refine_iterations),
                                       f"{names[:40]} [{gtype}]", "it")

                def progress(opt, done, bar=bar):
                    # called every few steps, after the optimiser read its device counters
                    if bar is not None:
                        bar.update(done - bar.n)
                        bar.set_postfix(E=f"{float(opt.energy.mean()):.3f}", acc=f"{opt.stats.accept_rate:.0%}", resets=opt.stats.resets, nan=opt.stats.nan_resets)

                def on_round(r, failing, bar=bar):
                    if bar is not None:
                        bar.reset()
                    print(f"physics check: {sum(failing.values())} grasp(s) of {len(failing)} object(s) failed {cfg.check.protocol}; "
                          f"round {r} of {cfg.check.rounds} re-synthesises them", file=sys.stderr)

                res = synthesize(hand, [o for o, _ in chunk], cfg, grasp_type=gtype, progress=progress, on_round=on_round)
                if bar is not None:
                    bar.close()
                for (obj, path), gs in zip(chunk, res.grasp_sets):
                    gs.save(path)
                    rows.append(_summary_row(gs, obj, gtype, path, res.seconds / len(chunk)))
                if res.stats.nan_resets:
                    print(f"note: {res.stats.nan_resets} grasp(s) were reset after non-finite energies", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"\ngraspforge: interrupted; {len(rows)} finished output(s) kept in {out}; rerun with --resume to continue", file=sys.stderr)
        return 130
    if rows:
        print(_summary_table(rows))
        print("|d|<5mm: grasps whose contacts lie within 5 mm of the surface on average; V<0.05: force-closure QP value; "
              "maxpen: the deepest object sample inside the hand over the set, mm, on the optimiser's geometry "
              "(evaluate's D is the mean exact-mesh depth)" +
              (f"; check: grasps passing the {cfg.check.protocol} physics check after {cfg.check.rounds} extra round(s)"
               if cfg.check.rounds else ""))
    print(f"{len(rows)} grasp set(s) written to {out}" + (f", {skipped} already done (--resume)" if skipped else "") +
          f" in {time.perf_counter() - t_start:.1f} s")
    return 0
