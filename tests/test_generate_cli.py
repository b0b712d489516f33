"""``graspforge generate`` as a user runs it: outputs, resolved config, resume, errors."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import numpy as np
import pytest

from graspforge.io import GraspSet


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graspforge.cli.main", "--threads", "1", *args], capture_output=True, text=True, timeout=600)


def test_generate_writes_grasp_sets_and_resumes(tmp_path):
    out = tmp_path / "out"
    args = ["generate", "--hand", "allegro", "--object", "box", "sphere:radius=0.03", "--grasps", "3", "--contacts", "4",
            "--iterations", "10", "--seed", "1", "--out", str(out), "--quiet", "--set", "energy.object_points=300"]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert "2 grasp set(s) written" in r.stdout and "E mean" in r.stdout
    files = sorted(out.glob("*.npz"))
    assert [f.name for f in files] == ["box__allegro__full.npz", "sphere_radius_0.03__allegro__full.npz"]
    gs = GraspSet.load(files[0])
    assert len(gs) == 3 and gs.num_contacts == 4 and gs.hand == "allegro" and len(gs.joint_names) == 16
    cfg = tomllib.loads((out / "config.toml").read_text())
    assert cfg["grasps"] == 3 and cfg["optimizer"]["iterations"] == 10 and cfg["energy"]["object_points"] == 300
    # --iterations compresses the schedule (7000 -> 10 steps): periods 50, 30, 600 and the reset stop 1200 scale by 10/7000
    opt = cfg["optimizer"]
    assert (opt["step_decay_every"], opt["temperature_decay_every"], opt["reset_every"], opt["reset_stop_before_end"]) == (1, 1, 1, 2)
    assert tomllib.loads(gs.config_toml) == cfg
    before = {f: f.stat().st_mtime_ns for f in files}
    r2 = run(*args, "--resume")
    assert r2.returncode == 0, r2.stderr
    assert "0 grasp set(s) written" in r2.stdout and "2 already done" in r2.stdout
    assert {f: f.stat().st_mtime_ns for f in files} == before
    # a damaged output is redone on resume
    files[0].write_bytes(b"broken")
    r3 = run(*args, "--resume")
    assert r3.returncode == 0 and "1 grasp set(s) written" in r3.stdout
    assert np.isfinite(GraspSet.load(files[0]).energy).all()


def test_generate_rejects_bad_input(tmp_path, capsys):
    from graspforge.cli.main import main

    def refused(*args: str) -> str:
        """Run in this process (a refusal needs no fresh interpreter); returns stderr."""
        assert main(["generate", *args]) == 1
        return capsys.readouterr().err

    assert "no grasp type 'power'" in refused("--grasp-type", "power", "--iterations", "1", "--out", str(tmp_path))
    err = refused("--object", "no_such_object", "--iterations", "1", "--out", str(tmp_path))
    assert "no_such_object" in err and "Traceback" not in err
    assert "energy.w_pen must be a number" in refused("--set", "energy.w_pen=abc", "--out", str(tmp_path))
    # nonsense is refused before anything is written: no output folder, no config.toml
    broken = tmp_path / "broken_hand.xml"
    broken.write_text("<mujoco><worldbody><body name='palm'>")
    for bad, says in ((["--iterations", "0"], "iterations must be >= 1"), (["--object", "no_such_object"], "no_such_object"),
                      (["--grasp-type", "power"], "no grasp type 'power'"), (["--grasps", "0"], "grasps must be >= 1"),
                      (["--check-rounds", "-1"], "check.rounds must be in [0, 100]"),
                      (["--check-rounds", "1", "--check-hand", str(broken)], "MuJoCo cannot load it")):
        out = tmp_path / f"never_{bad[0].strip('-')}"
        err = refused(*bad, "--out", str(out))
        assert says in err, err
        assert not out.exists(), bad
    # more contacts than the grasp type has candidates: a warning, and the run goes on
    r = run("generate", "--hand", "panda", "--contacts", "40", "--iterations", "2", "--grasps", "2", "--quiet",
            "--set", "energy.object_points=200", "--out", str(tmp_path / "many"))
    assert r.returncode == 0 and "exceeds the 16 contact candidates" in r.stderr, r.stderr
    # an object wider than the hand can reach (a mesh in millimetres read as metres, say): a warning
    r = run("generate", "--object", "box:extents=2.0", "--iterations", "2", "--grasps", "2", "--quiet",
            "--set", "energy.object_points=200", "--out", str(tmp_path / "huge"))
    assert r.returncode == 0 and "2000 mm across at its narrowest" in r.stderr, r.stderr


def test_a_write_that_fails_is_one_named_error_and_a_rerun_completes(tmp_path):
    """A real failing write: the process may not write files over 4 kB (RLIMIT_FSIZE, EFBIG: the
    same path as a full disk, ENOSPC), so config.toml is written and the grasp file is not."""
    import resource

    out = tmp_path / "out"
    args = [sys.executable, "-m", "graspforge.cli.main", "--threads", "1", "generate", "--object", "box", "--grasps", "2",
            "--contacts", "4", "--iterations", "5", "--out", str(out), "--quiet", "--set", "energy.object_points=300"]

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4_000, resource.RLIM_INFINITY))

    r = subprocess.run(args, capture_output=True, text=True, timeout=600, preexec_fn=small_files)
    assert r.returncode == 1, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cannot write" in err[0] and "box__allegro__full.npz" in err[0] and "EFBIG" in err[0], err
    assert not list(out.glob("*.npz")) and not list(out.glob(".*.tmp"))
    r2 = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr
    assert len(GraspSet.load(out / "box__allegro__full.npz")) == 2


def test_progress_in_a_log_is_plain_lines(tmp_path):
    r = run("generate", "--object", "box", "--grasps", "2", "--contacts", "4", "--iterations", "40", "--out", str(tmp_path),
            "--set", "energy.object_points=200")
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stderr.splitlines() if "[full]" in l]
    assert "\r" not in r.stderr and 3 <= len(lines) <= 12, r.stderr
    assert lines[-1].startswith("box [full]: 100% (64/64 it)")


def test_a_checked_run_in_a_log_restarts_its_progress_each_round(tmp_path):
    """``--check-rounds 1`` with plain-line progress: 40 iterations make no grasp that holds, so round 1
    runs, its progress starts over, and every grasp is labelled with its check verdict and round."""
    r = run("generate", "--object", "box", "--grasps", "2", "--contacts", "4", "--iterations", "40", "--out", str(tmp_path),
            "--set", "energy.object_points=200", "--check-rounds", "1")
    assert r.returncode == 0, r.stderr
    assert "round 1 of 1 re-synthesises them" in r.stderr
    assert sum(l.startswith("box [full]: 39% (25/64 it)") for l in r.stderr.splitlines()) == 2, r.stderr
    gs = GraspSet.load(tmp_path / "box__allegro__full.npz")
    assert gs.extra["check_success"].dtype == bool and set(gs.extra["synthesis_round"]) <= {0, 1}


def test_ctrl_c_keeps_finished_outputs_and_resume_continues(tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "out"
    args = [sys.executable, "-m", "graspforge.cli.main", "--threads", "1", "generate", "--object", "box", "sphere",
            "--objects-per-batch", "1", "--grasps", "2", "--contacts", "4", "--iterations", "1500", "--out", str(out),
            "--quiet", "--set", "energy.object_points=200"]
    # a shell starts background jobs with SIGINT ignored, and children inherit that: give the run
    # the disposition of an interactive terminal, where Ctrl-C reaches it
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = out / "box__allegro__full.npz"
    deadline = time.time() + 300
    while not first.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    assert first.exists(), p.communicate()[1]
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    GraspSet.load(first)  # the finished output is whole
    assert not (out / "sphere__allegro__full.npz").exists()
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]  # no half-written file
    r = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "1 grasp set(s) written" in r.stdout and "1 already done" in r.stdout


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 64 kB tmpfs (root only: skips where mounting is not allowed), unmounted afterwards."""
    import os

    mnt = tmp_path / "fs"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root and a kernel that allows it")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_and_a_read_only_disk_are_named_and_a_rerun_completes(small_filesystem):
    """ENOSPC and EROFS for real, on a tmpfs: one line naming the file and the errno, nothing
    half-written, and the same command completes once there is room."""
    fs = small_filesystem
    out = fs / "out"
    args = ["generate", "--object", "box", "--grasps", "2", "--contacts", "4", "--iterations", "5", "--out", str(out),
            "--quiet", "--set", "energy.object_points=300"]
    # leave room for config.toml (one 4 kB page) but not for the grasp file
    filler = fs / "filler"
    filler.write_bytes(b"\0" * (64 - 8) * 1024)
    r = run(*args)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "box__allegro__full.npz" in err[0] and "ENOSPC" in err[0], err
    assert not list(out.glob("*.npz")) and not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    filler.unlink()
    r = run(*args, "--resume")
    assert r.returncode == 0, r.stderr
    assert len(GraspSet.load(out / "box__allegro__full.npz")) == 2
    # read-only: refused with the errno and the path, the finished output untouched
    before = (out / "box__allegro__full.npz").read_bytes()
    assert subprocess.run(["mount", "-o", "remount,ro", str(fs)], capture_output=True).returncode == 0
    try:
        r = run(*args)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(fs)], capture_output=True)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "EROFS" in err[0] and str(out) in err[0], err
    assert (out / "box__allegro__full.npz").read_bytes() == before


