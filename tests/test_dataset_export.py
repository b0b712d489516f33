"""``graspforge dataset export``: DexGraspNet, GraspQP and DexGraspBench files, read back exactly;
hostile files are refused without running any code."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import corrupt_bytes
from graspforge.cli.main import main
from graspforge.io.export import (EXPORT_FORMATS, ExportError, euler_sxyz_to_quaternion, export_grasp_set, load_npy_safely,
                                       quaternion_to_euler_sxyz, read_export, read_graspqp)
from graspforge.io.grasp_set import GraspSet
from test_grasp_set import make_set

torch.set_num_threads(1)


def _rotation(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 3, 3) of w-x-y-z quaternions, written out (independent of trimesh)."""
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], 1)


def _real_object(gs: GraspSet) -> GraspSet:
    """The toy set's object made the real built-in box (the DexGraspBench export writes its pieces
    and checks the content hash)."""
    from graspforge.objects import load_object

    gs.object_hash = load_object("box").content_hash
    return gs


def _read_back(files, fmt, gs):
    path = files[0].parent if fmt == "dexgraspbench" else files[0]
    return read_export(path, fmt, list(gs.joint_names) if fmt == "dexgraspnet" else None)


def _assert_same_grasps(back, gs, tol=1e-12):
    assert len(back) == len(gs) and back.joint_names == list(gs.joint_names)
    np.testing.assert_allclose(back.root_position, gs.root_position, atol=tol)
    np.testing.assert_allclose(_rotation(back.root_quaternion), _rotation(gs.root_quaternion), atol=1e-9)
    np.testing.assert_allclose(back.joint_positions, gs.joint_positions, atol=1e-6)
    np.testing.assert_allclose(back.pregrasp_joint_positions, gs.pregrasp_joint_positions, atol=1e-6)
    np.testing.assert_allclose(back.squeeze_joint_positions, gs.squeeze_joint_positions, atol=1e-6)
    np.testing.assert_allclose(back.energy, gs.energy, rtol=1e-6)
    assert back.object_scale == pytest.approx(gs.object_scale)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_round_trip(tmp_path, fmt):
    gs = _real_object(make_set(N=6, K=4, D=3, seed=3))
    files = export_grasp_set(gs, fmt, tmp_path)
    assert files and all(f.is_file() for f in files)
    assert not list(tmp_path.rglob(".*.tmp"))
    _assert_same_grasps(_read_back(files, fmt, gs), gs, tol=1e-12)


def test_dexgraspnet_layout_and_euler_convention(tmp_path):
    gs = make_set(N=4, seed=1)
    (f,) = export_grasp_set(gs, "dexgraspnet", tmp_path)
    assert f.relative_to(tmp_path).as_posix() == "toy/full/box.npy"
    rows = load_npy_safely(f)
    assert len(rows) == 4 and set(rows[0]) >= {"scale", "qpos", "energy", "E_dis", "E_fc", "E_pen", "E_spen", "E_joints"}
    q = rows[2]["qpos"]
    assert list(q)[:6] == ["WRJTx", "WRJTy", "WRJTz", "WRJRx", "WRJRy", "WRJRz"] and list(q)[6:] == gs.joint_names
    # transforms3d's default "sxyz": R = Rz(c) Ry(b) Rx(a), written out here
    a, b, c = q["WRJRx"], q["WRJRy"], q["WRJRz"]
    Rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    Ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    Rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    np.testing.assert_allclose(Rz @ Ry @ Rx, _rotation(gs.root_quaternion[2:3])[0], atol=1e-12)
    e = quaternion_to_euler_sxyz(gs.root_quaternion)
    np.testing.assert_allclose(_rotation(euler_sxyz_to_quaternion(e)), _rotation(gs.root_quaternion), atol=1e-12)


def test_graspqp_layout_matches_the_reference(tmp_path):
    gs = make_set(N=5, K=4, seed=2)
    (f,) = export_grasp_set(gs, "graspqp", tmp_path)
    assert f.relative_to(tmp_path).as_posix() == "box/grasp_predictions/toy/4_contacts/graspqp/default/box.dexgrasp.pt"
    d = torch.load(f, weights_only=True)
    assert d["parameters"]["root_pose"].shape == (5, 7) and d["contact_idx"].shape == (5, 4)
    assert set(d["parameters"]) == {"root_pose", *gs.joint_names} and d["grasp_type"] is None
    np.testing.assert_allclose(d["parameters"]["root_pose"][:, 3:].numpy(), gs.root_quaternion, atol=1e-6)  # w first
    np.testing.assert_allclose(d["grasp_velocities"]["b"].numpy(), gs.squeeze_joint_positions[:, 1] - gs.joint_positions[:, 1], atol=1e-6)
    np.testing.assert_allclose(d["values"].numpy(), gs.energy, rtol=1e-6)


