"""The paper's comparison at a size one machine can run: ``graspforge bench paper``.

Every (hand, setting) is synthesised on every object, evaluated under both protocols with the
exact-mesh geometry, and kept on disk (``OUT/runs/HAND/SETTING/OBJECT.npz`` with its
``.eval.json`` sidecar and a ``.run.json`` of timings and the energy curve), so an interrupted
run resumes where it stopped. :func:`write_report` then reads the files back and writes
``report.md``, ``report.html`` (self-contained) and PNG plots: the Table-1 layout (UGR / H per hand,
overall, D) with the paper's numbers beside ours, the unique-grasps-vs-seeds curve (Figure 4) and
energy-vs-iteration curves.
"""

from __future__ import annotations

import base64
import html
import json
import multiprocessing as mp
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import markdown
import numpy as np
import torch

from .. import __version__
from .._io import atomic_write_bytes, atomic_write_json, atomic_write_text, safe_filename
from ..config import (ENERGY_METHODS, OPTIMIZERS, EvaluateConfig, GenerateConfig, MetricsConfig, OptimizerConfig, dump_toml,
                      load_config, tomllib)
from ..errors import GraspforgeError
from ..evaluate.metrics import unique_vs_seeds
from ..hands import load_hand, load_hand_description
from ..io.grasp_set import GraspSet
from ..objects import load_object
from ..viz.figure import figure_png, pyplot
from ..viz.heatmap import CONTACT_DISTANCE, contact_heatmaps
from .dataset_build import expand_objects
from .evaluation import evaluate_grasp_set, grasp_set_object, pool_rows, settings_key, summary_row, write_evaluation
from .synthesis import synthesize

#: the paper's Table 1 (METHOD.md s. 9): UGR % / H per hand under its Isaac Lab protocol, 50 DexGraspNet objects
PAPER_HANDS = ("allegro", "shadow_hand", "robotiq3", "robotiq2", "ability_hand")
PAPER_TABLE1: dict[tuple[int, str, str, str], dict] = {
    (12, "full", "graspqp", "mala_star"): {"allegro": (76, 3.6), "shadow_hand": (63, 3.5), "robotiq3": (57, 3.0), "robotiq2": (29, 3.2),
                                           "ability_hand": (35, 2.6), "overall": (52, 3.2), "D_mm": 1.4},
    (12, "full", "dexgraspnet", "mala"): {"allegro": (66, 3.5), "shadow_hand": (35, 2.9), "robotiq3": (33, 2.6), "robotiq2": (30, 3.2),
                                          "ability_hand": (18, 1.8), "overall": (37, 2.8), "D_mm": 1.6},
    (4, "full", "graspqp", "mala_star"): {"allegro": (74, 3.6), "shadow_hand": (49, 3.2), "robotiq3": (49, 2.9), "robotiq2": (34, 3.3),
                                          "ability_hand": (19, 1.8), "overall": (45, 3.0), "D_mm": 0.9},
    (12, "precision", "graspqp", "mala_star"): {"allegro": (55, 3.3), "shadow_hand": (29, 2.5), "robotiq3": (9, 1.1), "robotiq2": None,
                                                "ability_hand": (26, 2.3), "overall": (30, 2.3), "D_mm": 2.3},
    (12, "pinch", "graspqp", "mala_star"): {"allegro": (49, 3.1), "shadow_hand": (17, 1.8), "robotiq3": (4, 0.5), "robotiq2": None,
                                            "ability_hand": (23, 2.1), "overall": (23, 1.9), "D_mm": 2.3},
}
PROTOCOLS = ("reference", "strict")  # the paper's table uses the reference (Isaac Lab) protocol
SEEDS = (8, 16, 32, 64, 128, 256, 512)


class BenchError(GraspforgeError, ValueError):
    """A benchmark that cannot be run or reported as asked."""


