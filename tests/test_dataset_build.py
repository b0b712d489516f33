"""``graspforge dataset build``: job planning and shards, resume after a real kill -9, the index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graspforge.cli.main import main
from graspforge.pipelines.dataset_build import DatasetError, DatasetSettings, Job, batches, parse_shard, plan_jobs, shard_jobs
from graspforge.io.grasp_set import GraspSet

OBJECTS = ["box", "sphere:radius=0.03", "cylinder", "sphere:radius=0.04"]
FAST = ["--hands", "panda", "--grasps-per-object", "4", "--iterations", "10", "--objects-per-batch", "1", "--quiet"]


@settings(max_examples=50, deadline=None)
@given(n_jobs=st.integers(0, 40), n=st.integers(1, 7))
def test_shards_are_a_disjoint_complete_partition(n_jobs, n):
    jobs = [Job(f"o{k}", f"o{k}", "h", "full") for k in range(n_jobs)]
    parts = [shard_jobs(jobs, i, n) for i in range(n)]
    ids = [j.id for p in parts for j in p]
    assert sorted(ids) == sorted(j.id for j in jobs) and len(ids) == len(set(ids))


def test_parse_shard_and_plan():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(DatasetError):
            parse_shard(bad)
    with pytest.raises(DatasetError, match="last of 2 is 1/2"):
        parse_shard("2/2")
    # SLURM arrays numbered from 0 or from 1: the same shares
    assert parse_shard("auto", {}) == (0, 1)
    for first in (0, 1):
        got = [parse_shard("auto", {"SLURM_ARRAY_TASK_ID": str(first + k), "SLURM_ARRAY_TASK_MIN": str(first),
                                    "SLURM_ARRAY_TASK_COUNT": "3"}) for k in range(3)]
        assert got == [(0, 3), (1, 3), (2, 3)]
    assert parse_shard("auto", {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_MAX": "7"}) == (1, 4)
    with pytest.raises(DatasetError, match="SLURM"):
        parse_shard("auto", {"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"})
    with pytest.raises(DatasetError, match="not in the array"):
        parse_shard("auto", {"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "4"})
    s = DatasetSettings(hands=["panda", "allegro"], grasp_types=["full", "pinch"], objects=OBJECTS)
    jobs = plan_jobs(s)
    assert len(jobs) == 16 and len({j.id for j in jobs}) == 16
    assert plan_jobs(s) == jobs  # the same command plans the same list
    b = batches(jobs, 3)
    assert all(len({(j.hand, j.grasp_type) for j in g}) == 1 and len(g) <= 3 for g in b)
    assert sorted(j.id for g in b for j in g) == sorted(j.id for j in jobs)


def _build(out, *extra):
    return main(["dataset", "build", "--objects", *OBJECTS, "--out", str(out), *FAST, *extra])


def test_build_resume_index_and_settings_check(tmp_path, capsys):
    out = tmp_path / "ds"
    assert _build(out, "--keep", "all", "--shard", "0/2") == 0
    rows = json.loads((out / "index.json").read_text())
    assert len(rows) == 2  # shard 0 of 2
    assert _build(out, "--keep", "all", "--shard", "1/2") == 0
    rows = json.loads((out / "index.json").read_text())
    assert sorted(r["object"] for r in rows) == sorted(["box", "sphere", "cylinder", "sphere"])
    for r in rows:
        gs = GraspSet.load(out / r["file"])
        assert len(gs) == r["kept"] == r["generated"] == 4  # --keep all
        assert "eval_strict_success" in gs.extra
        assert 0.0 <= r["success"] <= 1.0
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "grasps").iterdir()}
    capsys.readouterr()
    assert _build(out, "--keep", "all") == 0
    assert "4 already done, 0 finished now" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (out / "grasps").iterdir()} == mtimes  # nothing redone
    assert _build(out, "--keep", "successful") == 1  # other settings, same folder
    assert "other settings" in capsys.readouterr().err
    index_mtime = (out / "index.json").stat().st_mtime_ns
    assert main(["dataset", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["jobs"] == 4 and info["generated"] == 16
    assert (out / "index.json").stat().st_mtime_ns == index_mtime  # info reads only (read-only datasets work)


def test_keep_successful_writes_only_held_grasps(tmp_path):
    out = tmp_path / "ds"
    assert main(["dataset", "build", "--objects", "sphere:radius=0.03", "--out", str(out), *FAST]) == 0
    (row,) = json.loads((out / "index.json").read_text())
    gs = GraspSet.load(out / row["file"])
    assert len(gs) == row["kept"] == round(row["success"] * row["generated"])
    assert all(gs.extra["eval_strict_success"])


def test_unknown_hand_or_type_fails_before_any_work(tmp_path, capsys):
    assert main(["dataset", "build", "--objects", "box", "--out", str(tmp_path / "a"), *FAST[2:], "--hands", "no_such_hand"]) == 1
    assert main(["dataset", "build", "--objects", "box", "--out", str(tmp_path / "b"), *FAST, "--grasp-types", "pinch"]) == 1
    assert "pinch" in capsys.readouterr().err
    assert not (tmp_path / "b" / "grasps").exists()


def test_kill_minus_9_then_resume(tmp_path):
    """A real run killed with SIGKILL after its first job: the rerun finishes the rest, redoes
    nothing, and leaves no partial or temporary file."""
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "graspforge.cli.main", "dataset", "build", "--objects", *OBJECTS, "--out", str(out), *FAST, "--keep", "all"]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline and not any((out / "jobs").glob("*.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p.name for p in (out / "jobs").glob("*.json")}
    assert 1 <= len(first) < 4, "the run should have been killed between jobs"
    stamps = {n: (out / "jobs" / n).stat().st_mtime_ns for n in first}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{len(first)} already done" in r.stdout
    rows = json.loads((out / "index.json").read_text())
    assert len(rows) == 4 and all((out / row["file"]).is_file() for row in rows)
    assert {n: (out / "jobs" / n).stat().st_mtime_ns for n in first} == stamps
    assert not list(out.rglob("*.tmp"))


def test_process_pool_gives_the_same_files(tmp_path):
    import numpy as np

    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["dataset", "build", "--objects", *OBJECTS[:2], "--out", str(a), *FAST, "--keep", "all"]) == 0
    assert main(["dataset", "build", "--objects", *OBJECTS[:2], "--out", str(b), *FAST, "--keep", "all", "--workers", "2"]) == 0
    for f in sorted((a / "grasps").iterdir()):
        ga, gb = GraspSet.load(f), GraspSet.load(b / "grasps" / f.name)
        np.testing.assert_array_equal(ga.joint_positions, gb.joint_positions)
        np.testing.assert_array_equal(ga.extra["eval_strict_success"], gb.extra["eval_strict_success"])


def test_ray_backend_matches_local(tmp_path):
    """Runs where the optional extra is installed (pip install 'graspforge[ray]')."""
    pytest.importorskip("ray")
    import numpy as np

    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["dataset", "build", "--objects", *OBJECTS[:2], "--out", str(a), *FAST, "--keep", "all"]) == 0
    assert main(["dataset", "build", "--objects", *OBJECTS[:2], "--out", str(b), *FAST, "--keep", "all", "--backend", "ray", "--workers", "2"]) == 0
    assert json.loads((b / "index.json").read_text()) and len(list((b / "grasps").iterdir())) == 2
    for f in sorted((a / "grasps").iterdir()):
        np.testing.assert_array_equal(GraspSet.load(f).joint_positions, GraspSet.load(b / "grasps" / f.name).joint_positions)


def test_grasp_files_do_not_depend_on_batching(tmp_path):
    """Each job draws its own random numbers (seed, hand, type, object, grasp index) and nothing in a
    job depends on the other jobs of its optimisation batch: one object per batch or three give the
    same grasp files, bit for bit (CPU kernels)."""
    import numpy as np

    common = ["dataset", "build", "--objects", *OBJECTS[:3], "--hands", "panda", "--grasps-per-object", "3", "--iterations", "12",
              "--keep", "all", "--no-evaluate", "--quiet"]
    assert main(common + ["--out", str(tmp_path / "one"), "--objects-per-batch", "1"]) == 0
    assert main(common + ["--out", str(tmp_path / "three"), "--objects-per-batch", "3"]) == 0
    rows = sorted(json.loads((tmp_path / "one" / "index.json").read_text()), key=lambda r: r["job"])
    assert len(rows) == 3
    for r in rows:
        a, b = GraspSet.load(tmp_path / "one" / r["file"]), GraspSet.load(tmp_path / "three" / r["file"])
        for name in ("root_position", "root_quaternion", "joint_positions", "squeeze_joint_positions", "contact_indices", "energy"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"{r['job']}: {name}")


def test_a_build_killed_before_its_first_job_is_still_a_dataset(tmp_path):
    from graspforge.pipelines.dataset_build import read_dataset_index

    with pytest.raises(DatasetError, match="not a graspforge dataset"):
        read_dataset_index(tmp_path)
    (tmp_path / "dataset.toml").write_text("[dataset]\n")
    assert read_dataset_index(tmp_path) == []


def test_claims_stale_and_live(tmp_path):
    import json
    import os
    import socket
    import subprocess
    import sys

    from graspforge.pipelines.dataset_build import claim_job, claim_path, release_job

    job = plan_jobs(DatasetSettings(hands=["panda"], grasp_types=["full"], objects=["box"]))[0]
    assert claim_job(tmp_path, job)  # free: claimed
    assert not claim_job(tmp_path, job)  # held (by this process): not claimed again
    p = claim_path(tmp_path, job)
    p.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "time": 0}))
    assert not claim_job(tmp_path, job)  # a live process of this machine holds it
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    p.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "time": 0}))
    assert claim_job(tmp_path, job)  # a dead process's claim is taken over
    assert json.loads(p.read_text())["pid"] == os.getpid()
    p.write_text(json.dumps({"host": "another-machine", "pid": 1, "time": 0}))
    assert not claim_job(tmp_path, job)  # another machine's recent claim is respected
    os.utime(p, (0, 0))
    assert claim_job(tmp_path, job)  # ... until it is older than STALE_CLAIM_SECONDS
    release_job(tmp_path, job)
    assert not p.exists()


def test_two_builds_on_one_folder_compute_each_job_once(tmp_path):
    """Two `dataset build` processes started together on one folder: every job is computed by exactly
    one of them, and together they finish the dataset."""
    import re
    import subprocess
    import sys

    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "graspforge.cli.main", "--threads", "1", "dataset", "build", "--out", str(out), "--hands", "panda",
           "--objects", "box", "sphere", "cylinder", "capsule", "--grasps-per-object", "2", "--iterations", "30",
           "--objects-per-batch", "1", "--no-evaluate", "--keep", "all", "--quiet", "--set", "energy.object_points=200"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    finished = [int(re.search(r"(\d+) finished now", o).group(1)) for o, _ in outs]
    assert sum(finished) == 4, outs  # each job once
    import json

    recs = [json.loads(p.read_text()) for p in (out / "jobs").glob("*.json")]
    assert len(recs) == 4 and len(list((out / "grasps").glob("*.npz"))) == 4
    assert not list((out / "jobs").glob("*.claim")) and not list(out.rglob(".*.tmp"))
    assert len({r["computed_by"] for r in recs}) >= 1


def test_the_same_dataset_however_it_was_made(tmp_path):
    """One uninterrupted build, and the same settings built in other batches, in shards, with two
    workers, and interrupted (a shard, then a resume): the grasp files are identical bit for bit."""
    import subprocess
    import sys

    import numpy as np

    from graspforge.io import GraspSet

    base = [sys.executable, "-m", "graspforge.cli.main", "--threads", "1", "dataset", "build", "--hands", "panda",
            "--objects", "box", "sphere", "cylinder", "--grasps-per-object", "3", "--iterations", "10", "--no-evaluate",
            "--keep", "all", "--quiet", "--set", "energy.object_points=200"]

    def build(name, *runs):
        out = tmp_path / name
        for extra in runs:
            r = subprocess.run(base + ["--out", str(out), *extra], capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, r.stderr
        return {p.name: GraspSet.load(p) for p in sorted((out / "grasps").glob("*.npz"))}

    ref = build("ref", ["--objects-per-batch", "3"])
    variants = {
        "one object per batch": build("single", ["--objects-per-batch", "1"]),
        "shards 0/2, 1/2": build("shards", ["--shard", "0/2"], ["--shard", "1/2"]),
        "two workers": build("workers", ["--objects-per-batch", "1", "--workers", "2"]),
        # a build stopped after one job, then resumed (objects_per_batch is a setting of the folder)
        "interrupted, resumed": build("resumed", ["--objects-per-batch", "3", "--shard", "1/3"], ["--objects-per-batch", "3"]),
    }
    assert len(ref) == 3
    for how, got in variants.items():
        assert got.keys() == ref.keys(), how
        for name, gs in got.items():
            for field in ("root_position", "root_quaternion", "joint_positions", "squeeze_joint_positions", "contact_indices", "energy"):
                assert np.array_equal(getattr(gs, field), getattr(ref[name], field)), (how, name, field)


def test_a_bad_object_is_refused_before_the_folder_exists(tmp_path):
    from graspforge.config import load_config
    from graspforge.pipelines.dataset_build import build_dataset
    from graspforge.errors import UnknownNameError

    out = tmp_path / "ds"
    with pytest.raises(UnknownNameError, match="no_such_thing"):
        build_dataset(out, DatasetSettings(hands=["panda"], grasp_types=["full"], objects=["box", "no_such_thing"], evaluate=False, keep="all"),
                      load_config(overrides={"optimizer.iterations": 1}))
    assert not out.exists()