def test_dexgraspbench_files_hold_pose_then_joints_and_the_object_in_its_layout(tmp_path):
    import trimesh

    from graspforge.objects import load_object

    gs = _real_object(make_set(N=3, seed=4))
    files = export_grasp_set(gs, "dexgraspbench", tmp_path)
    assert [f.name for f in files] == ["0.npy", "1.npy", "2.npy"]
    assert files[0].parent.relative_to(tmp_path).as_posix() == "toy/graspdata/full/box"  # OUT/HAND is a DexGraspBench save_dir
    d = load_npy_safely(files[1])
    np.testing.assert_array_equal(d["obj_pose"], [0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(d["grasp_qpos"], np.concatenate([gs.root_position[1], gs.root_quaternion[1], gs.joint_positions[1]]))
    np.testing.assert_array_equal(d["squeeze_qpos"][7:], gs.squeeze_joint_positions[1])
    # DexGraspBench's object layout: convex pieces, and mass / density = their volume (it derives its density from that)
    obj_dir = tmp_path / d["obj_path"] if not d["obj_path"].startswith("/") else __import__("pathlib").Path(d["obj_path"])
    assert d["obj_scale"] == 1.0 and obj_dir.parent.name == "objects"
    pieces = sorted((obj_dir / "urdf" / "meshes").glob("convex_piece_*.obj"))
    info = json.loads((obj_dir / "info" / "simplified.json").read_text())
    assert pieces and info["scale"] == 1.0
    volume = sum(trimesh.load(p, force="mesh").volume for p in pieces)
    box = load_object("box")
    assert info["mass"] / info["density"] == pytest.approx(volume, rel=1e-6)
    assert volume == pytest.approx(box.volume, rel=0.01)
    lo, hi = np.min([trimesh.load(p, force="mesh").bounds[0] for p in pieces], 0), np.max([trimesh.load(p, force="mesh").bounds[1] for p in pieces], 0)
    np.testing.assert_allclose(lo, box.bounds[0], atol=1e-6)
    np.testing.assert_allclose(hi, box.bounds[1], atol=1e-6)
    # another grasp type of the same object reuses the folder
    gs2 = _real_object(make_set(N=2, seed=5))
    gs2.grasp_type = "pinch"
    files2 = export_grasp_set(gs2, "dexgraspbench", tmp_path)
    assert load_npy_safely(files2[0])["obj_path"] == d["obj_path"]
    # a grasp set whose recorded object is not the mesh found is refused, not written with the wrong object
    bad = make_set(N=2, seed=6)
    bad.object_name = "other"
    with pytest.raises(ExportError, match="not the mesh"):
        export_grasp_set(bad, "dexgraspbench", tmp_path)


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_hostile_pickles_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    buf = io.BytesIO()
    np.save(buf, np.array([{"qpos": _Boom()}], dtype=object), allow_pickle=True)
    (tmp_path / "evil.npy").write_bytes(buf.getvalue())
    with pytest.raises(ExportError, match="refusing to load"):
        load_npy_safely(tmp_path / "evil.npy")
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"parameters": _Boom()}))
    with pytest.raises(ExportError):
        read_graspqp(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), fmt=st.sampled_from(EXPORT_FORMATS))
def test_corrupted_exports_give_a_clear_error(tmp_path_factory, data, fmt):
    import shutil

    # one folder, emptied per example: the dexgraspbench files hold the object's absolute path, and
    # hypothesis replays need files of the same length
    tmp = tmp_path_factory.getbasetemp() / "corrupt"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    gs = _real_object(make_set(N=3, seed=5))
    files = export_grasp_set(gs, fmt, tmp)
    victim = files[0]
    victim.write_bytes(corrupt_bytes(victim.read_bytes(), data))
    try:
        back = _read_back(files, fmt, gs)
    except ExportError:
        return
    # a corruption that still parses must give well-formed arrays (e.g. bits flipped inside a float)
    assert back.joint_positions.shape == (len(back), 3) and np.all(np.isfinite(back.root_position))


