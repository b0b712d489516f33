"""``graspforge evaluate`` on real files: results written back atomically, summaries, filtering,
resume, and clear errors for files that do not match their hand or object."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import HANDS_DIR, need_shared
from graspforge.cli.main import main
from graspforge.io.grasp_set import GraspSet
from graspforge.pipelines.evaluation import sidecar_path
from graspforge.objects import load_object

BOX = "box:extents=0.04"
#: Panda root position that puts the 4 cm cube between the finger pads, and the opening at touch
#: (both found by tests/test_simulation.py's scan; fixed here to keep this test fast)
ROOT = np.array([0.0, 0.0, -0.0295])
TOUCH = 0.020


def _grasp_file(path, openings, hand_dir, joint_names=("panda_finger_joint1",), object_hash=None):
    box = load_object(BOX)
    N = len(openings)
    q = np.asarray(openings, float)[:, None]
    gs = GraspSet(
        hand="panda", joint_names=list(joint_names), grasp_type="full", object_name="box", object_source=box.source,
        object_hash=object_hash or box.content_hash, object_scale=1.0,
        root_position=np.tile(ROOT, (N, 1)), root_quaternion=np.tile([1.0, 0, 0, 0], (N, 1)),
        joint_positions=q, pregrasp_joint_positions=np.minimum(q + 0.01, 0.04), squeeze_joint_positions=q - 0.005,
        contact_points=np.zeros((N, 2, 3)), contact_normals=np.tile([1.0, 0, 0], (N, 2, 1)),
        contact_links=np.full((N, 2), "panda_leftfinger"), contact_indices=np.zeros((N, 2), int),
        contact_distance=np.zeros((N, 2)), energy=np.zeros(N), terms={k: np.zeros(N) for k in
                                                                      ("energy_dis", "energy_fc", "energy_pen", "energy_spen", "energy_joints")},
        qp_value=np.zeros(N), config_toml=f'hand = "{hand_dir}"\n',
    )
    gs.save(path)
    return path


def test_evaluate_writes_results_and_filters(tmp_path, capsys):
    hand_dir = need_shared(HANDS_DIR / "panda")
    f = _grasp_file(tmp_path / "box__panda__full.npz", [TOUCH, 0.04, TOUCH], hand_dir)
    rc = main(["evaluate", str(f), "--protocol", "strict", "reference", "--workers", "1", "--keep-successful", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    gs = GraspSet.load(f)
    np.testing.assert_array_equal(gs.extra["success"], [True, False, True])
    np.testing.assert_array_equal(gs.extra["eval_strict_success"], [True, False, True])
    assert gs.extra["eval_strict_held"].shape == (3, 6) and gs.extra["eval_reference_held"].shape == (3, 3)
    assert gs.extra["eval_strict_reason"].tolist() == [0, 2, 0]
    assert gs.extra["eval_penetration_depth"].shape == (3,) and np.all(gs.extra["eval_penetration_depth"] < 0.005)
    side = json.loads(sidecar_path(f).read_text())
    s = side["summary"]["strict"]
    assert s["success_rate"] == pytest.approx(2 / 3)
    assert s["unique"] == 1 and s["ugr"] == pytest.approx(1 / 3)  # the two clamps are the same grasp
    assert side["summary"]["strict"]["physics"]["force"] == 1.0 and side["summary"]["reference"]["physics"]["force"] == 3.0
    assert "[physics]" in side["config_toml"]
    kept = GraspSet.load(tmp_path / "box__panda__full.successful.npz")
    assert len(kept) == 2
    assert "overall" in out and "66.7%" in out and "# physics strict:" in out
    assert "|d| mm = mean distance to the object of the contact points recorded in the file" in out  # not simulated contacts
    # a second run finds the results and does not redo them
    before = f.stat().st_mtime_ns
    assert main(["evaluate", str(f), "--protocol", "strict", "reference", "--workers", "2", "--quiet"]) == 0
    assert f.stat().st_mtime_ns == before
    assert "already evaluated" in capsys.readouterr().err
    # other settings are a new evaluation
    assert main(["evaluate", str(f), "--protocol", "strict", "--set", "physics.force=50", "--workers", "1", "--quiet", "--no-geometry"]) == 0
    assert GraspSet.load(f).extra["success"].tolist() == [False, False, False]  # 50 N pulls the box out
    assert f.stat().st_mtime_ns != before
    capsys.readouterr()
    # --json prints machine-readable figures
    assert main(["evaluate", str(f), "--protocol", "strict", "reference", "--workers", "1", "--quiet", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["overall"]["success_strict"] == pytest.approx(2 / 3)


def test_evaluate_reports_mismatched_files_and_goes_on(tmp_path, capsys):
    hand_dir = need_shared(HANDS_DIR / "panda")
    good = _grasp_file(tmp_path / "a_good.npz", [TOUCH], hand_dir)
    wrong_joints = _grasp_file(tmp_path / "b_joints.npz", [TOUCH], hand_dir, joint_names=("finger_a",))
    wrong_object = _grasp_file(tmp_path / "c_object.npz", [TOUCH], hand_dir, object_hash="0" * 64)
    rc = main(["evaluate", str(tmp_path), "--workers", "1", "--quiet", "--no-geometry"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "b_joints.npz" in err and "do not match hand 'panda'" in err
    assert "c_object.npz" in err and "not the mesh the grasps were made for" in err
    assert GraspSet.load(good).extra["success"].tolist() == [True]  # the good file was still done
    assert "success" not in GraspSet.load(wrong_joints).extra and "success" not in GraspSet.load(wrong_object).extra


def test_evaluate_rejects_bad_settings(tmp_path, capsys):
    hand_dir = need_shared(HANDS_DIR / "panda")
    f = _grasp_file(tmp_path / "g.npz", [TOUCH], hand_dir)
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(f), "--protocol", "lenient"])
    assert e.value.code == 2
    assert main(["evaluate", str(f), "--set", "physics.timestep=-1", "--quiet"]) == 1
    assert "physics.timestep must be > 0" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.npz"), "--quiet"]) == 1
    assert "not found" in capsys.readouterr().err


def test_evaluate_in_another_model_of_the_hand(tmp_path, capsys):
    """``--hand-model``: the grasps are simulated in another model of their hand (here an MJCF of the
    built-in Allegro written by tests/test_alignment.py's builder, its frame moved and joints renamed
    and reordered), results land in the original file, and a model of another hand is refused
    without touching the file."""
    from scipy.spatial.transform import Rotation

    from graspforge.hands import load_hand_description
    from test_alignment import _mjcf

    allegro = load_hand_description("allegro")
    R0 = Rotation.from_euler("zyx", [90, 0, 10], degrees=True).as_matrix()
    model = _mjcf(allegro, tmp_path / "their_allegro.xml", R0, np.array([0.02, 0.0, 0.1]))
    other = _mjcf(allegro, tmp_path / "other.xml", R0, np.zeros(3), nudge=("ring_joint_1", np.array([0.0, 0.012, 0.0])))
    box = load_object(BOX)
    n, d = 2, allegro.tree.dof
    q = np.tile(0.5 * (allegro.tree.lower + allegro.tree.upper), (n, 1))
    z = np.zeros
    path = tmp_path / "g.npz"
    GraspSet(hand="allegro", joint_names=allegro.joint_names, grasp_type="full", object_name="box", object_source=box.source,
             object_hash=box.content_hash, object_scale=1.0, root_position=np.array([[0.0, 0.0, 0.3], [0.3, 0.0, 0.0]]),
             root_quaternion=np.tile([1.0, 0, 0, 0], (n, 1)), joint_positions=q, pregrasp_joint_positions=q, squeeze_joint_positions=q,
             contact_points=z((n, 1, 3)), contact_normals=z((n, 1, 3)), contact_links=np.full((n, 1), "l"),
             contact_indices=z((n, 1), int), contact_distance=z((n, 1)), energy=z(n),
             terms={k: z(n) for k in ("energy_dis", "energy_fc", "energy_pen", "energy_spen", "energy_joints")},
             qp_value=z(n)).save(path)
    before = path.read_bytes()
    assert main(["evaluate", str(path), "--hand-model", str(other), "--workers", "1", "--quiet", "--no-geometry"]) == 1
    assert "mm" in capsys.readouterr().err and path.read_bytes() == before
    assert main(["evaluate", str(path), "--hand-model", str(model), "--workers", "1", "--quiet", "--no-geometry"]) == 0
    assert "# geometry" not in capsys.readouterr().out  # no geometry measured, no legend for it
    gs = GraspSet.load(path)
    assert gs.hand == "allegro" and gs.joint_names == allegro.joint_names  # the file keeps its own hand
    # a hand 30 cm from the box holds nothing, in either model
    assert gs.extra["eval_strict_success"].tolist() == [False, False]
    side = json.loads(sidecar_path(path).read_text())
    assert side["hand"] == f"allegro in {model}"
