"""Evaluate a grasp set end to end: physics under one or more protocols, exact-mesh geometry, metrics.

Results are stored back into the grasp file as per-grasp arrays (``success`` plus ``eval_*``) and in
a JSON sidecar ``<stem>.eval.json`` (resolved configuration, summaries, timings), both written
atomically. Array names, N grasps, P phases of a protocol:

| key | shape | meaning |
|---|---|---|
| ``success`` | (N,) bool | success under the first protocol evaluated (``strict`` by default) |
| ``eval_<protocol>_success`` | (N,) bool | success under that protocol |
| ``eval_<protocol>_held`` | (N, P) float | per phase: fraction of trials that held (NaN: not run) |
| ``eval_<protocol>_reason`` | (N,) int8 | 0 held, 1 initial penetration, 2 object moved, 3 simulation error |
| ``eval_<protocol>_max_translation`` | (N,) float | m, largest object displacement seen |
| ``eval_<protocol>_max_rotation_deg`` | (N,) float | largest object rotation seen |
| ``eval_<protocol>_squeeze_translation`` | (N,) float | m, object displacement caused by closing the hand |
| ``eval_<protocol>_initial_penetration`` | (N,) float | m, deepest hand-object contact at pre-grasp/grasp (MuJoCo) |
| ``eval_penetration_depth`` | (N,) float | m, D: deepest object surface point inside the hand mesh |
| ``eval_hand_in_object_depth`` | (N,) float | m, deepest hand surface point inside the object mesh |
| ``eval_self_penetration_depth`` | (N,) float | m, deepest overlap of two hand links that may collide |
| ``eval_contact_distance`` | (N,) float | m, mean over contacts of the exact object distance |
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from .._io import atomic_write_json
from ..config import EvaluateConfig, dump_toml, physics_protocol
from ..errors import GraspforgeError
from ..evaluate.checks import EvaluationError, check_hand, grasp_set_object
from ..evaluate.exact import ExactHandMeshes, exact_grasp_metrics
from ..evaluate.metrics import summarize, unique_vs_seeds
from ..evaluate.scene import build_scene
from ..evaluate.simulate import GraspInputs, simulate_grasps
from ..hands import HandModel, load_hand_description
from ..hands.description import HandDescription
from ..hands.meshes import link_collision_meshes
from ..io.grasp_set import GraspSet
from ..objects import ObjectModel, collision_pieces

RESULT_FIELDS = ("max_translation", "max_rotation_deg", "squeeze_translation", "initial_penetration")


@dataclass
class EvaluationResult:
    """Per-grasp arrays to store, per-protocol summaries, and how long it took (s)."""

    arrays: dict[str, np.ndarray]
    summary: dict[str, dict]
    seconds: dict[str, float]
    hand_geometry: str = ""
    object_geometry: str = ""
    errors: list[str] = field(default_factory=list)


def evaluate_grasp_set(grasps: GraspSet, desc: HandDescription, obj: ObjectModel, config: EvaluateConfig | None = None,
                       protocols: tuple[str, ...] = ("strict",), workers: int = 1, geometry: bool = True,
                       progress: Callable[[int], None] | None = None) -> EvaluationResult:
    """Simulate every grasp under each protocol and measure the exact-mesh geometry.

    ``config.physics`` is used for the protocol of the same name; other protocols use their presets.
    """
    config = (config or EvaluateConfig()).validate()
    check_hand(grasps, desc)
    hand_meshes = link_collision_meshes(desc)
    try:
        pieces, piece_origin = collision_pieces(obj)
    except GraspforgeError as exc:
        raise EvaluationError(f"object {obj.name!r} ({obj.source}): {exc}") from exc
    inputs = GraspInputs(grasps.root_position, grasps.root_quaternion, grasps.pregrasp_joint_positions,
                         grasps.joint_positions, grasps.squeeze_joint_positions, grasps.extra.get("stage_root_pose"))
    arrays: dict[str, np.ndarray] = {}
    summary: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    errors: list[str] = []
    lower, upper = desc.tree.lower, desc.tree.upper
    if geometry:
        t = time.perf_counter()
        geo = exact_grasp_metrics(grasps, ExactHandMeshes.from_description(desc, meshes=hand_meshes), obj)
        seconds["geometry"] = time.perf_counter() - t
        for k, v in geo.items():
            arrays[f"eval_{k}"] = np.asarray(v, np.float64)
    for proto in protocols:
        physics = config.physics if config.physics.protocol == proto else physics_protocol(proto)
        physics.validate()
        if inputs.stage_roots is not None and physics.root != "weld":
            raise EvaluationError(f"protocol {proto!r}: these grasps move the hand root between targets (a model of the hand "
                                  "without its wrist); that needs a welded root, e.g. --protocol dexgraspbench")
        t = time.perf_counter()
        scene = build_scene(desc, hand_meshes, pieces, physics, obj.name, piece_origin)
        outcomes = simulate_grasps(scene, physics, inputs, workers=workers, progress=progress)
        seconds[proto] = time.perf_counter() - t
        success = np.array([o["success"] for o in outcomes], bool)
        arrays[f"eval_{proto}_success"] = success
        arrays[f"eval_{proto}_held"] = np.stack([o["held"] for o in outcomes]).astype(np.float64) if outcomes else np.zeros((0, len(physics.phases)))
        arrays[f"eval_{proto}_reason"] = np.array([o["reason"] for o in outcomes], np.int8)
        for f in RESULT_FIELDS:
            arrays[f"eval_{proto}_{f}"] = np.array([o[f] for o in outcomes], np.float64)
        errors += [f"grasp {i} ({proto}): {o['error']}" for i, o in enumerate(outcomes) if "error" in o]
        summary[proto] = summarize(
            grasps.root_position, grasps.root_quaternion, grasps.joint_positions, success, lower, upper, config.metrics,
            penetration_depth=arrays.get("eval_penetration_depth"), self_penetration_depth=arrays.get("eval_self_penetration_depth"),
            contact_distance=arrays.get("eval_contact_distance"),
        )
        summary[proto]["phases"] = {ph: float(np.nanmean(arrays[f"eval_{proto}_held"][:, k])) if len(success) and np.isfinite(arrays[f"eval_{proto}_held"][:, k]).any() else float("nan")
                                    for k, ph in enumerate(physics.phases)}
        seeds = [n for n in (8, 16, 32, 64, 128, 256, 512) if n < len(success)] + [len(success)]
        summary[proto]["unique_vs_seeds"] = {str(k): v for k, v in unique_vs_seeds(
            grasps.root_position, grasps.root_quaternion, grasps.joint_positions, success, seeds, config.metrics).items()}
        summary[proto]["seconds_per_grasp"] = seconds[proto] / max(1, len(success))
        summary[proto]["physics"] = asdict(physics)
    if protocols:
        arrays["success"] = arrays[f"eval_{protocols[0]}_success"].copy()
    return EvaluationResult(arrays, summary, seconds, hand_meshes.origin, piece_origin, errors)


def evaluate_grasps(grasps: GraspSet, hand: HandDescription | HandModel | str | None = None, obj: ObjectModel | None = None,
                    config: EvaluateConfig | None = None, protocols: tuple[str, ...] = ("strict",), workers: int = 1,
                    geometry: bool = True) -> EvaluationResult:
    """:func:`evaluate_grasp_set` with the hand and object found from the grasp set when not given:
    the hand by its recorded name (built-in or imported), the object from its recorded source,
    checked against its recorded content hash. Returns per-grasp arrays (N,) and per-protocol summaries.

    ``graspforge.evaluate(grasp_set)`` calls this (see :mod:`graspforge.evaluate`)."""
    if hand is None or isinstance(hand, str):
        desc = load_hand_description(hand or grasps.hand)
    else:
        desc = hand.description if isinstance(hand, HandModel) else hand
    obj = grasp_set_object(grasps) if obj is None else obj
    return evaluate_grasp_set(grasps, desc, obj, config, protocols=protocols, workers=workers, geometry=geometry)


def summary_row(file: str, object_name: str, hand: str, grasp_type: str, grasps: int, summary: dict, protocols) -> dict:
    """One table row (flat dict) from a grasp file's per-protocol summaries."""
    first = summary[protocols[0]]
    row = {"file": file, "object": object_name, "hand": hand, "type": grasp_type, "grasps": grasps}
    for p in protocols:
        s = summary.get(p, {})
        row[f"success_{p}"] = s.get("success_rate", float("nan"))
        row[f"ugr_{p}"] = s.get("ugr", float("nan"))
        row[f"unique_{p}"] = s.get("unique", 0)
        row[f"H_{p}"] = s.get("joint_entropy", float("nan"))
        row[f"seconds_per_grasp_{p}"] = s.get("seconds_per_grasp", float("nan"))
    for k in ("D_mm", "self_penetration_mm", "contact_distance_mm"):
        row[k] = first.get(k, float("nan"))
    return row


