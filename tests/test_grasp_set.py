"""Grasp-set files: round trip with NumPy alone, atomic writes, hostile files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import corrupt_bytes
from graspforge.io.grasp_set import FORMAT_VERSION, TERM_KEYS, GraspSet, GraspSetError


def make_set(N=5, K=4, D=3, seed=0) -> GraspSet:
    r = np.random.default_rng(seed)
    q = r.normal(size=(N, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return GraspSet(
        hand="toy", joint_names=["a", "b", "c"][:D], grasp_type="full", object_name="box", object_source="builtin:box",
        object_hash="ab" * 32, object_scale=1.0, root_position=r.normal(size=(N, 3)), root_quaternion=q,
        joint_positions=r.normal(size=(N, D)), pregrasp_joint_positions=r.normal(size=(N, D)),
        squeeze_joint_positions=r.normal(size=(N, D)), contact_points=r.normal(size=(N, K, 3)),
        contact_normals=r.normal(size=(N, K, 3)), contact_links=np.full((N, K), "tip"), contact_indices=r.integers(0, 9, (N, K)),
        contact_distance=r.normal(size=(N, K)), energy=r.random(N), terms={k: r.random(N) for k in TERM_KEYS},
        qp_value=r.random(N), config_toml='hand = "toy"\n', extra={"penetration_depth": r.random(N)},
    )


def test_round_trip_with_numpy_alone(tmp_path):
    g = make_set()
    p = g.save(tmp_path / "g.npz")
    with np.load(p, allow_pickle=False) as z:  # no pickle needed
        assert int(z["format_version"]) == FORMAT_VERSION
        assert z["joint_positions"].shape == (5, 3) and str(z["hand"]) == "toy"
        assert z["root_quaternion"].shape == (5, 4)
    h = GraspSet.load(p)
    for k in ("root_position", "root_quaternion", "joint_positions", "contact_points", "energy", "qp_value"):
        np.testing.assert_array_equal(getattr(h, k), getattr(g, k))
    assert h.joint_names == g.joint_names and h.config_toml == g.config_toml
    np.testing.assert_array_equal(h.extra["penetration_depth"], g.extra["penetration_depth"])
    assert len(h.select(h.energy > 0.5)) == int((g.energy > 0.5).sum())
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_inconsistent_shapes_are_rejected():
    g = make_set()
    with pytest.raises(GraspSetError, match="joint_positions"):
        GraspSet(**{**g.__dict__, "joint_positions": np.zeros((5, 2))})


def test_wrong_version_and_missing_file(tmp_path):
    g = make_set()
    a = g.to_arrays()
    a["format_version"] = np.asarray(99)
    np.savez(tmp_path / "v.npz", **a)
    with pytest.raises(GraspSetError, match="format_version 99"):
        GraspSet.load(tmp_path / "v.npz")
    with pytest.raises(GraspSetError, match="not found"):
        GraspSet.load(tmp_path / "nope.npz")


def test_pickled_arrays_are_never_loaded(tmp_path):
    a = make_set().to_arrays()
    a["evil"] = np.array([{"x": 1}], dtype=object)
    np.savez(tmp_path / "p.npz", **a)
    with pytest.raises(GraspSetError):
        GraspSet.load(tmp_path / "p.npz")


_SAVED: dict[str, bytes] = {}


def saved_bytes(tmp_path) -> bytes:
    """One file's bytes for every example: a file saved per example carries its creation time, so
    its length (and with it hypothesis' draws) would change between examples."""
    if "raw" not in _SAVED:
        make_set().save(tmp_path / "g0.npz")
        _SAVED["raw"] = (tmp_path / "g0.npz").read_bytes()
    return _SAVED["raw"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_files_raise_grasp_set_error(tmp_path, data):
    p = tmp_path / "g.npz"
    p.write_bytes(corrupt_bytes(saved_bytes(tmp_path), data))
    try:
        g = GraspSet.load(p)
    except GraspSetError as e:
        assert "g.npz" in str(e)
        return
    g.validate()
