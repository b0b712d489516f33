"""Run configuration as dataclasses. Defaults are the reference values of METHOD.md; every field
can come from a TOML file and be overridden on the command line; runs write the resolved config
next to their output."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

from .errors import GraspforgeError

ENERGY_METHODS = ("graspqp", "dexgraspnet", "gendexgrasp", "tdg")
OPTIMIZERS = ("mala", "mala_star")


class ConfigError(GraspforgeError, ValueError):
    """A configuration file or value that is not valid."""


@dataclass
class EnergyConfig:
    """E = w_dis E_dis + w_fc E_fc + w_pen E_pen + w_hpen E_hpen + w_spen E_spen + w_joints E_joints
    (METHOD.md s. 2-3; E_hpen, hand samples inside the object, is ours: 0 gives the reference energy)."""

    method: str = "graspqp"  # force-closure term: graspqp | dexgraspnet | gendexgrasp | tdg
    distance: str = "auto"  # E_dis variant: "exp" (contact facing), "plain", or "auto" (by method)
    w_dis: float = 100.0
    w_fc: float = 1.0
    w_pen: float = 100.0
    w_hpen: float = 100.0
    # Reference weight 10 belongs to its sparse sphere model. Our E_spen is the same kind of sum as
    # E_pen (depths over dense surface samples), so it takes E_pen's weight: with 10, 90 % of Allegro
    # grasps kept > 1 mm finger overlap on the exact meshes; with 100 and 128 samples, 12 %.
    w_spen: float = 100.0
    w_joints: float = 1.0
    friction: float = 0.2  # mu of the linearised cone
    cone_edges: int = 4
    torque_weight: float = 5.0
    qp_lower: float = 1.0  # every contact pushes with at least unit force
    qp_upper: float = 21.0
    qp_eps: float = 1e-4
    svd_offset: float = 0.01  # E_fc = 2 (V + 0.01) exp(-0.1 s(G))
    svd_weight: float = 0.1
    tdg_directions: int = 1000
    tdg_weight: float = 100.0
    object_points: int = 2500  # farthest-point samples of the object surface for E_pen
    self_collision_points: int = 128  # per link (samples of E_spen)
    hand_points: int = 32  # per link (samples of E_hpen)

    def validate(self) -> None:
        if self.method not in ENERGY_METHODS:
            raise ConfigError(f"unknown energy method {self.method!r}; choose one of {', '.join(ENERGY_METHODS)}")
        if self.distance not in ("auto", "exp", "plain"):
            raise ConfigError(f"energy.distance must be 'auto', 'exp' or 'plain', got {self.distance!r}")
        if not 0 < self.friction < 1:
            raise ConfigError("energy.friction must be in (0, 1)")
        if self.cone_edges < 3:
            raise ConfigError("energy.cone_edges must be >= 3")
        if not 0 < self.qp_lower < self.qp_upper:
            raise ConfigError("need 0 < energy.qp_lower < energy.qp_upper")
        for f in ("w_dis", "w_fc", "w_pen", "w_hpen", "w_spen", "w_joints", "qp_eps", "torque_weight"):
            if getattr(self, f) < 0:
                raise ConfigError(f"energy.{f} must be >= 0")
        if self.object_points < 1 or self.self_collision_points < 0 or self.hand_points < 1:
            raise ConfigError("energy.object_points and energy.hand_points must be >= 1 and self_collision_points >= 0")

    @property
    def distance_variant(self) -> str:
        if self.distance != "auto":
            return self.distance
        return "plain" if self.method in ("dexgraspnet", "tdg") else "exp"


@dataclass
class InitConfig:
    """Convex-hull initialisation (METHOD.md s. 5)."""

    hull_offset: float = 0.01  # m, hull points pushed outward
    distance_lower: float = 0.05  # m, root from the (pushed) hull point
    distance_upper: float = 0.10
    tilt_deg: float = 45.0
    pitch_deg: float = 15.0
    roll_deg: float = 180.0
    joint_sigma: float = 0.1  # x (upper - lower)
    curl: float = 0.7  # fraction of the way to the upper limit for fingers the grasp type does not use
    # Contact slots reserved for thumb candidates (reference: 0, a uniform draw over all allowed
    # candidates). With 0, 82 % of Allegro grasps on 5 YCB objects had no thumb contact, and those
    # held in MuJoCo's strict test 4.5 % of the time (64 % with the thumb touching).
    thumb_contacts: int = 2

    def validate(self) -> None:
        if not 0 <= self.distance_lower <= self.distance_upper:
            raise ConfigError("init: need 0 <= distance_lower <= distance_upper")
        if self.joint_sigma < 0 or not 0 <= self.curl <= 1:
            raise ConfigError("init: joint_sigma >= 0 and 0 <= curl <= 1")
        if self.thumb_contacts < 0:
            raise ConfigError("init.thumb_contacts must be >= 0")


@dataclass
class OptimizerConfig:
    """DexGraspNet annealing ("mala") and MALA* (METHOD.md s. 4)."""

    name: str = "mala_star"
    iterations: int = 7000
    step_size: float = 0.005
    step_decay: float = 0.95
    step_decay_every: int = 50
    temperature: float = 18.0
    temperature_decay: float = 0.95
    temperature_decay_every: int = 30
    ema: float = 0.98  # weight of the new squared gradient
    resample_prob: float = 0.4  # per contact per step
    reset_every: int = 600
    reset_stop_before_end: int = 1200
    reset_z: float = 1.0
    # Adam steps on the pose after annealing, contacts fixed, as a fraction of ``iterations``
    # (reference: 0, none); see optimize/refine.py. Annealing leaves contacts mm off the surface;
    # 2000 steps after 7000 took strict success on 5 YCB objects from 50 % to 78 % (with
    # thumb_contacts = 2) for +29 % time; 4200 (0.6) instead of 2100 took 5 hard YCB objects from
    # 34 % to 49 %.
    refine_fraction: float = 0.6
    refine_step: float = 0.002
    # Before refinement, each contact farther than this (m) from the surface is offered the unused
    # candidate of its kind (thumb or not) nearest the surface, kept where the energy drops (0: off;
    # not in the reference; see synthesis.snap_contacts). On 6 dev-split objects (Allegro, 1500 +
    # 900 steps, 192 grasps) it took success under the dexgraspbench protocol from 56.2 % to 60.9 %
    # (DexGraspBench's own verdict 49.7 % -> 51.6 %) and the mean contact gap from 10.5 to 6.6 mm.
    # At the default schedule, on the 13 test-split objects, it is neutral (DexGraspBench 56.5 % ->
    # 54.8 %, strict 74.5 % -> 74.0 %, mean |d| 2.35 -> 1.84 mm): long runs converge anyway.
    snap_contacts: float = 0.002
    # on CUDA, record one step as a CUDA graph and replay it (launch overhead gone; same results)
    cuda_graph: bool = True

    def compressed(self, iterations: int) -> "OptimizerConfig":
        """A copy for a shorter (or longer) run: every schedule period (step and temperature decay,
        resets) scaled by ``iterations / self.iterations``, so the run still ends cold."""
        k = iterations / max(1, self.iterations)
        per = lambda n: max(1, int(round(n * k)))  # noqa: E731
        return replace(self, iterations=int(iterations), step_decay_every=per(self.step_decay_every),
                       temperature_decay_every=per(self.temperature_decay_every), reset_every=per(self.reset_every),
                       reset_stop_before_end=int(round(self.reset_stop_before_end * k)))

    @property
    def refine_iterations(self) -> int:
        return int(round(self.refine_fraction * self.iterations))

    def validate(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.name!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.iterations < 1:
            raise ConfigError(f"optimizer.iterations must be >= 1, got {self.iterations} (0 would write unoptimised initial poses)")
        if not 0 <= self.refine_fraction <= 10:
            raise ConfigError("optimizer.refine_fraction must be in [0, 10]")
        if not self.refine_step > 0:
            raise ConfigError("optimizer.refine_step must be > 0")
        if not 0 <= self.snap_contacts < 0.1:
            raise ConfigError(f"optimizer.snap_contacts must be in [0, 0.1) m, got {self.snap_contacts}")
        if not 0 <= self.resample_prob <= 1 or not 0 < self.ema <= 1:
            raise ConfigError("optimizer: resample_prob in [0, 1] and ema in (0, 1]")
        if self.step_size <= 0 or self.temperature <= 0 or self.step_decay_every < 1 or self.temperature_decay_every < 1 or self.reset_every < 1:
            raise ConfigError("optimizer: step_size, temperature > 0 and decay/reset intervals >= 1")


SQUEEZE_MODES = ("normal", "touching", "balanced")


@dataclass
class PhysicsCheckConfig:
    """A physics check inside synthesis: after the optimiser, every grasp is simulated under
    ``protocol`` (in ``hand`` when given); a grasp that fails is replaced by a passing grasp of a fresh synthesis round (a
    whole new population of the same size, from a seed derived from the run's seed and the round
    number), for at most ``rounds`` extra rounds. Grasps still failing after the last round are kept,
    labelled: every grasp carries ``check_success`` and the ``synthesis_round`` it came from.

    Off by default (``rounds = 0``): each round costs one more synthesis of the objects that still
    have failing grasps, plus the simulation (about 0.8 s per grasp and core for ``dexgraspbench``)."""

    rounds: int = 0
    protocol: str = "dexgraspbench"
    # the hand that will execute the grasps, when it is another model of the synthesised hand (an
    # MJCF file, e.g. DexGraspBench's Allegro): grasps are checked in it, after the frame and joint
    # alignment found by forward kinematics of both (hands/alignment.py); "" checks the synthesised hand
    hand: str = ""
    workers: int = 1  # simulation processes (0 = one per CPU core)

    def validate(self) -> None:
        if not 0 <= self.rounds <= 100:
            raise ConfigError(f"check.rounds must be in [0, 100], got {self.rounds}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"check.protocol must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}")
        if self.workers < 0:
            raise ConfigError("check.workers must be >= 0")


@dataclass
class GenerateConfig:
    """Everything ``graspforge generate`` needs."""

    hand: str = "allegro"
    objects: list[str] = field(default_factory=lambda: ["box"])
    grasp_type: str = "full"
    # contacts per grasp K; 0: the hand's own (HandDescription.contacts: 12, the paper's, for the
    # built-in hands; 4 for hands imported without a contact file)
    contacts: int = 0
    grasps: int = 32  # per object
    # candidates per grasp: each grasp slot is optimised in ``best_of`` independent populations (seeds
    # derived from the run's) and keeps the lowest-energy candidate; costs best_of x the synthesis
    best_of: int = 1
    seed: int = 0
    device: str = "cpu"
    # CPU threads for torch and the kernels. 1 by default: an optimiser step is many small ops, which
    # a second thread slows down (and a busy second core slows down a lot); 0 = torch's default
    threads: int = 1
    out: str = "grasps"
    resume: bool = False
    # squeeze targets written with each grasp (synthesis.pregrasp_and_squeeze): "normal" (the
    # reference: every contact 5 mm in along its normal), "touching" (only contacts within 1 cm of
    # the surface press) or "balanced" (touching contacts press with the QP's balanced forces)
    squeeze: str = "balanced"
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    init: InitConfig = field(default_factory=InitConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    check: PhysicsCheckConfig = field(default_factory=PhysicsCheckConfig)

    def validate(self) -> "GenerateConfig":
        if self.contacts < 0:
            raise ConfigError("contacts must be >= 1 (or 0: the hand's own)")
        if self.grasps < 1:
            raise ConfigError("grasps must be >= 1")
        if not 1 <= self.best_of <= 64:
            raise ConfigError(f"best_of must be in [1, 64] (candidates per grasp), got {self.best_of}")
        if not self.objects:
            raise ConfigError("no objects given")
        if self.threads < 0:
            raise ConfigError("threads must be >= 0")
        if self.squeeze not in SQUEEZE_MODES:
            raise ConfigError(f"squeeze must be one of {', '.join(SQUEEZE_MODES)}, not {self.squeeze!r}")
        self.energy.validate()
        self.init.validate()
        self.optimizer.validate()
        self.check.validate()
        return self


PROTOCOLS = ("strict", "reference", "dexgraspbench")
DIRECTIONS = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1), "0": (0, 0, 0)}


@dataclass
class PhysicsConfig:
    """A MuJoCo grasp test (METHOD.md s. 8); the defaults are the ``strict`` protocol.

    A grasp is executed pre-grasp -> grasp -> squeeze (joint targets ramped linearly), then each
    *phase* restarts from the squeezed state and applies the pulls of ``phases`` in turn (``"+x"``,
    ``"-z"``, ``"0"`` for none; ``pull_seconds`` each) to the object, along the axes of the object's
    mesh frame. A phase holds when the object stays within ``max_translation`` and
    ``max_rotation_deg`` of where it started. ``success_rule``: ``"all"`` phases must hold, or
    ``"any"``. With ``trials`` > 1, trial k > 0 starts with the object shifted ``trial_jitter`` m in a
    seeded random direction (MuJoCo is deterministic: identical trials would agree) and a grasp
    succeeds when at least ``pass_fraction`` of its trials pass.
    """

    protocol: str = "strict"
    timestep: float = 0.004  # s
    integrator: str = "implicitfast"
    cone: str = "elliptic"
    noslip_iterations: int = 2
    impratio: float = 10.0
    condim: int = 4
    friction: float = 0.6  # sliding
    torsional_friction: float = 0.02  # m
    object_mass: float = 0.1  # kg
    gravity: bool = False
    force: float = 1.0  # N, 10 x mass
    grasp_seconds: float = 0.4
    squeeze_seconds: float = 0.4
    pull_seconds: float = 2.0
    phases: list[str] = field(default_factory=lambda: ["+x", "-x", "+y", "-y", "+z", "-z"])
    success_rule: str = "all"
    max_translation: float = 0.05  # m
    max_rotation_deg: float = 15.0
    max_initial_penetration: float = 0.01  # m, hand-object or hand-hand, at the pre-grasp or grasp configuration
    trials: int = 1
    trial_jitter: float = 0.0  # m
    pass_fraction: float = 0.5
    check_every: float = 0.05  # s between displacement checks (a failed phase stops early)
    stop_at_first_failure: bool = True  # skip the remaining phases once the result is known
    # Hand actuation: position servos on every actuated joint; the armature keeps light links stable
    # at the 4 ms step; kv is critical damping for the armature.
    kp_revolute: float = 5.0  # N m / rad
    kp_prismatic: float = 500.0  # N / m
    armature_revolute: float = 0.01  # kg m^2
    armature_prismatic: float = 0.1  # kg
    hand_density: float = 1000.0  # kg / m^3, link masses from their collision geometry
    open_pose_touch: float = 0.0005  # m, link pairs closer than this in the open pose never collide
    exclude_open_pose_contacts: bool = True  # False: only MuJoCo's parent/child filter
    # Contact model of the hand's geoms ([] = MuJoCo's defaults: solref 0.02 1, solimp 0.9 0.95 0.001)
    hand_solref: list[float] = field(default_factory=list)
    hand_solimp: list[float] = field(default_factory=list)
    joint_damping: float = 0.0  # N m s / rad on every hand joint
    servo_dampratio: float = 1.0  # position servos' damping as a ratio of critical (0: none)
    root: str = "fixed"  # the hand root: "fixed" in the world, or "weld": free, welded to a mocap body
    penetration_check: str = "both"  # where initial penetration is gated: "both" (pre-grasp and grasp) or "pregrasp"
    ramp_steps: int = 0  # servo targets move in this many equal jumps per ramp (0: every time step)
    track: str = "com"  # the object point whose travel is measured: "com" or "origin" (of its mesh frame)
    # "source": a hand imported from an MJCF keeps that file's joint damping / armature / friction
    # loss, body inertials, actuators (gains, force limits, tendon transmissions: an underactuated
    # hand stays underactuated) and contact exclusions; other hands, and "protocol", use the
    # constants above
    hand_dynamics: str = "protocol"

    def validate(self) -> "PhysicsConfig":
        if self.integrator not in ("euler", "implicit", "implicitfast", "rk4"):
            raise ConfigError(f"physics.integrator {self.integrator!r}: euler, implicit, implicitfast or rk4")
        if self.cone not in ("elliptic", "pyramidal"):
            raise ConfigError("physics.cone must be elliptic or pyramidal")
        if self.condim not in (1, 3, 4, 6):
            raise ConfigError("physics.condim must be 1, 3, 4 or 6")
        if self.success_rule not in ("all", "any"):
            raise ConfigError("physics.success_rule must be all or any")
        if self.hand_dynamics not in ("protocol", "source"):
            raise ConfigError(f"physics.hand_dynamics {self.hand_dynamics!r}: protocol or source")
        if self.root not in ("fixed", "weld") or self.penetration_check not in ("both", "pregrasp") or self.track not in ("com", "origin"):
            raise ConfigError("physics: root fixed|weld, penetration_check both|pregrasp, track com|origin")
        if len(self.hand_solref) not in (0, 2) or len(self.hand_solimp) not in (0, 3, 5):
            raise ConfigError("physics: hand_solref takes 2 numbers, hand_solimp 3 or 5 ([] for MuJoCo's defaults)")
        if self.ramp_steps < 0 or self.joint_damping < 0 or self.servo_dampratio < 0:
            raise ConfigError("physics: ramp_steps, joint_damping and servo_dampratio must be >= 0")
        for name in ("timestep", "object_mass", "pull_seconds", "max_translation", "max_rotation_deg", "check_every",
                     "kp_revolute", "kp_prismatic", "hand_density"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"physics.{name} must be > 0")
        for name in ("force", "grasp_seconds", "squeeze_seconds", "max_initial_penetration", "trial_jitter", "friction",
                     "torsional_friction", "armature_revolute", "armature_prismatic", "impratio", "open_pose_touch"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"physics.{name} must be >= 0")
        if self.trials < 1 or not 0 < self.pass_fraction <= 1 or self.noslip_iterations < 0:
            raise ConfigError("physics: trials >= 1, pass_fraction in (0, 1], noslip_iterations >= 0")
        if not self.phases:
            raise ConfigError("physics.phases is empty")
        for ph in self.phases:
            bad = [d for d in ph.split() if d not in DIRECTIONS]
            if bad or not ph.split():
                raise ConfigError(f"physics.phases: {ph!r} is not a list of pulls among {', '.join(DIRECTIONS)}")
        return self


def physics_protocol(name: str) -> PhysicsConfig:
    """The named protocol: ``strict`` (DexGraspBench-like), ``dexgraspbench`` (DexGraspBench's own
    test, constant by constant) or ``reference`` (GraspQP's Isaac Lab test)."""
    if name == "strict":
        return PhysicsConfig()
    if name == "dexgraspbench":
        # DexGraspBench (github.com/JYChen18/DexGraspBench, commit 1e7a5a6), src/util/hand_util.py,
        # src/task/eval_func/{base,fc_mocap}.py, config/task/eval.yaml and its hand XMLs:
        # - hand geoms solref (0.005, 1), solimp (0.5, 0.99, 0.0001) (MjHO._add_hand);
        # - hand root: a free joint welded to a mocap body, weld solimp (0.9, 0.95, 0.001, 0.5, 2);
        # - the hand XML's own dynamics (hand_dynamics "source": joint damping, armature, friction
        #   loss, inertials, actuators with their gains, force ranges and tendons, contact excludes);
        #   for hands not from an MJCF: position actuators kp 5 without damping, joint damping 0.1
        #   (its Allegro XML), no armature;
        # - servo targets in 10 jumps per 0.4 s ramp (control_hand_with_interp: 10 x 10 steps);
        # - initial penetration gated at the pre-grasp pose only (max_pene 0.01, hand-object and hand-hand);
        # - (DexGraspBench excludes no contacts beyond MuJoCo's parent/child filter; graspforge keeps
        #   its exclusion of link pairs touching in the open pose, because the collision geometry
        #   it simulates, its own description of the hand, overlaps there: without it 16 of 16
        #   apple grasps failed the penetration gate that DexGraspBench's boxes pass)
        # - travel of the object's frame origin (its qpos), checked every 50 steps (0.2 s) of the 2 s pull;
        # - friction 0.6 / 0.02, condim 4, elliptic cones, noslip 2, impratio 10, 0.1 kg, 1 N pulls: as strict.
        return PhysicsConfig(
            protocol="dexgraspbench", hand_solref=[0.005, 1.0], hand_solimp=[0.5, 0.99, 0.0001], root="weld",
            armature_revolute=0.0, armature_prismatic=0.0, servo_dampratio=0.0, joint_damping=0.1, ramp_steps=10,
            penetration_check="pregrasp", track="origin", check_every=0.2, hand_dynamics="source",
        )
    if name == "reference":
        # METHOD.md s. 8: 0.2 kg, friction 1.0, 3 N pulls along +-z, +-x, +-y, 0.5 s each in three
        # 1.5 s phases reset between them, fail beyond 3 cm, a trial passes if ANY phase held, a grasp
        # is good if >= 50 % of 2 trials pass. No rotation limit and no penetration gate are stated.
        return PhysicsConfig(
            protocol="reference", friction=1.0, object_mass=0.2, force=3.0, pull_seconds=0.5,
            phases=["+z -z 0", "+x -x 0", "+y -y 0"], success_rule="any", max_translation=0.03,
            max_rotation_deg=360.0, max_initial_penetration=1.0, trials=2, trial_jitter=0.001,
        )
    raise ConfigError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")


@dataclass
class MetricsConfig:
    """Diversity metrics (METHOD.md s. 8): unique-grasp quantisation and entropy histograms."""

    ugr_position: float = 0.02  # m
    ugr_orientation_deg: float = 5.0  # per Euler xyz angle
    ugr_joint: float = 0.2  # rad (or m for prismatic joints)
    entropy_bins: int = 32
    position_range: float = 0.1  # m, +- per axis for the position entropy

    def validate(self) -> "MetricsConfig":
        if not (self.ugr_position > 0 and self.ugr_orientation_deg > 0 and self.ugr_joint > 0 and self.position_range > 0):
            raise ConfigError("metrics: quantisation steps and position_range must be > 0")
        if self.entropy_bins < 2:
            raise ConfigError("metrics.entropy_bins must be >= 2")
        return self


@dataclass
class EvaluateConfig:
    """Everything ``graspforge evaluate`` needs."""

    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    workers: int = 0  # processes; 0 = one per CPU core

    def validate(self) -> "EvaluateConfig":
        if self.workers < 0:
            raise ConfigError("workers must be >= 0")
        self.physics.validate()
        self.metrics.validate()
        return self


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def _merge(obj: Any, data: dict, where: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for k, v in data.items():
        if k not in fields:
            raise ConfigError(f"{where}: unknown setting {k!r} (known: {', '.join(sorted(fields))})")
        cur = getattr(obj, k)
        if dataclasses.is_dataclass(cur):
            if not isinstance(v, dict):
                raise ConfigError(f"{where}.{k} must be a table")
            _merge(cur, v, f"{where}.{k}")
            continue
        setattr(obj, k, _coerce(v, cur, f"{where}.{k}"))


def _coerce(v: Any, cur: Any, where: str) -> Any:
    if isinstance(cur, bool):
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false", "1", "0", "yes", "no"):
            return v.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where} must be true or false, got {v!r}")
    if isinstance(cur, int):
        if isinstance(v, bool):
            raise ConfigError(f"{where} must be an integer, got {v!r}")
        try:
            if isinstance(v, float) and not v.is_integer():
                raise ValueError
            return int(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be an integer, got {v!r}") from None
    if isinstance(cur, float):
        if isinstance(v, bool):
            raise ConfigError(f"{where} must be a number, got {v!r}")
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {v!r}") from None
        if f != f or f in (float("inf"), float("-inf")):
            raise ConfigError(f"{where} must be finite, got {v!r}")
        return f
    if isinstance(cur, list):
        if isinstance(v, str):
            return [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ConfigError(f"{where} must be a list of strings")
        return list(v)
    if isinstance(cur, str):
        if not isinstance(v, str):
            raise ConfigError(f"{where} must be a string, got {v!r}")
        return v
    return v


def load_config(path: str | Path | None = None, overrides: dict | None = None, base: Any = None) -> Any:
    """``base`` (default: a fresh :class:`GenerateConfig`), then a TOML file, then ``overrides``
    (nested dict or dotted keys), validated."""
    cfg = GenerateConfig() if base is None else base
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{p}: not a valid TOML file ({e})") from e
        _merge(cfg, data, str(p))
    if overrides:
        nested: dict = {}
        for k, v in overrides.items():
            cur = nested
            parts = k.split(".")
            for part in parts[:-1]:
                cur = cur.setdefault(part, {})
            cur[parts[-1]] = v
        _merge(cfg, nested, "override")
    return cfg.validate()


def dump_toml(cfg: Any) -> str:
    return tomli_w.dumps(to_dict(cfg))
