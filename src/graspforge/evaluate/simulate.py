"""Executing grasps in MuJoCo under a disturbance protocol (:class:`~graspforge.config.PhysicsConfig`).

One grasp: place the hand at its pre-grasp joints around the object (rejecting starts that
penetrate deeper than ``max_initial_penetration``), ramp the servo targets pre-grasp -> grasp ->
squeeze, remember that state, then run each phase of pulls from it. The object's displacement is the
distance its centre of mass moved, and its rotation ``2 acos |<q0, q>|``, both from where it started.

:func:`simulate_grasps` runs many grasps, in a process pool when asked; a grasp whose simulation
raises is recorded as an error (``reason`` 3) without losing the others.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from dataclasses import asdict, dataclass
from typing import Callable

import mujoco
import numpy as np

from ..config import DIRECTIONS, PhysicsConfig
from .scene import GraspScene

#: ``reason`` codes of a grasp outcome
HELD, PENETRATION, SLIPPED, ERROR = 0, 1, 2, 3
REASONS = {HELD: "held", PENETRATION: "initial penetration", SLIPPED: "object moved", ERROR: "simulation error"}


@dataclass
class GraspInputs:
    """Arrays of N grasps: ``root_position`` (N, 3) m and ``root_quaternion`` (N, 4) w-x-y-z of the
    hand root in the object frame; ``pregrasp`` / ``grasp`` / ``squeeze`` (N, D) actuated joints.
    ``stage_roots`` (N, 3, 7), optional: the root pose (position m, w-x-y-z quaternion, object frame)
    at the pre-grasp, grasp and squeeze targets, for a hand model whose root moves between them (a
    wrist folded into the root); it replaces ``root_*`` and needs a welded root (``root = "weld"``)."""

    root_position: np.ndarray
    root_quaternion: np.ndarray
    pregrasp: np.ndarray
    grasp: np.ndarray
    squeeze: np.ndarray
    stage_roots: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.root_position)

    def take(self, idx) -> "GraspInputs":
        arrays = (np.asarray(getattr(self, k))[idx] for k in ("root_position", "root_quaternion", "pregrasp", "grasp", "squeeze"))
        return GraspInputs(*arrays, stage_roots=None if self.stage_roots is None else np.asarray(self.stage_roots)[idx])


def _quat_conj(q: np.ndarray) -> np.ndarray:
    return np.array([q[0], -q[1], -q[2], -q[3]])


def _relative_pose(base: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(7,) pose ``pose`` (position, w-x-y-z quaternion) in the frame of pose ``base`` (7,)."""
    inv = _quat_conj(base[3:] / np.linalg.norm(base[3:]))
    pos, quat = np.zeros(3), np.zeros(4)
    mujoco.mju_rotVecQuat(pos, pose[:3] - base[:3], inv)
    mujoco.mju_mulQuat(quat, inv, pose[3:] / np.linalg.norm(pose[3:]))
    return np.concatenate([pos, quat])


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Unit quaternion a fraction ``t`` of the shortest arc from ``q0`` to ``q1`` (w-x-y-z)."""
    q0, q1 = q0 / np.linalg.norm(q0), q1 / np.linalg.norm(q1)
    c = float(np.dot(q0, q1))
    if c < 0.0:
        q1, c = -q1, -c
    if c > 1.0 - 1e-9:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    a = np.arccos(c)
    return (np.sin((1.0 - t) * a) * q0 + np.sin(t * a) * q1) / np.sin(a)


def _rotation_deg(q0: np.ndarray, q1: np.ndarray) -> float:
    return float(np.degrees(2.0 * np.arccos(min(1.0, abs(float(np.dot(q0, q1)))))))


class GraspSimulator:
    """Runs grasps on one compiled :class:`GraspScene` (one MjData, reused)."""

    def __init__(self, scene: GraspScene, physics: PhysicsConfig) -> None:
        self.scene = scene
        self.physics = physics
        self.model = scene.model
        self.data = mujoco.MjData(self.model)
        self._hand_geom = scene.hand_body_mask[self.model.geom_bodyid]
        self._obj_geom = self.model.geom_bodyid == scene.object_body
        self._spec = mujoco.mjtState.mjSTATE_INTEGRATION
        self._state = np.zeros(mujoco.mj_stateSize(self.model, self._spec))

    # -- helpers ----------------------------------------------------------------------------
    def _depths(self) -> tuple[float, float]:
        """Deepest hand-object and hand-hand penetration (m, >= 0) in the current data."""
        d = self.data
        ho = hh = 0.0
        for c in d.contact[:d.ncon]:
            g1, g2 = c.geom1, c.geom2
            if self._hand_geom[g1] and self._hand_geom[g2]:
                hh = max(hh, -c.dist)
            elif (self._hand_geom[g1] and self._obj_geom[g2]) or (self._obj_geom[g1] and self._hand_geom[g2]):
                ho = max(ho, -c.dist)
        return ho, hh

    def _object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        b = self.scene.object_body
        pos = self.data.xipos[b] if self.physics.track == "com" else self.data.xpos[b]
        return pos.copy(), self.data.xquat[b].copy()

    def _set_configuration(self, q: np.ndarray) -> None:
        self.data.qpos[self.scene.joint_qadr] = self.scene.hand_qpos(q)

    def _ramp(self, q_from: np.ndarray, q_to: np.ndarray, seconds: float, root_from: np.ndarray | None = None,
              root_to: np.ndarray | None = None) -> None:
        """Servo targets from ``q_from`` to ``q_to`` over ``seconds``; with ``root_from`` / ``root_to``
        (7,) the welded root's mocap body moves with them (position linear, rotation slerp, as
        DexGraspBench interpolates its stages)."""
        n = max(1, int(round(seconds / self.model.opt.timestep)))
        c0, c1 = self.scene.hand_ctrl(q_from), self.scene.hand_ctrl(q_to)
        jumps = self.physics.ramp_steps
        moves = root_from is not None and not np.allclose(root_from, root_to, atol=1e-12)
        for i in range(1, n + 1):
            # every step, or in ``ramp_steps`` equal jumps (the target reached at each jump's start)
            frac = i / n if jumps <= 0 else min(jumps, int(np.ceil(i * jumps / n - 1e-9))) / jumps
            self.data.ctrl[:] = c0 + (c1 - c0) * frac
            if moves:
                self.data.mocap_pos[0] = root_from[:3] + (root_to[:3] - root_from[:3]) * frac
                self.data.mocap_quat[0] = _slerp(root_from[3:], root_to[3:], frac)
            mujoco.mj_step(self.model, self.data)

    _BAD = (mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADCTRL)

    def _check_finite(self) -> None:
        # MuJoCo resets the state (with a warning) when it diverges: that must not read as "held"
        if not np.all(np.isfinite(self.data.qpos)) or any(self.data.warning[w].number > 0 for w in self._BAD):
            raise FloatingPointError("the simulation became unstable")

    # -- one grasp --------------------------------------------------------------------------
    def run(self, root_position, root_quaternion, pregrasp, grasp, squeeze, jitter: np.ndarray | None = None,
            stage_roots: np.ndarray | None = None) -> dict:
        """Simulate one grasp, one trial. Returns ``held`` (per phase: 1, 0, or NaN if not run),
        ``success``, ``reason``, ``initial_penetration``, ``initial_self_penetration`` (m),
        ``squeeze_translation`` (m), ``max_translation`` (m) and ``max_rotation_deg`` over the run phases.
        ``stage_roots`` (3, 7): see :class:`GraspInputs`; the world is then the pre-grasp root's frame.

        Stages: place the object in the hand's frame; refuse a start that penetrates; ramp the
        targets pre-grasp -> grasp -> squeeze; then each phase from the squeezed state."""
        p = self.physics
        m, d, sc = self.model, self.data, self.scene
        for name, v in (("root_position", root_position), ("root_quaternion", root_quaternion), ("pregrasp", pregrasp), ("grasp", grasp),
                        ("squeeze", squeeze), ("stage_roots", 0.0 if stage_roots is None else stage_roots)):
            if not np.all(np.isfinite(np.asarray(v, np.float64))):
                raise ValueError(f"{name} holds non-finite values")
        roots = [None, None, None]
        if stage_roots is not None:
            stage_roots = np.asarray(stage_roots, np.float64).reshape(3, 7)
            if sc.root_free_qadr < 0:
                raise ValueError("a root that moves between targets needs a welded hand root (physics root = 'weld')")
            root_position, root_quaternion = stage_roots[0, :3], stage_roots[0, 3:]
            roots = [_relative_pose(stage_roots[0], r) for r in stage_roots]
        R_obj0 = self._place_object(root_position, root_quaternion, jitter)
        out = {"held": np.full(len(p.phases), np.nan), "success": False, "reason": HELD, "initial_penetration": 0.0,
               "initial_self_penetration": 0.0, "squeeze_translation": np.nan, "max_translation": 0.0, "max_rotation_deg": 0.0}
        starts = ((grasp, roots[1]), (pregrasp, roots[0])) if p.penetration_check == "both" else ((pregrasp, roots[0]),)
        pen, self_pen = self._initial_depths(starts)
        out["initial_penetration"], out["initial_self_penetration"] = pen, self_pen
        # fingers passing through each other (or through the object) are not a grasp
        if pen > p.max_initial_penetration or self_pen > p.max_initial_penetration:
            out["reason"] = PENETRATION
            return out
        start_pos, start_quat = self._object_pose()
        d.ctrl[:] = sc.hand_ctrl(pregrasp)
        self._ramp(pregrasp, grasp, p.grasp_seconds, roots[0], roots[1])
        self._ramp(grasp, squeeze, p.squeeze_seconds, roots[1], roots[2])
        self._check_finite()
        pos, _ = self._object_pose()
        out["squeeze_translation"] = float(np.linalg.norm(pos - start_pos))
        mujoco.mj_getState(m, d, self._state, self._spec)
        for k, phase in enumerate(p.phases):
            mujoco.mj_setState(m, d, self._state, self._spec)
            d.ctrl[:] = sc.hand_ctrl(squeeze)
            ok = self._pull_phase(phase, R_obj0, start_pos, start_quat, out)
            out["held"][k] = 1.0 if ok else 0.0
            if p.stop_at_first_failure and ((p.success_rule == "all" and not ok) or (p.success_rule == "any" and ok)):
                break
        run = out["held"][np.isfinite(out["held"])]
        out["success"] = bool(np.all(run == 1.0)) if p.success_rule == "all" else bool(np.any(run == 1.0))
        out["reason"] = HELD if out["success"] else SLIPPED
        return out

    def _place_object(self, root_position, root_quaternion, jitter: np.ndarray | None) -> np.ndarray:
        """Reset the data and put the object where the grasp has it, in the hand root's frame (the
        inverse of the root pose in the object frame), shifted by ``jitter`` (3,) m. Returns the
        object mesh's axes in the world (hand) frame, (3, 3)."""
        m, d, sc = self.model, self.data, self.scene
        mujoco.mj_resetData(m, d)
        qr = np.asarray(root_quaternion, np.float64)
        qr = qr / np.linalg.norm(qr)
        R = np.zeros(9)
        mujoco.mju_quat2Mat(R, qr)
        R = R.reshape(3, 3)
        obj_pos = -R.T @ np.asarray(root_position, np.float64)
        if jitter is not None:
            obj_pos = obj_pos + jitter
        d.qpos[sc.object_qadr:sc.object_qadr + 3] = obj_pos
        d.qpos[sc.object_qadr + 3:sc.object_qadr + 7] = _quat_conj(qr)
        return R.T

    def _initial_depths(self, starts) -> tuple[float, float]:
        """Deepest hand-object and hand-hand penetration (m) over the ``starts`` ((joints, root
        pose or None), ...); the configuration is left at the last one."""
        m, d, sc = self.model, self.data, self.scene
        pen = self_pen = 0.0
        for q, r in starts:
            self._set_configuration(q)
            if r is not None:
                d.qpos[sc.root_free_qadr:sc.root_free_qadr + 7] = r
            mujoco.mj_forward(m, d)
            ho, hh = self._depths()
            pen, self_pen = max(pen, ho), max(self_pen, hh)
        return pen, self_pen

    def _pull_phase(self, phase: str, R_obj0: np.ndarray, start_pos: np.ndarray, start_quat: np.ndarray, out: dict) -> bool:
        """Apply the phase's pulls in turn (each ``pull_seconds``, along the object mesh's axes
        ``R_obj0``), checking every ``check_every`` s that the object stays within the limits of
        its start pose; records the worst translation and rotation in ``out``. True if it held."""
        p, m, d = self.physics, self.model, self.data
        n_pull = max(1, int(round(p.pull_seconds / m.opt.timestep)))
        n_check = max(1, int(round(p.check_every / m.opt.timestep)))
        body = self.scene.object_body
        ok = True
        for pull in phase.split():
            d.xfrc_applied[body, :3] = p.force * (R_obj0 @ np.asarray(DIRECTIONS[pull], np.float64))
            for i in range(1, n_pull + 1):
                mujoco.mj_step(m, d)
                if i % n_check == 0 or i == n_pull:
                    pos, quat = self._object_pose()
                    tr, rot = float(np.linalg.norm(pos - start_pos)), _rotation_deg(start_quat, quat)
                    out["max_translation"] = max(out["max_translation"], tr)
                    out["max_rotation_deg"] = max(out["max_rotation_deg"], rot)
                    if not np.isfinite(tr) or tr > p.max_translation or rot > p.max_rotation_deg:
                        ok = False
                        break
            if not ok:
                break
        d.xfrc_applied[body, :3] = 0.0
        self._check_finite()
        return ok

    def run_trials(self, g: GraspInputs, i: int, seed: int = 0) -> dict:
        """All trials of grasp ``i``: success when >= ``pass_fraction`` of them pass; ``held`` per
        phase is the fraction of the trials that ran it and held; the other figures are trial 0's."""
        p = self.physics
        results = []
        for t in range(p.trials):
            jitter = None
            if t > 0 and p.trial_jitter > 0:
                v = np.random.default_rng([seed, t]).normal(size=3)
                jitter = p.trial_jitter * v / np.linalg.norm(v)
            try:
                results.append(self.run(g.root_position[i], g.root_quaternion[i], g.pregrasp[i], g.grasp[i], g.squeeze[i], jitter,
                                        None if g.stage_roots is None else g.stage_roots[i]))
            except Exception as exc:  # one broken grasp must not lose the others
                r = _error_result(len(p.phases))
                r["error"] = f"{type(exc).__name__}: {exc}"
                results.append(r)
        out = dict(results[0])
        passed = np.array([r["success"] for r in results])
        out["success"] = bool(passed.mean() >= p.pass_fraction - 1e-12)
        held = np.stack([r["held"] for r in results])
        ran = np.isfinite(held)
        with np.errstate(invalid="ignore"):
            out["held"] = np.where(ran.any(0), np.nansum(held, 0) / np.maximum(ran.sum(0), 1), np.nan)
        out["trials_passed"] = int(passed.sum())
        if out["success"]:
            out["reason"] = HELD
        return out