def pool_rows(rows: list[dict], protocols) -> dict:
    """Figures over several files: success and time weighted by grasps, UGR = unique successful
    grasps / grasps generated, H averaged over files (objects), depths averaged over files."""
    n = sum(r["grasps"] for r in rows)
    out: dict = {"files": len(rows), "grasps": n}
    if not rows:
        return out
    w = np.array([r["grasps"] for r in rows], float)
    for p in protocols:
        out[f"success_{p}"] = float(np.dot([r[f"success_{p}"] for r in rows], w) / max(n, 1))
        out[f"ugr_{p}"] = float(sum(r[f"unique_{p}"] for r in rows) / max(n, 1))
        out[f"H_{p}"] = float(np.mean([r[f"H_{p}"] for r in rows]))
        out[f"seconds_per_grasp_{p}"] = float(np.dot([r[f"seconds_per_grasp_{p}"] for r in rows], w) / max(n, 1))
    for k in ("D_mm", "self_penetration_mm", "contact_distance_mm"):
        out[k] = float(np.nanmean([r[k] for r in rows])) if any(np.isfinite(r[k]) for r in rows) else float("nan")
    return out


def sidecar_path(grasp_file: str | Path) -> Path:
    p = Path(grasp_file)
    return p.with_name(p.name[: -len(p.suffix)] + ".eval.json") if p.suffix else p.with_name(p.name + ".eval.json")