@dataclass(frozen=True)
class Setting:
    """One row of the table: force-closure energy, optimiser, grasp type and contact count."""

    method: str
    optimizer: str
    grasp_type: str
    contacts: int

    @property
    def key(self) -> str:
        return f"{self.contacts}c_{self.grasp_type}_{self.method}_{self.optimizer}"

    @property
    def label(self) -> str:
        opt = {"mala_star": "MALA*", "mala": "MALA"}.get(self.optimizer, self.optimizer)
        return f"{self.contacts} contacts, {self.grasp_type}, {self.method} + {opt}"

    @classmethod
    def parse(cls, text: str, grasp_types: list[str], contacts: list[int]) -> list["Setting"]:
        """``METHOD:OPTIMIZER`` crossed with the grasp types and contact counts, or one row spelt out
        as ``METHOD:OPTIMIZER:TYPE:CONTACTS``; ``paper`` = the five rows of the paper's Table 1."""
        if text == "paper":
            return [cls(m, o, t, k) for (k, t, m, o) in PAPER_TABLE1]
        parts = text.split(":")
        if len(parts) not in (2, 4) or not all(parts):
            raise BenchError(f"method {text!r}: expected METHOD:OPTIMIZER or METHOD:OPTIMIZER:TYPE:CONTACTS, "
                             "e.g. graspqp:mala_star or graspqp:mala_star:pinch:12, or `paper`")
        m, o = parts[:2]
        if m not in ENERGY_METHODS or o not in OPTIMIZERS:
            raise BenchError(f"method {text!r}: energy one of {', '.join(ENERGY_METHODS)}, optimiser one of {', '.join(OPTIMIZERS)}")
        if len(parts) == 4:
            if not parts[3].isdigit() or int(parts[3]) < 1:
                raise BenchError(f"method {text!r}: CONTACTS must be a positive whole number")
            return [cls(m, o, parts[2], int(parts[3]))]
        return [cls(m, o, t, int(k)) for k in contacts for t in grasp_types]

    @property
    def paper_key(self) -> tuple:
        """This row's key in :data:`PAPER_TABLE1`: (contacts, grasp type, method, optimiser)."""
        return (self.contacts, self.grasp_type, self.method, self.optimizer)

    @property
    def order(self) -> tuple:
        """Sort key: the paper's row order first, then the rest by name."""
        rows = list(PAPER_TABLE1)
        return (rows.index(self.paper_key) if self.paper_key in rows else len(rows), self.key)


@dataclass
class PaperBench:
    """What ``graspforge bench paper`` runs. ``iterations`` None = the default schedule."""

    objects: list[str]
    hands: list[str]
    settings: list[Setting]
    grasps: int = 32
    iterations: int | None = None
    seeds_object: str | None = None
    seeds: list[int] = field(default_factory=lambda: list(SEEDS))
    seed: int = 0
    objects_per_batch: int = 5

    def validate(self) -> "PaperBench":
        if not self.objects or not self.hands or not self.settings:
            raise BenchError("bench paper needs objects, hands and at least one setting")
        if self.grasps < 1 or (self.iterations is not None and self.iterations < 1) or self.objects_per_batch < 1:
            raise BenchError("grasps, iterations and objects per batch must be >= 1")
        if self.seeds_object and (not self.seeds or min(self.seeds) < 1):
            raise BenchError("seeds must be positive grasp counts")
        return self


def _safe(s: str) -> str:
    return safe_filename(s, "x")


def _config_toml(setting: Setting, grasps: int, iterations: int | None, seed: int) -> str:
    o = {"grasps": grasps, "contacts": setting.contacts, "energy.method": setting.method, "optimizer.name": setting.optimizer, "seed": seed}
    if iterations is not None:
        o["optimizer.iterations"] = iterations
    return dump_toml(load_config(None, o, base=GenerateConfig()))


def run_unit(folder: str, hand: str, setting: dict, objects: list[tuple[str, str]], config_toml: str, threads: int = 1,
             device: str = "cpu") -> list[str]:
    """Synthesise one batch of objects for one (hand, setting), evaluate every grasp under both
    protocols plus exact geometry, and write ``OBJECT.npz`` / ``.eval.json`` / ``.run.json``.

    Top-level and plain-data driven, so a process pool can run it."""
    torch.set_num_threads(max(1, int(threads)))
    s = Setting(**setting)
    cfg = load_config(overrides=tomllib.loads(config_toml))
    model = load_hand(hand, device=device, self_collision_points_per_link=cfg.energy.self_collision_points)
    objs = [load_object(spec) for spec, _ in objects]
    t = time.perf_counter()
    res = synthesize(model, objs, cfg, grasp_type=s.grasp_type)
    synth = (time.perf_counter() - t) / len(objs)
    out = Path(folder)
    ecfg = EvaluateConfig()
    written = []
    for o, ((_, stem), obj, gs) in enumerate(zip(objects, objs, res.grasp_sets)):
        t = time.perf_counter()
        result = evaluate_grasp_set(gs, model.description, obj, ecfg, protocols=PROTOCOLS, workers=1)
        path, _ = write_evaluation(out / f"{stem}.npz", gs, result, ecfg, model.description.name, obj,
                                   settings_key(ecfg, PROTOCOLS, True, model.description.name))
        curve = [(it, float(e[o])) for it, e in res.stats.energy_curve]
        atomic_write_json(out / f"{stem}.run.json", {"object": obj.name, "hand": model.description.name, "setting": setting,
                                                    "synthesis_seconds": synth, "evaluation_seconds": time.perf_counter() - t,
                                                    "grasps": len(gs), "energy_curve": curve})
        written.append(str(path))
    return written