def test_dataset_export_cli_round_trips_a_real_build(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["dataset", "build", "--objects", "box", "--hands", "panda", "--grasps-per-object", "3", "--iterations", "10",
                 "--keep", "all", "--no-evaluate", "--quiet", "--out", str(out)]) == 0
    (row,) = json.loads((out / "index.json").read_text())
    gs = GraspSet.load(out / row["file"])
    for fmt in EXPORT_FORMATS:
        assert main(["dataset", "export", str(out), "--format", fmt]) == 0
        manifest = json.loads((out / "exports" / fmt / "manifest.json").read_text())
        (job,) = manifest["jobs"]
        assert job["grasps"] == 3 and job["joint_names"] == gs.joint_names
        files = [out / "exports" / fmt / f for f in job["files"]]
        _assert_same_grasps(_read_back(files, fmt, gs), gs)
    with pytest.raises(SystemExit):  # argparse: unknown format
        main(["dataset", "export", str(out), "--format", "isaac"])
    assert main(["dataset", "export", str(tmp_path / "nothing"), "--format", "graspqp"]) == 1
    assert "no such file or folder" in capsys.readouterr().err
    # grasp files and folders of them export too (--out needed: no dataset to default into)
    loose = tmp_path / "loose"
    loose.mkdir()
    gs.save(loose / "a.npz")
    assert main(["dataset", "export", str(loose / "a.npz"), "--format", "graspqp"]) == 1
    assert "give --out" in capsys.readouterr().err
    for src in (loose / "a.npz", loose):
        assert main(["dataset", "export", str(src), "--format", "dexgraspnet", "--out", str(tmp_path / "x")]) == 0
        (job,) = json.loads((tmp_path / "x" / "manifest.json").read_text())["jobs"]
        _assert_same_grasps(_read_back([tmp_path / "x" / job["files"][0]], "dexgraspnet", gs), gs)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["dataset", "export", str(empty), "--format", "graspqp", "--out", str(tmp_path / "y")]) == 1
    assert "neither a graspforge dataset nor a folder of grasp files" in capsys.readouterr().err


def _shadow_set(N=4, seed=7) -> GraspSet:
    """Grasps of the built-in Shadow hand at random joints in range (wrist joints too) and random poses."""
    from graspforge.hands import load_hand_description

    desc = load_hand_description("shadow_hand")
    gs = make_set(N=N, K=4, D=3, seed=seed)
    r = np.random.default_rng(seed)
    lo, hi = desc.tree.lower, desc.tree.upper
    gs.hand, gs.joint_names = "shadow_hand", list(desc.joint_names)
    gs.joint_positions, gs.pregrasp_joint_positions, gs.squeeze_joint_positions = (r.uniform(lo, hi, (N, len(lo))) for _ in range(3))
    return gs


def test_dexgraspnet_shadow_hand_is_written_in_dexgraspnet_s_model(tmp_path):
    """DexGraspNet's loaders read only its Shadow hand (a free palm, no wrist joints, joints named
    robot0:FFJ3 ...): the qpos hold the palm link's pose and those joints, so that every link lands
    where graspforge's FK from the root pose puts it; graspforge's own dicts ride along."""
    from graspforge.io.export import DGN_SHADOW_JOINTS
    from graspforge.hands import load_hand_description

    tree = load_hand_description("shadow_hand").tree
    palm = tree.link_names.index("robot0_palm")
    gs = _shadow_set()
    (f,) = export_grasp_set(gs, "dexgraspnet", tmp_path)
    rows = load_npy_safely(f)
    for key, q_all in (("qpos", gs.joint_positions), ("qpos_pregrasp", gs.pregrasp_joint_positions), ("qpos_squeeze", gs.squeeze_joint_positions)):
        for i, row in enumerate(rows):
            q = row[key]
            assert list(q) == ["WRJTx", "WRJTy", "WRJTz", "WRJRx", "WRJRy", "WRJRz", *DGN_SHADOW_JOINTS]
            for n in DGN_SHADOW_JOINTS:
                assert q[n] == pytest.approx(q_all[i, gs.joint_names.index(n.replace(":", "_"))], abs=1e-12)
            # the world pose of the palm: transforms3d's sxyz Euler angles, written out (as in the test above)
            a, b, c = q["WRJRx"], q["WRJRy"], q["WRJRz"]
            Rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
            Ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
            Rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
            W_palm = np.eye(4)
            W_palm[:3, :3], W_palm[:3, 3] = Rz @ Ry @ Rx, [q["WRJTx"], q["WRJTy"], q["WRJTz"]]
            W_root = np.eye(4)
            W_root[:3, :3], W_root[:3, 3] = _rotation(gs.root_quaternion[i:i + 1])[0], gs.root_position[i]
            T = tree.forward_numpy(q_all[i])  # links in the root frame (plain numpy FK)
            from_palm = W_palm @ np.linalg.inv(T[palm]) @ T  # every link placed from the palm pose written
            np.testing.assert_allclose(from_palm[:, :3, 3], (W_root @ T)[:, :3, 3], atol=1e-9)
    # the wrist joints move the palm: the palm pose is not the root pose composed with one fixed offset
    assert np.ptp([r["qpos"]["WRJTx"] - r["graspforge"]["qpos"]["WRJTx"] for r in rows]) > 1e-3
    _assert_same_grasps(read_export(f, "dexgraspnet", list(gs.joint_names)), gs)


def test_dexgraspnet_other_hands_keep_graspforge_s_root_link_and_joints(tmp_path):
    gs = make_set(N=3, seed=8)
    (f,) = export_grasp_set(gs, "dexgraspnet", tmp_path)
    row = load_npy_safely(f)[0]
    assert "graspforge" not in row and list(row["qpos"])[6:] == gs.joint_names
    assert row["qpos"]["WRJTx"] == pytest.approx(gs.root_position[0, 0])