def _error_result(n_phases: int) -> dict:
    return {"held": np.full(n_phases, np.nan), "success": False, "reason": ERROR, "initial_penetration": np.nan,
            "initial_self_penetration": np.nan, "squeeze_translation": np.nan, "max_translation": np.nan,
            "max_rotation_deg": np.nan, "trials_passed": 0}


# -- many grasps, optionally in worker processes -------------------------------------------------
_WORKER: dict = {}


def _init_worker(scene: GraspScene, physics_dict: dict, seed: int) -> None:
    # one simulator per worker process; the model travels pickled once, not per grasp
    _WORKER["sim"] = GraspSimulator(scene, PhysicsConfig(**physics_dict))
    _WORKER["seed"] = seed


def _run_chunk(g: GraspInputs, idx: list[int]) -> list[tuple[int, dict]]:
    """Grasps ``g`` (already the chunk) whose global indices are ``idx``."""
    sim, seed = _WORKER["sim"], _WORKER["seed"]
    return [(i, sim.run_trials(g, k, seed=seed * 1_000_003 + i)) for k, i in enumerate(idx)]


def simulate_grasps(scene: GraspScene, physics: PhysicsConfig, grasps: GraspInputs, workers: int = 1, seed: int = 0,
                    progress: Callable[[int], None] | None = None, chunk: int = 4) -> list[dict]:
    """Outcomes of all grasps, in order (see :meth:`GraspSimulator.run_trials`).

    ``workers`` > 1 runs chunks of grasps in that many processes; a worker that dies takes only its
    in-flight grasps with it (they are retried once, alone, then recorded as errors).
    """
    N = len(grasps)
    results: list[dict | None] = [None] * N
    if workers <= 1 or N <= 1:
        _init_worker(scene, asdict(physics), seed)
        for i in range(N):
            results[i] = _run_chunk(grasps.take([i]), [i])[0][1]
            if progress:
                progress(1)
        return results  # type: ignore[return-value]
    todo = [list(range(s, min(N, s + chunk))) for s in range(0, N, chunk)]
    for attempt in range(2):
        ctx = multiprocessing.get_context("spawn")
        pending: list[list[int]] = []
        with cf.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx, initializer=_init_worker,
                                    initargs=(scene, asdict(physics), seed)) as pool:
            futures = {pool.submit(_run_chunk, grasps.take(c), c): c for c in todo}
            for fut in cf.as_completed(futures):
                try:
                    for i, r in fut.result():
                        results[i] = r
                    if progress:
                        progress(len(futures[fut]))
                except cf.process.BrokenProcessPool:
                    pending.append(futures[fut])
        if not pending:
            break
        todo = [[i] for c in pending for i in c]  # retry alone, so one bad grasp cannot take others
    for i in range(N):
        if results[i] is None:
            r = _error_result(len(physics.phases))
            r["error"] = "worker process died"
            results[i] = r
            if progress:
                progress(1)
    return results  # type: ignore[return-value]


def default_workers() -> int:
    """One worker per available CPU core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