def _done(folder: Path, stem: str, grasps: int | None = None) -> bool:
    """Finished (both sidecars written) and, when ``grasps`` is given, with at least that many grasps."""
    run = folder / f"{stem}.run.json"
    if not (run.is_file() and (folder / f"{stem}.eval.json").is_file()):
        return False
    if grasps is None:
        return True
    try:
        return int(json.loads(run.read_text()).get("grasps", 0)) >= grasps
    except (ValueError, OSError):
        return False


def run_paper_bench(bench: PaperBench, out: str | Path, workers: int = 1, progress: Callable[[str], None] | None = None,
                    device: str = "cpu") -> dict:
    """Run every unfinished unit of ``bench`` under ``out`` (process pool of ``workers``); returns counts.

    ``device`` runs synthesis there (``cuda``); it is not part of the folder's schedule, so a report
    may pool units made on different devices. Evaluation always runs on CPU cores."""
    bench.validate()
    out = Path(out)
    objects = expand_objects(bench.objects)
    names = {}
    for h in bench.hands:
        d = load_hand_description(h)
        for s in bench.settings:
            d.grasp_type(s.grasp_type)  # unknown hand or type: fail before any work
        names[h] = d.name
    meta = {**asdict(bench), "settings": [asdict(s) for s in bench.settings]}
    prev_p = out / "bench.json"
    if prev_p.is_file():
        # one schedule per report folder: rows made with other grasps/iterations/seed must not be pooled with these
        prev = json.loads(prev_p.read_text())
        diff = [k for k in ("grasps", "iterations", "seed") if prev.get(k) != meta[k]]
        if diff:
            raise BenchError(f"{out} holds runs made with " + ", ".join(f"{k}={prev.get(k)}" for k in diff)
                             + "; rerun with those values to add to it, or pass another --out")
        # a rerun may add objects, hands and rows: the folder's record is the union
        for k in ("objects", "hands", "settings"):
            meta[k] = prev.get(k, []) + [v for v in meta[k] if v not in prev.get(k, [])]
    atomic_write_json(prev_p, meta)
    units = []
    for h in bench.hands:
        name = names[h]
        for s in bench.settings:
            folder = out / "runs" / _safe(name) / s.key
            todo = [o for o in objects if not _done(folder, o[1])]
            cfg = _config_toml(s, bench.grasps, bench.iterations, bench.seed)
            for i in range(0, len(todo), bench.objects_per_batch):
                batch = todo[i:i + bench.objects_per_batch]
                units.append((len(batch) * bench.grasps, (str(folder), h, asdict(s), batch, cfg)))
        if bench.seeds_object and h == bench.hands[0]:  # the curve is one hand's, as in the paper
            (seed_obj,) = expand_objects([bench.seeds_object])[:1]
            for s in bench.settings:
                if s.contacts != 12 or s.grasp_type != "full":
                    continue  # the paper's Figure 4: 12 contacts, full hand
                folder = out / "seeds" / _safe(name) / s.key
                if not _done(folder, seed_obj[1], max(bench.seeds)):  # a longer curve asked for: rerun
                    n = max(bench.seeds)
                    units.append((n, (str(folder), h, asdict(s), [seed_obj], _config_toml(s, n, bench.iterations, bench.seed))))
    # longest first (grasps x objects), so a big seeds unit does not start last and run alone
    units = [u for _, u in sorted(units, key=lambda su: -su[0])]
    for u in units:
        Path(u[0]).mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    t0 = time.perf_counter()
    if workers == 1:
        for u in units:
            for p in run_unit(*u, threads, device):
                if progress is not None:
                    progress(p)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futs = [pool.submit(run_unit, *u, threads, device) for u in units]
            try:
                for f in as_completed(futs):
                    for p in f.result():
                        if progress is not None:
                            progress(p)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    return {"units": len(units), "seconds": time.perf_counter() - t0}


