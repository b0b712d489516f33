"""Hand descriptions: the seven reference hands load, contact candidates match the reference's own
dump, collision grids match the exact link meshes, descriptions round-trip and regenerate."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from conftest import HANDS_DIR, need_shared
from graspforge.errors import HandLoadError, UnknownNameError
from graspforge.geometry.exact import exact_signed_distance_union
from graspforge.geometry.sampling import sample_surface
from graspforge.hands import HandDescription, HandModel, builtin_hand_names, load_hand_description
from graspforge.hands.checks import FINGER_WORDS, collision_grid_errors
from graspforge.hands.description import BuildOptions, _link_parts
from graspforge.hands.loading import BUILTIN_DIR
from graspforge.hands.urdf import parse_urdf

#: the exact-mesh geometry of the built-ins (the default is each link's hull, as `hands import`)
MESH = BuildOptions(link_geometry="mesh")

DOF = {"allegro": 16, "shadow_hand": 24, "ability_hand": 6, "panda": 1, "robotiq2": 1, "robotiq3": 11, "schunk_2f": 1}


@pytest.mark.parametrize("hand", sorted(DOF))
def test_reference_hand_loads_with_expected_dof(hand):
    d = load_hand_description(need_shared(HANDS_DIR / hand))
    assert d.dof == DOF[hand]
    assert len(d.contact_points) > 0 and np.all(np.isfinite(d.contact_points))
    np.testing.assert_allclose(np.linalg.norm(d.contact_normals, axis=1), 1.0, atol=1e-6)
    assert "full" in d.grasp_types
    assert np.all((d.canonical_q >= d.tree.lower - 1e-12) & (d.canonical_q <= d.tree.upper + 1e-12))
    assert abs(d.approach_axis @ d.up_axis) < 1e-9
    # FK runs on the model
    m = HandModel(d)
    st = m.forward_kinematics(m.canonical_pose(2))
    assert torch.isfinite(st.links.pos).all()


@pytest.mark.parametrize("hand", ["allegro", "shadow_hand", "ability_hand", "robotiq2", "robotiq3", "panda"])
def test_contact_candidates_agree_with_reference_dump(hand):
    """The reference dumped the candidates it sampled (contact_infos.json); ours are a different random
    sample of the same surfaces, so compare per-link centroids and normals, not points."""
    d = load_hand_description(need_shared(HANDS_DIR / hand), options=MESH)
    dump_path = next((HANDS_DIR / hand).glob("*/contact_infos.json"))
    dump = json.loads(dump_path.read_text())
    compared = 0
    for link, v in dump.items():
        ref = np.asarray(v["contact_candidates"], float).reshape(-1, 3)
        if link not in d.tree.link_names or len(ref) == 0:
            continue
        l = d.tree.link_names.index(link)
        ours, on = d.contact_points[d.contact_links == l], d.contact_normals[d.contact_links == l]
        rn = np.asarray(v["normal_candidates"], float)
        tol = 0.007 if len(ref) >= 8 else 0.015
        assert np.linalg.norm(ours.mean(0) - ref.mean(0)) < tol, link
        mo, mr = on.mean(0), rn.mean(0)
        assert mo @ mr / np.linalg.norm(mo) / np.linalg.norm(mr) > 0.9, link
        compared += 1
    assert compared >= 2


@pytest.mark.parametrize("hand", ["allegro", "shadow_hand", "robotiq3"])
def test_collision_grids_match_exact_link_meshes(hand):
    errs = collision_grid_errors(load_hand_description(need_shared(HANDS_DIR / hand), options=MESH), samples_per_link=1500)
    finger = [e for n, e in errs.items() if any(w in n for w in FINGER_WORDS)]
    assert finger, "no finger links found"
    assert max(e.max() for e in finger) <= 0.002  # the bound on finger links
    assert max(e.max() for e in errs.values()) <= 0.002
    assert max(np.percentile(e, 95) for e in errs.values()) <= 0.0005


def test_hand_signed_distance_in_world_matches_exact():
    """Posed hand: the max over links of the grids vs the exact meshes moved by FK."""
    d = load_hand_description(need_shared(HANDS_DIR / "allegro"), options=MESH)
    parsed = parse_urdf(d.source)
    m = HandModel(d, dtype=torch.float64)
    pose = m.canonical_pose(1)
    pose[0, :3] = torch.tensor([0.02, -0.01, 0.03])
    pose[0, 3:9] = torch.tensor([0.8, 0.6, 0.0, -0.6, 0.8, 0.0])
    st = m.forward_kinematics(pose)
    R, t = st.links.rot[0].numpy(), st.links.pos[0].numpy()
    world_parts, samples = [], []
    for l, name in enumerate(d.tree.link_names):
        if d.link_grid[l] < 0:
            continue
        for v, f in _link_parts(parsed.collisions.get(name) or parsed.visuals.get(name)):
            world_parts.append(((v @ R[l].T) + t[l], f))
            p, n = sample_surface(world_parts[-1][0], f, 200, seed=l)
            samples.append(p + n * np.random.default_rng(l).uniform(-0.006, 0.003, (len(p), 1)))
    q = np.concatenate(samples)
    exact, _, _ = exact_signed_distance_union(world_parts, q)
    got = m.signed_distance(st, torch.as_tensor(q)[None])[0].numpy()
    inside = exact > 0
    assert inside.sum() > 100
    assert np.abs(got[inside] - exact[inside]).max() < 0.002
    depth = m.penetration_depth(st, torch.as_tensor(q)[None])[0].numpy()
    assert np.all(depth >= 0) and np.all(depth[exact < -0.003] < 1e-9)


def test_hand_signed_distance_gradient_matches_finite_differences():
    m = HandModel(load_hand_description("allegro"), dtype=torch.float64)
    pose = m.canonical_pose(2)
    pose[:, 2] = -0.02
    st = m.forward_kinematics(pose)
    pts = m.surface_points(st)[:, ::40].detach()
    pts = pts + 0.002 * torch.randn(pts.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def f(p):
        return m.signed_distance(m.forward_kinematics(pose), p)

    assert torch.autograd.gradcheck(f, (pts.clone().requires_grad_(),), eps=1e-7, atol=1e-5)

    def g(pp):
        return m.penetration_depth(m.forward_kinematics(pp), pts).sum()

    assert torch.autograd.gradcheck(g, (pose.clone().requires_grad_(),), eps=1e-7, atol=1e-5)


def test_grasp_types_and_curled_fingers():
    d = load_hand_description("allegro")
    assert set(d.grasp_types) >= {"full", "precision", "pinch", "fingertip"}
    prec = d.grasp_type("precision")
    assert set(prec.links) == {"index_link_3", "middle_link_3", "thumb_link_3"}
    assert prec.curl_joints == [f"ring_joint_{i}" for i in range(4)]
    assert d.grasp_type("pinch").curl_joints == [f"{f}_joint_{i}" for f in ("middle", "ring") for i in range(4)]
    mask = d.candidate_mask("pinch")
    links = {d.tree.link_names[l] for l in d.contact_links[mask]}
    assert links == {"index_link_3", "thumb_link_3"}
    assert d.grasp_type("tips") is d.grasp_type("fingertip")  # reference alias
    with pytest.raises(UnknownNameError, match="no grasp type 'power'"):
        d.grasp_type("power")


def test_description_round_trip(tmp_path):
    d = load_hand_description("allegro")
    d.save(tmp_path / "h")
    e = HandDescription.load(tmp_path / "h")
    assert e.tree.to_dict() == d.tree.to_dict()
    np.testing.assert_array_equal(e.contact_points, d.contact_points)
    for a, b in zip(e.grids, d.grids):
        np.testing.assert_array_equal(a.values, b.values)
    assert load_hand_description(tmp_path / "h").name == "allegro"


@pytest.mark.parametrize("hand", sorted(DOF))
def test_builtin_regeneration_is_deterministic(tmp_path, hand):
    """Running the importer on the shared source reproduces the committed built-in data."""
    src = need_shared(HANDS_DIR / hand)
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "build_builtin_hands.py"
    r = subprocess.run([sys.executable, str(tool), hand, "--source", str(src.parent), "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    new, old = HandDescription.load(tmp_path / hand), HandDescription.load(BUILTIN_DIR / hand)
    assert new.tree.to_dict() == old.tree.to_dict()
    for k in ("contact_points", "contact_normals", "contact_links", "surface_points", "spheres", "canonical_q", "approach_axis", "up_axis"):
        np.testing.assert_array_equal(getattr(new, k), getattr(old, k), err_msg=k)
    assert len(new.grids) == len(old.grids)
    for a, b in zip(new.grids, old.grids):
        np.testing.assert_array_equal(a.values, b.values)
    assert {k: v.links for k, v in new.grasp_types.items()} == {k: v.links for k, v in old.grasp_types.items()}
    assert new.provenance == old.provenance and new.contacts == old.contacts == 12


def test_builtins_listed():
    assert set(DOF) <= set(builtin_hand_names())


def test_unknown_hand_name_is_a_clear_error():
    with pytest.raises(UnknownNameError, match="no hand or file named 'shadowhand'.*allegro"):
        load_hand_description("shadowhand")


def test_urdf_with_missing_mesh_names_link_and_file(tmp_path):
    src = need_shared(HANDS_DIR / "panda")
    dst = tmp_path / "panda"
    shutil.copytree(src, dst)
    (dst / "meshes" / "panda_finger.obj").unlink()
    with pytest.raises(HandLoadError, match=r"panda_leftfinger.*panda_finger\.obj"):
        load_hand_description(dst)


def test_corrupt_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("GRASPFORGE_CACHE_DIR", str(tmp_path / "cache"))
    src = need_shared(HANDS_DIR / "panda")
    a = load_hand_description(src)
    entries = list((tmp_path / "cache" / "hands").iterdir())
    assert len(entries) == 1
    (entries[0] / "geometry.npz").write_bytes(b"garbage")
    b = load_hand_description(src)
    np.testing.assert_array_equal(a.contact_points, b.contact_points)
    HandDescription.load(entries[0])  # rewritten and readable again


def test_fused_kernels_match_torch_path():
    """The numba collision kernels and the fixed-shape torch path (every (point, link) pair, the
    reference of the Triton kernels) agree, values and gradients."""
    from graspforge.backend import use_kernels
    from graspforge.objects import load_object

    m = HandModel(load_hand_description("allegro"), dtype=torch.float64)
    obj_pts = torch.tensor(np.array(load_object("sphere:radius=0.04").surface_points[:600]), dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    pose = m.canonical_pose(5)
    pose[:, 9:] += 0.4 * torch.rand(5, 16, generator=g, dtype=torch.float64)
    pose[:, :3] = -torch.tensor([0.0, 0.06, 0.03], dtype=torch.float64)
    names = m.description.joint_names
    pose[3, 9 + names.index("index_joint_0")] = -0.3
    pose[3, 9 + names.index("middle_joint_0")] = 0.3
    out = {}
    for use in (True, False):
        with use_kernels("numba" if use else "torch"):
            assert m.backend(pose) == ("numba" if use else "torch")
            x = pose.clone().requires_grad_()
            st = m.forward_kinematics(x)
            d = m.signed_distance(st, obj_pts.expand(5, -1, -1))
            s = m.self_penetration(st)
            sd = m.self_penetration_depth(st)
            (m.penetration_depth(st, obj_pts.expand(5, -1, -1)).sum() + 3 * s.sum()).backward()
        out[use] = (d.detach(), s.detach(), sd, x.grad)
    assert out[True][0].max() > 0 and out[True][1].max() > 0  # both terms active
    for a, b in zip(out[True], out[False]):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)
