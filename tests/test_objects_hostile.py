"""Hostile and corrupted mesh files (property-based): every file either loads as a valid object or
raises MeshLoadError naming it -- never another exception, never a hang."""

from __future__ import annotations

import contextlib
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graspforge.errors import MeshLoadError
from graspforge.geometry.exact import winding_number
from graspforge.objects import ObjectModel, load_object
from graspforge.objects.loading import MAX_COORDINATE

#: Seconds one load may take before it counts as a hang.
HANG_SECONDS = 20

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI failures reproduce
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SUFFIXES = [".obj", ".stl", ".ply", ".off", ".glb", ".gltf", ".txt", ""]


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` can swallow it."""


@contextlib.contextmanager
def time_limit(seconds: int):
    def fire(signum, frame):
        raise Hang(f"load took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_outcome(path: Path) -> ObjectModel | None:
    """Load ``path``; return the object if valid, None if refused with a MeshLoadError naming it."""
    try:
        with time_limit(HANG_SECONDS), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # millimetre guesses, parser chatter
            obj = load_object(path)
    except MeshLoadError as exc:
        assert str(path) in str(exc), f"error does not name the file: {exc}"
        return None
    v, f = obj.vertices, obj.faces
    assert v.ndim == 2 and v.shape[1] == 3 and f.ndim == 2 and f.shape[1] == 3 and len(f) > 0
    assert np.all(np.isfinite(v)) and np.abs(v).max() <= MAX_COORDINATE
    assert f.min() >= 0 and f.max() < len(v)
    assert len(obj.content_hash) == 64
    return obj


def _valid_files() -> dict[str, bytes]:
    """Small valid meshes in every format (a box and a coarse sphere)."""
    box = trimesh.creation.box(extents=(0.05, 0.06, 0.07))
    ball = trimesh.creation.icosphere(subdivisions=1, radius=0.03)
    out = {}
    for name, mesh in (("box", box), ("ball", ball)):
        for file_type in ("obj", "stl", "stl_ascii", "ply", "off", "glb"):
            data = mesh.export(file_type=file_type)
            out[f"{name}.{file_type}"] = data.encode() if isinstance(data, str) else bytes(data)
        ply_ascii = mesh.export(file_type="ply", encoding="ascii")
        out[f"{name}.ply_ascii"] = ply_ascii if isinstance(ply_ascii, bytes) else ply_ascii.encode()
    return out


VALID = _valid_files()


def _suffix_of(key: str) -> str:
    return "." + key.split(".", 1)[1].split("_", 1)[0]


@pytest.fixture
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# -- the valid files load, under any name -------------------------------------------------------

@pytest.mark.parametrize("key", sorted(VALID))
def test_valid_files_load(tmp_path, key):
    obj = check_outcome(_write(tmp_path, "mesh" + _suffix_of(key), VALID[key]))
    assert obj is not None and obj.mesh.is_watertight and obj.mesh.volume > 0


@SETTINGS
@given(key=st.sampled_from(sorted(VALID)), suffix=st.sampled_from(SUFFIXES))
def test_wrong_extension_still_loads(workdir, key, suffix):
    # content decides when the suffix lies: OBJ text named .stl, binary STL named .ply, ...
    obj = check_outcome(_write(workdir, f"mislabelled{suffix}", VALID[key]))
    assert obj is not None
    reference = load_object(_write(workdir, "reference" + _suffix_of(key), VALID[key]))
    assert obj.mesh.volume == pytest.approx(reference.mesh.volume, rel=1e-6)


# -- garbage ------------------------------------------------------------------------------------

@SETTINGS
@given(data=st.binary(min_size=0, max_size=3000), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(workdir, data, suffix):
    check_outcome(_write(workdir, f"random{suffix}", data))


@SETTINGS
@given(key=st.sampled_from(sorted(VALID)), fraction=st.floats(0.0, 1.0))
def test_truncated_files(workdir, key, fraction):
    data = VALID[key]
    check_outcome(_write(workdir, "truncated" + _suffix_of(key), data[: int(len(data) * fraction)]))


@SETTINGS
@given(
    key=st.sampled_from(sorted(VALID)),
    edits=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=20),
)
def test_corrupted_bytes(workdir, key, edits):
    data = bytearray(VALID[key])
    for where, value in edits:
        data[int(where * len(data))] = value
    check_outcome(_write(workdir, "corrupted" + _suffix_of(key), bytes(data)))


# -- structurally hostile meshes ----------------------------------------------------------------

coordinate = st.one_of(
    st.floats(-0.1, 0.1),
    st.floats(allow_nan=True, allow_infinity=True),  # NaN, inf, 1e308, subnormals
    st.sampled_from([0.0, 1e-300, -1e-300, 1e30, -1e30, 1e6]),
)


@SETTINGS
@given(
    vertices=st.lists(st.tuples(coordinate, coordinate, coordinate), min_size=0, max_size=12),
    faces=st.lists(st.tuples(st.integers(-14, 14), st.integers(-14, 14), st.integers(-14, 14)), min_size=0, max_size=20),
    extra=st.sampled_from(["", "vt 0 0\n", "f 1/1/1 2//2 3\n", "f 1 2\n", "f 1 2 3 4 5\n", "v 1 2\n", "mtllib x.mtl\n"]),
)
def test_hostile_obj_text(workdir, vertices, faces, extra):
    # OBJ indices are 1-based; 0 is invalid, negatives count back from the last vertex
    lines = [f"v {x!r} {y!r} {z!r}" for x, y, z in vertices] + [f"f {a} {b} {c}" for a, b, c in faces]
    check_outcome(_write(workdir, "hostile.obj", ("\n".join(lines) + "\n" + extra).encode()))


@SETTINGS
@given(
    scale=st.sampled_from([1e-12, 1e-6, 1.0, 1e3, 1e5, 1e12, 1e300]),
    offset=st.sampled_from([0.0, 1e3, 1e8, -1e15]),
    suffix=st.sampled_from([".obj", ".stl", ".ply", ".off"]),
)
def test_tiny_huge_and_far_away_coordinates(workdir, scale, offset, suffix):
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    with np.errstate(over="ignore", invalid="ignore"):
        mesh = trimesh.Trimesh(box.vertices * scale + offset, box.faces, process=False)
    obj = check_outcome(_write(workdir, f"scaled{suffix}", _export(mesh, suffix)))
    if obj is not None:
        assert 0 < obj.extents.max() <= 3.0


def _export(mesh: trimesh.Trimesh, suffix: str) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = mesh.export(file_type=suffix.lstrip("."))
    return data.encode() if isinstance(data, str) else bytes(data)


@SETTINGS
@given(
    n_vertices=st.integers(-5, 10**12),
    n_faces=st.integers(-5, 10**12),
    body=st.binary(max_size=200),
    encoding=st.sampled_from(["ascii", "binary_little_endian", "binary_big_endian"]),
)
def test_lying_ply_headers(workdir, n_vertices, n_faces, body, encoding):
    # a header that promises far more (or fewer) elements than the file holds
    header = (
        f"ply\nformat {encoding} 1.0\nelement vertex {n_vertices}\nproperty float x\nproperty float y\n"
        f"property float z\nelement face {n_faces}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    check_outcome(_write(workdir, "lying.ply", header.encode() + body))


@SETTINGS
@given(n_faces=st.integers(0, 2**32 - 1), body=st.binary(max_size=400))
def test_lying_binary_stl_counts(workdir, n_faces, body):
    data = b"\0" * 80 + int(n_faces).to_bytes(4, "little") + body
    check_outcome(_write(workdir, "lying.stl", data))


@SETTINGS
@given(text=st.text(alphabet=st.characters(codec="ascii"), max_size=400))
def test_hostile_off_and_gltf_text(workdir, text):
    check_outcome(_write(workdir, "hostile.off", ("OFF\n" + text).encode()))
    check_outcome(_write(workdir, "hostile.gltf", ('{"asset": {"version": "2.0"}, ' + text).encode()))


# -- damage that cleaning must undo, and damage it may refuse ----------------------------------

SOLIDS = {
    "box": trimesh.creation.box(extents=(0.05, 0.06, 0.07)),
    "ball": trimesh.creation.icosphere(subdivisions=2, radius=0.03),
    "torus": trimesh.creation.torus(0.04, 0.012, major_sections=24, minor_sections=12),
}
INSIDE = {"box": np.zeros(3), "ball": np.zeros(3), "torus": np.array([0.04, 0.0, 0.0])}


@SETTINGS
@given(
    name=st.sampled_from(sorted(SOLIDS)),
    soup=st.booleans(),
    flip_all=st.booleans(),
    flip=st.lists(st.integers(0, 10**6), max_size=8),
    doubled=st.lists(st.integers(0, 10**6), max_size=8),
    doubled_reversed=st.lists(st.integers(0, 10**6), max_size=8),
    degenerate=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_repairable_damage_gives_back_the_solid(name, soup, flip_all, flip, doubled, doubled_reversed, degenerate, seed):
    mesh = SOLIDS[name]
    v, f = mesh.vertices.copy(), mesh.faces.copy()
    n = len(f)
    f[[i % n for i in flip]] = f[[i % n for i in flip]][:, ::-1]  # inconsistent winding
    if flip_all:
        f = f[:, ::-1]  # inside out
    f = np.concatenate([f, f[[i % n for i in doubled]], f[[i % n for i in doubled_reversed]][:, ::-1]])
    f = np.concatenate([f, np.repeat(f[:degenerate, :1], 3, axis=1)])
    f = np.random.default_rng(seed).permutation(f)
    if soup:  # every face with its own vertices, as STL stores them
        v, f = v[f].reshape(-1, 3), np.arange(3 * len(f)).reshape(-1, 3)
    obj = ObjectModel.from_arrays(v, f, name="damaged")
    assert obj.mesh.is_watertight
    assert obj.mesh.volume == pytest.approx(mesh.volume, rel=1e-9)


@SETTINGS
@given(
    name=st.sampled_from(sorted(SOLIDS)),
    removed=st.lists(st.integers(0, 10**6), min_size=1, max_size=60),
    junk=st.lists(st.tuples(*[st.floats(-0.05, 0.05)] * 9), max_size=5),
)
def test_holes_and_junk_triangles(name, removed, junk):
    mesh = SOLIDS[name]
    keep = np.ones(len(mesh.faces), bool)
    keep[[i % len(keep) for i in removed]] = False
    v = np.concatenate([mesh.vertices, np.asarray(junk, float).reshape(-1, 3)])
    f = np.concatenate([mesh.faces[keep], len(mesh.vertices) + np.arange(3 * len(junk)).reshape(-1, 3)])
    try:
        with time_limit(HANG_SECONDS):
            obj = ObjectModel.from_arrays(v, f, name="holey")
    except MeshLoadError as exc:
        assert "holey" in str(exc)
        return
    # accepted: few enough holes that the inside is still clear where the solid was
    probes = INSIDE[name] + np.random.default_rng(0).uniform(-0.004, 0.004, size=(20, 3))
    assert np.mean(winding_number(obj.vertices, obj.faces, probes) > 0.5) > 0.5


def test_not_a_file(tmp_path):
    (tmp_path / "folder.obj").mkdir()
    with pytest.raises(MeshLoadError, match="folder.obj"):
        load_object(tmp_path / "folder.obj")
    (tmp_path / "link.obj").symlink_to(tmp_path / "nowhere.obj")
    with pytest.raises(MeshLoadError, match="link.obj"):
        load_object(tmp_path / "link.obj")
