"""The physics check inside synthesis (``check.rounds``): failing grasps replaced from fresh rounds,
passing ones untouched, labels that match an independent evaluation, results independent of batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graspforge.config import ConfigError, load_config
from graspforge.io.grasp_set import GraspSet, GraspSetError
from graspforge.pipelines.evaluation import evaluate_grasp_set
from graspforge.hands import load_hand
from graspforge.objects import load_object
from graspforge.pipelines.synthesis import _fill_failures, candidate_seed, round_seed, synthesize


def _tiny_set(n: int, offset: float, success: list[bool], obj_hash: str = "h") -> GraspSet:
    """A hand-made grasp set whose root x positions are ``offset + index`` (to see where rows land)."""
    d, k = 2, 3
    z = lambda *s: np.zeros(s)  # noqa: E731
    quat = np.tile([1.0, 0, 0, 0], (n, 1))
    return GraspSet(
        hand="h", joint_names=["a", "b"], grasp_type="full", object_name="o", object_source="o", object_hash=obj_hash,
        object_scale=1.0, root_position=np.c_[offset + np.arange(n), z(n, 2)], root_quaternion=quat,
        joint_positions=z(n, d), pregrasp_joint_positions=z(n, d), squeeze_joint_positions=z(n, d),
        contact_points=z(n, k, 3), contact_normals=z(n, k, 3), contact_links=np.full((n, k), "l"),
        contact_indices=np.zeros((n, k), np.int64), contact_distance=z(n, k), energy=z(n),
        terms={t: z(n) for t in ("energy_dis", "energy_fc", "energy_pen", "energy_spen", "energy_joints")}, qp_value=z(n),
        extra={"check_success": np.array(success, bool)},
    )


def test_failures_are_filled_in_index_order_and_the_rest_kept():
    current = _tiny_set(5, 0.0, [True, False, True, False, False])
    fresh = _tiny_set(5, 100.0, [False, True, False, True, False])
    out = _fill_failures(current, fresh)
    # slots 1 and 3 (the first two failures) get fresh grasps 1 and 3; slot 4 keeps its failing grasp
    assert out.root_position[:, 0].tolist() == [0, 101, 2, 103, 4]
    assert out.extra["check_success"].tolist() == [True, True, True, True, False]
    # a fresh round with more passes than failures: only as many as needed, the first ones
    out2 = _fill_failures(_tiny_set(3, 0.0, [False, True, True]), _tiny_set(3, 50.0, [True, True, True]))
    assert out2.root_position[:, 0].tolist() == [50, 1, 2]


def test_concatenate_refuses_sets_of_other_objects():
    with pytest.raises(GraspSetError, match="does not match"):
        GraspSet.concatenate([_tiny_set(2, 0, [True, True]), _tiny_set(2, 0, [True, True], obj_hash="other")])
    with pytest.raises(GraspSetError, match="no grasp sets"):
        GraspSet.concatenate([])


def test_round_seeds_are_distinct_from_neighbouring_run_seeds():
    assert round_seed(7, 0) == 7
    seeds = {round_seed(s, r) for s in range(20) for r in range(1, 4)}
    assert len(seeds) == 60 and not seeds & set(range(100))


def test_check_config_is_validated():
    with pytest.raises(ConfigError, match="check.rounds"):
        load_config(overrides={"check.rounds": -1})
    with pytest.raises(ConfigError, match="check.protocol"):
        load_config(overrides={"check.protocol": "gentle"})


@pytest.fixture(scope="module")
def checked_runs():
    torch.set_num_threads(1)
    hand = load_hand("allegro")
    box, sphere = load_object("box"), load_object("sphere:radius=0.035")
    cfg = load_config(overrides={"grasps": 4, "contacts": 6, "optimizer.iterations": 40, "energy.object_points": 300,
                                 "check.protocol": "strict"})
    plain = synthesize(hand, [box], cfg)
    checked_cfg = load_config(overrides={**{"grasps": 4, "contacts": 6, "optimizer.iterations": 40, "energy.object_points": 300},
                                         "check.protocol": "strict", "check.rounds": 2})
    together = synthesize(hand, [box, sphere], checked_cfg)
    alone = synthesize(hand, [box], checked_cfg)
    return hand, box, plain.grasp_sets[0], together, alone.grasp_sets[0], checked_cfg


def test_passing_grasps_are_the_unchecked_runs_and_labels_match_evaluate(checked_runs):
    hand, box, plain, together, alone, cfg = checked_runs
    gs = together.grasp_sets[0]
    rnd, ok = gs.extra["synthesis_round"], gs.extra["check_success"]
    assert len(gs) == 4 and set(np.unique(rnd)) <= {0, 1, 2}
    assert together.rounds and (rnd > 0).any(), "40 iterations leave failures, and a later round fills one (seed 0)"
    # round-0 grasps are exactly the grasps of a run without the check, in their own slots
    first = rnd == 0
    np.testing.assert_array_equal(gs.root_position[first], plain.root_position[first])
    np.testing.assert_array_equal(gs.joint_positions[first], plain.joint_positions[first])
    # a slot was replaced only when its round-0 grasp failed the check
    plain_ok = evaluate_grasp_set(plain, hand.description, box, protocols=("strict",), geometry=False).arrays["eval_strict_success"]
    assert np.all(plain_ok[~first] == False)  # noqa: E712
    assert np.all(ok[~first])  # replacements are passing grasps
    # the labels are what an independent evaluation of the written grasps says
    again = evaluate_grasp_set(gs, hand.description, box, protocols=("strict",), geometry=False).arrays["eval_strict_success"]
    np.testing.assert_array_equal(again, ok)
    # rounds stop when nothing fails, and report what they re-synthesised
    for r in together.rounds:
        assert r["round"] in (1, 2) and all(v > 0 for v in r["failing"].values())


def test_checked_synthesis_does_not_depend_on_the_batch(checked_runs):
    _, _, _, together, alone, _ = checked_runs
    a, b = together.grasp_sets[0], alone
    for k in ("root_position", "root_quaternion", "joint_positions", "squeeze_joint_positions"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    np.testing.assert_array_equal(a.extra["synthesis_round"], b.extra["synthesis_round"])


# -- best of N candidates per grasp -------------------------------------------------------------------

def test_best_of_keeps_each_slots_lowest_energy_candidate():
    """Grasp i of a best-of-2 run is whichever of grasp i of the run's own seed and of candidate seed 1
    has the lower energy, with that round in ``extra["candidate"]``; batching two objects changes
    nothing; the progress count runs on over both rounds."""
    torch.set_num_threads(1)
    hand = load_hand("allegro")
    box, sphere = load_object("box"), load_object("sphere:radius=0.035")
    base = {"grasps": 4, "contacts": 6, "optimizer.iterations": 30, "energy.object_points": 300, "seed": 3}
    a = synthesize(hand, [box], load_config(overrides=base)).grasp_sets[0]
    b = synthesize(hand, [box], load_config(overrides={**base, "seed": candidate_seed(3, 1)})).grasp_sets[0]
    assert not np.array_equal(a.energy, b.energy)
    steps = []
    cfg = load_config(overrides={**base, "best_of": 2})
    both = synthesize(hand, [box, sphere], cfg, progress=lambda opt, n: steps.append(n)).grasp_sets[0]
    pick_b = b.energy < a.energy
    np.testing.assert_array_equal(both.extra["candidate"], pick_b.astype(np.int64))
    np.testing.assert_array_equal(both.joint_positions, np.where(pick_b[:, None], b.joint_positions, a.joint_positions))
    np.testing.assert_array_equal(both.energy, np.minimum(a.energy, b.energy))
    alone = synthesize(hand, [box], cfg).grasp_sets[0]
    np.testing.assert_array_equal(alone.joint_positions, both.joint_positions)
    per_round = cfg.optimizer.iterations + cfg.optimizer.refine_iterations
    assert max(steps) == 2 * per_round and steps == sorted(steps)
    assert "candidate" not in a.extra  # best of 1 writes what it always wrote


def test_best_of_is_validated():
    for bad in (0, -1, 65):
        with pytest.raises(ConfigError, match="best_of"):
            load_config(overrides={"best_of": bad})
    assert candidate_seed(5, 0) == 5 and candidate_seed(5, 1) not in {round_seed(5, r) for r in range(4)}
    from graspforge.cli.generate import synthesis_overrides

    assert load_config(overrides=synthesis_overrides(best_of=3)).best_of == 3  # generate --best-of 3
