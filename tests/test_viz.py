"""Pictures: display meshes, the HTML viewer (checked in a real headless Chromium), PNG renders and
contact heatmaps with known answers."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import torch

from graspforge.cli.main import main
from graspforge.io.grasp_set import TERM_KEYS, GraspSet
from graspforge.hands import load_hand_description
from graspforge.objects import load_object
from graspforge.viz.heatmap import contact_frequency, contact_heatmaps
from graspforge.viz.page import write_grasp_page
from graspforge.viz.render import RENDER_CELL, render_grasps
from graspforge.geometry.rotations import quaternion_to_matrix
from graspforge.viz.scene import HandDisplay, VizError, decimate

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def allegro():
    return load_hand_description("allegro")


def grasps_near(desc, obj_spec: str = "box", N: int = 3, offset=(0.0, -0.09, 0.0)) -> GraspSet:
    """Open-hand "grasps" with the root ``offset`` from the object centre (palm towards it)."""
    obj = load_object(obj_spec)
    r = np.random.default_rng(0)
    K = 4
    q = np.tile(desc.canonical_q, (N, 1))
    quat = np.tile([np.cos(np.pi / 4), -np.sin(np.pi / 4), 0.0, 0.0], (N, 1))  # palm (+z) turned to +y, towards the object
    return GraspSet(
        hand=desc.name, joint_names=list(desc.joint_names), grasp_type="full", object_name=obj.name, object_source=obj.source,
        object_hash=obj.content_hash, object_scale=1.0, root_position=np.tile(offset, (N, 1)) + 0.001 * r.normal(size=(N, 3)),
        root_quaternion=quat, joint_positions=q, pregrasp_joint_positions=q, squeeze_joint_positions=q,
        contact_points=0.03 * r.normal(size=(N, K, 3)), contact_normals=np.tile([0.0, 0.0, 1.0], (N, K, 1)),
        contact_links=np.full((N, K), "palm_link"), contact_indices=np.zeros((N, K), np.int64), contact_distance=np.zeros((N, K)),
        energy=r.random(N), terms={k: r.random(N) for k in TERM_KEYS}, qp_value=r.random(N), config_toml="",
        extra={"eval_strict_success": np.array([True, False, True][:N])},
    )


def test_decimate_keeps_the_shape_with_fewer_triangles():
    m = load_object("sphere:radius=0.03").mesh
    V, F = decimate(np.asarray(m.vertices), np.asarray(m.faces), 0.004)
    assert 50 < len(F) < len(m.faces) / 2
    assert not np.any((F[:, 0] == F[:, 1]) | (F[:, 1] == F[:, 2]) | (F[:, 0] == F[:, 2]))
    r = np.linalg.norm(V, axis=1)
    assert np.all(np.abs(r - 0.03) < 0.004)  # every merged vertex stays within a cell of the sphere


def test_posed_hand_follows_the_root_pose(allegro):
    display = HandDisplay.from_description(allegro)
    V0, F0, L0 = display.posed(allegro.canonical_q)
    q = np.array([np.cos(0.4), 0.0, 0.0, np.sin(0.4)])  # 0.8 rad about z
    V1, F1, _ = display.posed(allegro.canonical_q, np.array([0.1, 0.2, 0.3]), q)
    c, s = np.cos(0.8), np.sin(0.8)
    np.testing.assert_allclose(V1, V0 @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + [0.1, 0.2, 0.3], atol=1e-12)
    np.testing.assert_array_equal(F0, F1)
    np.testing.assert_allclose(quaternion_to_matrix(torch.tensor(q)).numpy(), [[c, -s, 0], [s, c, 0], [0, 0, 1]], atol=1e-12)
    assert set(np.unique(L0)) >= {allegro.tree.link_names.index("index_link_3")}


def test_contact_frequency_known_answers(allegro):
    far = grasps_near(allegro, offset=(1.0, 0.0, 0.0))
    freq, n = contact_frequency(allegro, [(far, load_object("box"))])
    assert n == 3 and freq.max() == 0.0  # a metre away: nothing touches
    inside = grasps_near(allegro, "box:extents=0.6", offset=(0.0, 0.0, 0.0))
    freq, n = contact_frequency(allegro, [(inside, load_object("box:extents=0.6"))])
    assert freq.min() == 1.0  # buried in a 60 cm box: every sample counts
    freq, n = contact_frequency(allegro, [(far, load_object("box")), (inside, load_object("box:extents=0.6"))])
    assert n == 6 and np.allclose(freq, 0.5)


def _pixels(png) -> np.ndarray:
    import matplotlib.image as mpimg

    return (mpimg.imread(png)[..., :3] * 255).astype(int)


def _has_colours(img: np.ndarray) -> tuple[int, int]:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    blue = int(((b > r + 40) & (b > g + 15)).sum())  # the hand
    sand = int(((r > b + 30) & (g > b + 15) & (r > 90)).sum())  # the object
    return blue, sand


def test_render_pngs_show_hand_and_object(tmp_path, allegro):
    gs = grasps_near(allegro)
    files = render_grasps(gs, HandDisplay.from_description(allegro, cell=RENDER_CELL), load_object("box"), tmp_path, [0, 2])
    assert [f.name for f in files] == ["box__allegro__full_0000.png", "box__allegro__full_0002.png"]
    blue, sand = _has_colours(_pixels(files[0]))
    assert blue > 2000 and sand > 2000
    with pytest.raises(VizError, match="out of range"):
        render_grasps(gs, HandDisplay.from_description(allegro, cell=RENDER_CELL), load_object("box"), tmp_path, [7])


def test_heatmap_png_per_grasp_type(tmp_path, allegro):
    gs = grasps_near(allegro, offset=(0.0, -0.075, 0.0))
    out = contact_heatmaps(allegro, [(gs, load_object("box"))], tmp_path)
    assert list(out) == ["full"] and out["full"].name == "allegro_contacts_full.png"
    assert _pixels(out["full"]).std() > 5


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt install chromium)")
def test_view_page_renders_in_headless_chromium(tmp_path, allegro):
    gs = grasps_near(allegro)
    page = write_grasp_page(gs, HandDisplay.from_description(allegro), load_object("box"), tmp_path / "page.html")
    html = page.read_text()
    assert "plotly" in html and "https://cdn" not in html.split("<script", 2)[1][:200]  # inlined, works offline
    assert html.count('"label":"') >= 3 or html.count('"label": "') >= 3  # one slider step per grasp
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
                    "--window-size=900,700", "--virtual-time-budget=20000", f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=180)
    blue, sand = _has_colours(_pixels(shot))
    assert blue > 3000, "the hand is not on the page"
    assert sand > 3000, "the object is not on the page"


def test_cli_view_render_heatmap(tmp_path, allegro, capsys):
    gs = grasps_near(allegro)
    f = tmp_path / "g.npz"
    gs.save(f)
    assert main(["view", str(f), "--no-open", "--index", "0", "1"]) == 0
    assert (tmp_path / "g.html").stat().st_size > 100_000
    assert main(["view", str(f), "--no-open", "--index", "5"]) == 1
    assert "out of range" in capsys.readouterr().err
    assert main(["render", str(f), "--out", str(tmp_path / "png"), "--index", "1"]) == 0
    assert [p.name for p in (tmp_path / "png").iterdir()] == ["g_0001.png"]
    assert main(["heatmap", str(f), "--out", str(tmp_path / "heat"), "--successful"]) == 1
    assert "not evaluated" in capsys.readouterr().err
    assert main(["heatmap", str(f), "--out", str(tmp_path / "heat")]) == 0
    assert (tmp_path / "heat" / "allegro_contacts_full.png").is_file()