def settings_key(config: EvaluateConfig, protocols, geometry: bool, hand: str = "") -> str:
    """What determines an evaluation's results (not the worker count): compared to skip finished files."""
    return json.dumps({"physics": asdict(config.physics), "metrics": asdict(config.metrics), "protocols": list(protocols),
                       "geometry": bool(geometry), "hand": str(hand), "version": __version__}, sort_keys=True)


def write_evaluation(grasp_file: str | Path, grasps: GraspSet, result: EvaluationResult, config: EvaluateConfig,
                     hand: str, obj: ObjectModel, settings: str = "") -> tuple[Path, Path]:
    """Store the per-grasp arrays in the grasp file and the summary in its sidecar, atomically."""
    grasps.extra.update(result.arrays)
    grasps.validate()
    path = grasps.save(grasp_file)
    side = sidecar_path(path)
    atomic_write_json(side, {
        "software": f"graspforge {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "grasp_file": path.name,
        "hand": hand,
        "hand_geometry": result.hand_geometry,
        "object": obj.name,
        "object_source": obj.source,
        "object_geometry": result.object_geometry,
        "config_toml": dump_toml(config),
        "settings_key": settings,
        "summary": result.summary,
        "seconds": result.seconds,
        "errors": result.errors,
    })
    return path, side


def read_sidecar(grasp_file: str | Path) -> dict | None:
    """The evaluation sidecar of a grasp file, or None when absent or unreadable."""
    try:
        return json.loads(sidecar_path(grasp_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