# -- report ----------------------------------------------------------------------------------
def _sidecars(folder: Path) -> list[tuple[dict, dict]]:
    rows = []
    for side in sorted(folder.glob("*.eval.json")):
        run = folder / side.name.replace(".eval.json", ".run.json")
        if run.is_file():
            rows.append((json.loads(side.read_text()), json.loads(run.read_text())))
    return rows


def collect(out: str | Path) -> dict:
    """Pooled figures per (setting, hand) from the files under ``out/runs`` (see :func:`pool_rows`)."""
    table: dict[str, dict] = {}
    runs = Path(out) / "runs"
    for hand_dir in sorted(p for p in runs.glob("*") if p.is_dir()):
        for set_dir in sorted(p for p in hand_dir.glob("*") if p.is_dir()):
            pairs = _sidecars(set_dir)
            if not pairs:
                continue
            rows = [summary_row(e["grasp_file"], e["object"], e["hand"], "", r["grasps"], e["summary"], PROTOCOLS) for e, r in pairs]
            pooled = pool_rows(rows, PROTOCOLS)
            pooled["synthesis_seconds_per_grasp"] = sum(r["synthesis_seconds"] for _, r in pairs) / max(1, pooled["grasps"])
            pooled["evaluation_seconds_per_grasp"] = sum(r["evaluation_seconds"] for _, r in pairs) / max(1, pooled["grasps"])
            pooled["setting"] = pairs[0][1]["setting"]
            pooled["curve"] = _mean_curve([r["energy_curve"] for _, r in pairs])
            table.setdefault(set_dir.name, {})[pairs[0][0]["hand"]] = pooled
    return table


def _mean_curve(curves: list[list]) -> list[tuple[int, float]]:
    its = sorted({int(i) for c in curves for i, _ in c})
    by = [dict((int(i), e) for i, e in c) for c in curves]
    return [(i, float(np.mean([b[i] for b in by if i in b]))) for i in its]


def seeds_curves(out: str | Path) -> dict[str, dict[str, dict[int, int]]]:
    """Unique successful grasps (reference protocol) vs seeds, per hand and setting."""
    res: dict[str, dict[str, dict[int, int]]] = {}
    for f in sorted((Path(out) / "seeds").glob("*/*/*.npz")):
        gs = GraspSet.load(f)
        succ = np.asarray(gs.extra["eval_reference_success"], bool)
        n = len(gs)
        seeds = sorted({k for k in SEEDS if k < n} | {n})
        res.setdefault(f.parent.parent.name, {})[f.parent.name] = unique_vs_seeds(
            gs.root_position, gs.root_quaternion, gs.joint_positions, succ, seeds, MetricsConfig())
    return res


def _fig_png(fig) -> bytes:
    return figure_png(fig, dpi=110, bbox_inches="tight")


def _plots(table: dict, seeds: dict) -> dict[str, bytes]:
    plt = pyplot()

    def line_plot(series, size, log_axis, xlabel, ylabel, title, **style) -> bytes:
        fig, ax = plt.subplots(figsize=size)
        for label, xs, ys in series:
            ax.plot(xs, ys, label=label, **style)
        getattr(ax, f"set_{log_axis}scale")("log", **({"base": 2} if log_axis == "x" else {}))
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: many rows hide the curves
        return _fig_png(fig)

    pngs = {}
    if seeds:
        series = [(f"{hand}: {key}", sorted(c), [c[x] for x in sorted(c)]) for hand, per in seeds.items() for key, c in per.items()]
        pngs["seeds.png"] = line_plot(series, (6, 4), "x", "seeds (grasps generated)", "unique successful grasps",
                                      "unique grasps vs seeds (reference protocol)", marker="o")
    if table:
        series = [(f"{hand}: {key}", *zip(*row["curve"])) for key, per in sorted(table.items()) for hand, row in per.items() if row["curve"]]
        pngs["energy.png"] = line_plot(series, (7, 4), "y", "iteration", "mean energy (per object, then averaged)",
                                       "energy vs iteration (annealing phase)")
    return pngs


def _cell(ugr, H) -> str:
    if ugr is None or not np.isfinite(ugr):
        return "-"
    return f"{100 * ugr:.0f} % / " + (f"{H:.1f}" if H is not None and np.isfinite(H) else "-")