EACCES_SCRIPT = """
import os, sys, tempfile
import graspforge.cli.main as m
args = sys.argv[2:]
with tempfile.TemporaryDirectory() as d:  # every lazy import and JIT compile happens here, still as root
    assert m.main(args + ["--out", d]) == 0
os.setegid(65534); os.seteuid(65534)  # then as nobody, who may not write into the root-owned folder
sys.exit(m.main(args + ["--out", sys.argv[1]]))
"""


def test_a_folder_without_permission_is_named_and_nothing_is_written(tmp_path):
    """EACCES for real: the run drops to user nobody after warming up (root would bypass the
    permission check), then may not create its output folder: one named line, exit 1, nothing there."""
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    parent = tmp_path / "locked"
    parent.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    out = parent / "out"
    args = ["--threads", "1", "generate", "--object", "box", "--grasps", "2", "--contacts", "4", "--iterations", "5",
            "--quiet", "--set", "energy.object_points=300"]
    r = subprocess.run([sys.executable, "-c", EACCES_SCRIPT, str(out), *args], capture_output=True, text=True, timeout=600)
    err = [l for l in r.stderr.strip().splitlines() if "error" in l]
    assert r.returncode == 1 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "EACCES" in err[0] and str(out) in err[0] and "--out" in err[0], err
    assert list(parent.iterdir()) == []