def table1_markdown(table: dict, hands: list[str]) -> str:
    """Rows = settings, columns = hands + overall + D; each cell "ours (paper)" as UGR % / H."""
    head = "| setting | " + " | ".join(hands) + " | overall | D mm | strict success |"
    lines = [head, "|" + "---|" * (len(hands) + 4)]
    for key, per in sorted(table.items(), key=_row_order):
        s = Setting(**next(iter(per.values()))["setting"])
        paper = PAPER_TABLE1.get(s.paper_key, {})
        cells = []
        for h in hands:
            r = per.get(h)
            ours = _cell(r["ugr_reference"], r["H_reference"]) if r else "not run"
            p = paper.get(h)
            cells.append(f"{ours} ({p[0]} % / {p[1]})" if p else ours)
        present = [per[h] for h in hands if h in per]
        ugr = float(np.mean([r["ugr_reference"] for r in present])) if present else float("nan")
        H = float(np.mean([r["H_reference"] for r in present])) if present else float("nan")
        po = paper.get("overall")
        cells.append(f"{_cell(ugr, H)}" + (f" ({po[0]} % / {po[1]})" if po else ""))
        D = float(np.nanmean([r["D_mm"] for r in present])) if present else float("nan")
        cells.append(f"{D:.2f}" + (f" ({paper['D_mm']})" if "D_mm" in paper else ""))
        cells.append(", ".join(f"{h} {100 * per[h]['success_strict']:.0f} %" for h in hands if h in per))
        lines.append(f"| {s.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _row_order(kv) -> tuple:
    return Setting(**next(iter(kv[1].values()))["setting"]).order


def write_heatmaps(out: str | Path, table: dict, hand_specs: list[str]) -> list[Path]:
    """Contact heatmaps (the paper's hand figures): per hand, one PNG per grasp type under
    ``out/heatmaps``, from that type's first row in the paper's order (GraspQP + MALA*, 12 contacts,
    where run), over every grasp generated on every object."""
    out = Path(out)
    descs = {d.name: d for d in (load_hand_description(h) for h in hand_specs)}
    objects: dict[tuple, object] = {}  # one load per mesh: the rows share their objects
    written = []
    for hand, desc in descs.items():
        chosen: dict[str, str] = {}
        for key, per in sorted(table.items(), key=_row_order):
            if hand in per:
                chosen.setdefault(per[hand]["setting"]["grasp_type"], key)
        sets = []
        for key in chosen.values():
            for f in sorted((out / "runs" / _safe(hand) / key).glob("*.npz")):
                gs = GraspSet.load(f)
                k = (gs.object_source, gs.object_scale, gs.object_hash)
                if k not in objects:
                    objects[k] = grasp_set_object(gs, where=str(f))
                sets.append((gs, objects[k]))
        if sets:
            written += sorted(contact_heatmaps(desc, sets, out / "heatmaps").values())
    return written


def write_report(out: str | Path, heatmaps: bool = True) -> Path:
    """Write ``report.md``, ``report.html`` and the PNG plots from the files under ``out``
    (``heatmaps``: also the contact heatmaps, which load every object's mesh)."""
    import mujoco

    out = Path(out)
    meta_p = out / "bench.json"
    if not meta_p.is_file():
        raise BenchError(f"{out}: no bench.json; run `graspforge bench paper` first")
    meta = json.loads(meta_p.read_text())
    table, seeds = collect(out), seeds_curves(out)
    if not table:
        raise BenchError(f"{out}: no finished runs to report")
    hands = sorted({h for per in table.values() for h in per}, key=lambda h: (PAPER_HANDS.index(h) if h in PAPER_HANDS else 99, h))
    pngs = _plots(table, seeds)
    for name, data in pngs.items():
        atomic_write_bytes(out / name, data)
    heat_md = []
    if heatmaps:
        for path in write_heatmaps(out, table, meta["hands"]):
            name = str(path.relative_to(out))
            pngs[name] = path.read_bytes()
            heat_md.append(f"![{name}]({name})")
    timing = ["| hand | setting | grasps | synthesis s/grasp | evaluation s/grasp (2 protocols + geometry) |", "|---|---|---|---|---|"]
    for key, per in sorted(table.items(), key=_row_order):
        for h, r in per.items():
            timing.append(f"| {h} | {key} | {r['grasps']} | {r['synthesis_seconds_per_grasp']:.2f} | {r['evaluation_seconds_per_grasp']:.2f} |")
    for f in sorted((out / "seeds").glob("*/*/*.run.json")):  # one object, all seeds in one batch
        r = json.loads(f.read_text())
        n = max(1, int(r["grasps"]))
        timing.append(f"| {r['hand']} | {f.parent.name} (seeds curve, {r['object']}) | {n} | {r['synthesis_seconds'] / n:.2f} | "
                      f"{r['evaluation_seconds'] / n:.2f} |")
    seeds_md = []
    for h, per in seeds.items():
        for key, curve in per.items():
            seeds_md.append(f"- {h}, {key}: " + ", ".join(f"{k} seeds -> {v}" for k, v in sorted(curve.items())))
    objects = sorted({p.stem for p in (out / "runs").glob("*/*/*.npz")})
    md = "\n".join([
        "# graspforge: the GraspQP paper's comparison, rerun", "",
        "Cells: **UGR / H** under the `reference` protocol (the paper's Isaac Lab test as METHOD.md s. 8 states it, simulated in "
        "MuJoCo); the paper's Table 1 figures (50 DexGraspNet objects, Isaac Lab) in brackets. UGR = distinct successful grasps / "
        "grasps generated (2 cm, 5 deg, 0.2 rad); H = mean per-joint 32-bin entropy (nats) over successful grasps; D = mean "
        "deepest object point inside the exact hand meshes. The last column is success under the `strict` protocol.", "",
        table1_markdown(table, hands), "",
        "## Unique grasps vs seeds (paper Figure 4)", "", *(seeds_md or ["(not run: pass --seeds-object)"]), "",
        "## Contact heatmaps", "",
        *([f"Per hand and grasp type: how often each hand surface sample lies within {CONTACT_DISTANCE * 1000:g} mm of the object, over every grasp "
           "generated, drawn on the open hand (power grasps should light the palm and proximal links, precision the "
           "fingertips, pinch the thumb and index).", "", *heat_md] if heat_md else ["(not drawn)"]), "",
        "## Timings (this machine)", "", *timing, "",
        "## How to rerun", "",
        f"- objects ({len(objects)}): {', '.join(objects)}",
        f"- hands: {', '.join(meta['hands'])}; grasps per object: {meta['grasps']}; schedule: {_schedule_text(meta.get('iterations'))}; "
        f"seed: {meta['seed']}; seeds object: {meta.get('seeds_object') or 'none'}",
        f"- graspforge {__version__}, torch {torch.__version__}, mujoco {mujoco.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()} {os.cpu_count()} cores",
        "- command: `" + rerun_command(meta) + "`",
        "- physics constants of both protocols: any `.eval.json` under runs/ (config_toml and summary.*.physics)", "",
    ] + [f"![{n}]({n})" for n in pngs if not n.startswith("heatmaps/")])
    atomic_write_text(out / "report.md", md + "\n")
    atomic_write_text(out / "report.html", _html(md, pngs))
    return out / "report.md"


def _schedule_text(iterations: int | None) -> str:
    """The optimiser steps a report ran, e.g. '7000 annealing + 4200 refinement steps (the reference schedule)'."""
    ref = OptimizerConfig()
    run = ref.compressed(int(iterations)) if iterations else ref
    n = run.iterations
    text = f"{n} annealing + {run.refine_iterations} refinement steps"
    return text + (" (the reference schedule)" if n == ref.iterations else f" (every period scaled by {n}/{ref.iterations})")


def rerun_command(meta: dict) -> str:
    """The ``graspforge bench paper`` command line that reproduces the runs recorded in ``bench.json``."""
    rows = [f"{s['method']}:{s['optimizer']}:{s['grasp_type']}:{s['contacts']}" for s in meta["settings"]]
    cmd = ["graspforge bench paper --objects", *meta["objects"], "--hands", *meta["hands"], "--methods", *rows,
           "--grasps", str(meta["grasps"])]
    if meta.get("iterations"):
        cmd += ["--iterations", str(meta["iterations"])]
    if meta.get("seeds_object"):
        cmd += ["--seeds-object", meta["seeds_object"], "--seeds", str(max(meta["seeds"]))]
    return " ".join(cmd + ["--seed", str(meta["seed"]), "--out", "REPORT"])


def _html(md: str, pngs: dict[str, bytes]) -> str:
    """The report as one standalone page: Python-Markdown (with tables) renders ``md``; the PNGs
    it names are inlined as data URIs so the page needs no other file."""
    # Markdown passes raw HTML through, and object names come from users' file names: the report
    # itself has no HTML, so every <, > and & is text
    body = markdown.markdown(html.escape(md, quote=False), extensions=["tables"], output_format="html")
    for name, data in pngs.items():
        body = body.replace(f'src="{name}"', f'src="data:image/png;base64,{base64.b64encode(data).decode()}"')
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px}code{background:#f4f4f4;word-break:break-all}")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>graspforge paper report</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")
