"""Datasets at scale: plan (object, hand, grasp type) jobs, run them resumably, keep one index.

Layout of a dataset folder::

    DATASET/dataset.toml     resolved synthesis config + [dataset] settings (fixed at the first run)
    DATASET/grasps/JOB.npz   one grasp file per job (kept grasps, with their evaluation arrays)
    DATASET/jobs/JOB.json    the job's record; written last, so its presence means "done"
    DATASET/index.json, index.csv   one row per finished job (rebuilt from the records)

Every file is written atomically (temporary file, then rename). A job counts as done only when
its record exists and names a grasp file that exists, so a run killed at any moment (Ctrl-C,
kill -9, a full disk) and started again redoes exactly the unfinished jobs.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import re
import socket
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._io import atomic_write_json, atomic_write_text, process_exists, safe_filename, temp_file_is_live
from ..config import EvaluateConfig, dump_toml, load_config, tomllib
from ..hands import load_hand, load_hand_description
from ..io.dataset_index import INDEX_FIELDS, DatasetError, read_dataset_index, read_index, read_record, write_index
from ..objects import load_object
from ..objects.loading import find_mesh_files
from .evaluation import evaluate_grasp_set
from .synthesis import synthesize

__all__ = ["INDEX_FIELDS", "DatasetError", "read_dataset_index", "read_index", "read_record", "write_index"]  # re-exported

BACKENDS = ("local", "ray")


def _safe(s: str) -> str:
    return safe_filename(s, "x")


@dataclass(frozen=True)
class Job:
    """One grasp file: an object (a mesh path or built-in spec), a hand and a grasp type."""

    object: str
    stem: str
    hand: str
    grasp_type: str

    @property
    def id(self) -> str:
        return f"{self.stem}__{_safe(self.hand)}__{_safe(self.grasp_type)}"


@dataclass
class DatasetSettings:
    """What a dataset is made of; stored in ``dataset.toml`` and checked on every rerun."""

    hands: list[str]
    grasp_types: list[str]
    objects: list[str]
    keep: str = "successful"  # or "all"
    evaluate: bool = True
    protocol: str = "strict"
    objects_per_batch: int = 8

    def validate(self) -> "DatasetSettings":
        if not self.hands or not self.grasp_types or not self.objects:
            raise DatasetError("a dataset needs at least one hand, one grasp type and one object")
        if self.keep not in ("successful", "all"):
            raise DatasetError(f"keep must be 'successful' or 'all', not {self.keep!r}")
        if self.keep == "successful" and not self.evaluate:
            raise DatasetError("keeping only successful grasps needs the evaluation (drop --no-evaluate or use --keep all)")
        if self.protocol not in ("strict", "reference"):
            raise DatasetError(f"unknown protocol {self.protocol!r} (strict, reference)")
        if self.objects_per_batch < 1:
            raise DatasetError("objects_per_batch must be >= 1")
        return self


def expand_objects(specs: list[str]) -> list[tuple[str, str]]:
    """(spec, stem) per object: folders become their mesh files (YCB layout understood), files stay,
    anything else is a built-in object spec (``box``, ``sphere:radius=0.03``). Stems are unique."""
    out: list[tuple[str, str]] = []
    for s in specs:
        p = Path(s).expanduser()
        if p.is_dir():
            out += [(str(f.resolve()), f.stem) for f in find_mesh_files(p)]
        elif p.is_file():
            out.append((str(p.resolve()), p.stem))
        else:
            out.append((s, _safe(s)))
    stems = [st for _, st in out]
    dup = {st for st in stems if stems.count(st) > 1}
    if dup:
        out = [(sp, f"{st}-{hashlib.sha256(sp.encode()).hexdigest()[:8]}" if st in dup else st) for sp, st in out]
    seen: dict[str, str] = {}
    uniq = []
    for sp, st in out:
        if st not in seen:
            seen[st] = sp
            uniq.append((sp, st))
    return uniq


def plan_jobs(settings: DatasetSettings) -> list[Job]:
    """Every (hand, grasp type, object) job in a fixed order: the same command plans the same list."""
    objs = expand_objects(settings.objects)
    return [Job(sp, st, h, t) for h in settings.hands for t in settings.grasp_types for sp, st in objs]


def parse_shard(text: str, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """``"i/n"`` -> (i, n): shards count from 0, ``0 <= i < n``. ``"auto"``: from a SLURM job array
    (``SLURM_ARRAY_TASK_ID`` minus ``SLURM_ARRAY_TASK_MIN``, of ``SLURM_ARRAY_TASK_COUNT``), so an
    array numbered 0..n-1 or 1..n both cover every job; (0, 1) outside an array."""
    env = os.environ if environ is None else environ
    if (text or "").strip().lower() == "auto":
        if "SLURM_ARRAY_TASK_ID" not in env:
            return 0, 1
        try:
            tid = int(env["SLURM_ARRAY_TASK_ID"])
            lo = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            count = int(env["SLURM_ARRAY_TASK_COUNT"]) if "SLURM_ARRAY_TASK_COUNT" in env else int(env["SLURM_ARRAY_TASK_MAX"]) - lo + 1
        except (KeyError, ValueError) as e:
            raise DatasetError(f"--shard auto: cannot read the SLURM array variables ({e}); give --shard i/n") from e
        if not 0 <= tid - lo < count:
            raise DatasetError(f"--shard auto: SLURM_ARRAY_TASK_ID {tid} is not in the array's {count} tasks from {lo} "
                               "(a stepped array such as 0-9:2 needs --shard i/n)")
        return tid - lo, count
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or int(m.group(2)) < 1:
        raise DatasetError(f"--shard {text!r}: expected i/n counting from 0 (0 <= i < n, e.g. 0/4 ... 3/4), or auto")
    i, n = int(m.group(1)), int(m.group(2))
    if i >= n:
        raise DatasetError(f"--shard {text!r}: shards count from 0, so the last of {n} is {n - 1}/{n}; "
                           "for a SLURM array numbered from 1 use --shard auto")
    return i, n


def shard_jobs(jobs: list[Job], index: int, count: int) -> list[Job]:
    """Shard ``index`` of ``count``: every count-th job from ``index`` (disjoint, together complete)."""
    return jobs[index::count]


def batches(jobs: list[Job], per_batch: int) -> list[list[Job]]:
    """Jobs of one (hand, type) packed ``per_batch`` objects at a time into one optimisation batch."""
    groups: dict[tuple[str, str], list[Job]] = {}
    for j in jobs:
        groups.setdefault((j.hand, j.grasp_type), []).append(j)
    return [g[i:i + per_batch] for g in groups.values() for i in range(0, len(g), per_batch)]


def record_path(root: Path, job: Job) -> Path:
    return root / "jobs" / f"{job.id}.json"


def grasp_path(root: Path, job: Job) -> Path:
    return root / "grasps" / f"{job.id}.npz"


def job_done(root: Path, job: Job) -> bool:
    rec = read_record(record_path(root, job))
    return rec is not None and (root / rec["file"]).is_file()


#: a claim of another machine (or one whose process cannot be checked) older than this is taken over (s)
STALE_CLAIM_SECONDS = 6 * 3600.0


def claim_path(root: Path, job: Job) -> Path:
    return root / "jobs" / f"{job.id}.claim"


def _claim_is_live(path: Path) -> bool:
    """Whether a claim file belongs to a process still at work: on this machine, its process exists;
    from another machine (a shared file system), it was written less than STALE_CLAIM_SECONDS ago."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        age = time.time() - path.stat().st_mtime
    except (OSError, ValueError):
        return False  # vanished or half-written by a killed process: not live
    if not isinstance(info, dict):
        return False
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        return process_exists(info["pid"])
    return age < STALE_CLAIM_SECONDS


def claim_job(root: Path, job: Job) -> bool:
    """Claim ``job`` for this process before computing it: True when this process may compute it
    (claim made, or a stale claim of a dead process taken over), False when it is done or a live
    process holds it. The claim is an exclusively created file (atomic on local and NFSv3+ file
    systems), so two builds on one folder never compute a job twice."""
    if job_done(root, job):
        return False
    path = claim_path(root, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _claim_is_live(path):
                return False
            try:  # stale: remove it and race for it again (only one creator wins)
                path.unlink()
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(mine)
        return not job_done(root, job)  # finished by another process between the check and the claim
    return False


def release_job(root: Path, job: Job) -> None:
    try:
        claim_path(root, job).unlink()
    except FileNotFoundError:
        pass


def run_batch(root: str, jobs: list[Job], config_toml: str, settings: dict, threads: int = 1, device: str = "cpu") -> list[dict]:
    """Synthesise, evaluate and write the jobs of one batch (same hand and type); returns their records.

    Top-level and driven by plain data, so process pools and Ray can ship it to workers. Each job is
    claimed first (:func:`claim_job`): jobs that another build on the folder holds or finished are
    left out; returns the records of the jobs this call computed.
    """
    torch.set_num_threads(max(1, int(threads)))
    root_p = Path(root)
    # another build on this folder may have taken or finished some of these jobs meanwhile; results
    # do not depend on which jobs share a batch, so the rest is computed as a smaller batch
    jobs = [j for j in jobs if claim_job(root_p, j)]
    if not jobs:
        return []
    try:
        return _run_claimed(root_p, jobs, config_toml, settings, device)
    finally:
        for j in jobs:
            release_job(root_p, j)


def _run_claimed(root_p: Path, jobs: list[Job], config_toml: str, settings: dict, device: str) -> list[dict]:
    cfg = load_config(overrides=tomllib.loads(config_toml))
    cfg.device = device
    hand = load_hand(jobs[0].hand, device=device, self_collision_points_per_link=cfg.energy.self_collision_points)
    objects = [load_object(j.object) for j in jobs]
    t = time.perf_counter()
    res = synthesize(hand, objects, cfg, grasp_type=jobs[0].grasp_type)
    synth_s = (time.perf_counter() - t) / len(jobs)
    records = []
    for job, obj, gs in zip(jobs, objects, res.grasp_sets):
        eval_s, summary = 0.0, {}
        keep = np.ones(len(gs), bool)
        if settings["evaluate"]:
            t = time.perf_counter()
            proto = settings["protocol"]
            result = evaluate_grasp_set(gs, hand.description, obj, EvaluateConfig(), protocols=(proto,), workers=1)
            eval_s = time.perf_counter() - t
            gs.extra.update(result.arrays)
            summary = result.summary[proto]
            if settings["keep"] == "successful":
                keep = np.asarray(result.arrays[f"eval_{proto}_success"], bool)
        kept = gs.select(keep)
        path = grasp_path(root_p, job)
        path.parent.mkdir(parents=True, exist_ok=True)
        kept.save(path)
        rec = {
            "job": job.id, "object": obj.name, "hand": hand.description.name, "type": job.grasp_type,
            "generated": len(gs), "kept": len(kept),
            "success": summary.get("success_rate"), "ugr": summary.get("ugr"), "H": summary.get("joint_entropy"),
            "D_mm": summary.get("D_mm"), "synthesis_seconds": synth_s, "evaluation_seconds": eval_s,
            "file": str(path.relative_to(root_p)), "object_source": job.object, "protocol": settings["protocol"] if settings["evaluate"] else None,
            "computed_by": f"{socket.gethostname()}:{os.getpid()}",
        }
        rp = record_path(root_p, job)
        rp.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(rp, json.loads(json.dumps(rec, default=float)))
        records.append(rec)
        # the index after every finished job, not only per batch: a kill mid-batch leaves it current
        # (it is rebuilt from the job records, so writers racing here cannot lose a job)
        write_index(root_p)
    return records


@dataclass
class BuildReport:
    planned: int
    skipped: int
    finished: int
    seconds: float
    rows: list[dict] = field(default_factory=list)


def _check_settings_file(root: Path, text: str) -> None:
    p = root / "dataset.toml"
    if p.is_file():
        old = p.read_text(encoding="utf-8")
        if old != text:
            raise DatasetError(f"{root} was started with other settings (see {p}); rerun the same command, or build into a new folder")
    else:
        atomic_write_text(p, text)


def build_dataset(root: str | Path, settings: DatasetSettings, config, workers: int = 1, shard: tuple[int, int] = (0, 1),
                  backend: str = "local", address: str | None = None,
                  progress: Callable[[dict], None] | None = None, device: str = "cpu", threads: int | None = None) -> BuildReport:
    """Run every unfinished job of ``settings`` (this shard's share) and return a report.

    ``config`` is the :class:`GenerateConfig` for synthesis (its ``grasps`` is per object). Local
    workers are spawned processes with ``threads`` torch threads each (default ``cores // workers``;
    give it when several builds share a machine); ``backend="ray"``
    runs the same batches as Ray tasks (``address`` of a running cluster, else a local instance).
    ``device`` runs synthesis there (``cuda``); it is not one of the dataset's settings, so a build
    may be resumed on another device. Evaluation always runs on CPU cores.
    """
    settings.validate()
    if backend not in BACKENDS:
        raise DatasetError(f"unknown backend {backend!r} ({', '.join(BACKENDS)})")
    if workers < 1:
        raise DatasetError("workers must be >= 1")
    for h in settings.hands:
        d = load_hand_description(h)
        for t in settings.grasp_types:
            d.grasp_type(t)  # unknown hand or type: fail before any work
    all_jobs = plan_jobs(settings)
    for spec in sorted({j.object for j in all_jobs if not Path(j.object).is_file()}):
        load_object(spec)  # an unknown built-in object fails here, before the folder exists (files load later)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cfg_text = dump_toml(replace(config, device="cpu"))  # the device is where, not what: not a setting
    stored = {k: v for k, v in vars(settings).items()}
    _check_settings_file(root, cfg_text + "\n[dataset]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in stored.items()))
    for sub in ("grasps", "jobs"):  # temporary files of writes a killed run left behind, never a live one's
        for tmp in (root / sub).glob(".*.tmp") if (root / sub).is_dir() else ():
            if not temp_file_is_live(tmp):
                try:
                    tmp.unlink()
                except OSError:
                    pass
    t0 = time.perf_counter()
    jobs = shard_jobs(all_jobs, *shard)
    todo = [j for j in jobs if not job_done(root, j)]
    work = batches(todo, settings.objects_per_batch)
    sett = {"evaluate": settings.evaluate, "protocol": settings.protocol, "keep": settings.keep}
    finished = 0
    if threads is not None and threads < 1:
        raise DatasetError("threads must be >= 1")
    threads = threads or max(1, (os.cpu_count() or 1) // workers)

    def done(records: list[dict]) -> None:  # run_batch rewrote the index after each of its jobs
        nonlocal finished
        finished += len(records)
        if progress is not None:
            for r in records:
                progress(r)

    try:
        if backend == "ray":
            _run_ray(work, str(root), cfg_text, sett, workers, address, done, device)
        elif workers == 1:
            for b in work:
                done(run_batch(str(root), b, cfg_text, sett, threads, device))
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(run_batch, str(root), b, cfg_text, sett, threads, device) for b in work]
                try:
                    for fut in as_completed(futures):
                        done(fut.result())
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        rows = write_index(root)
    return BuildReport(planned=len(jobs), skipped=len(jobs) - len(todo), finished=finished, seconds=time.perf_counter() - t0, rows=rows)


def _run_ray(work, root: str, cfg_text: str, sett: dict, workers: int, address: str | None, done, device: str = "cpu") -> None:
    try:
        import ray  # optional heavy dependency (graspforge[ray]): imported only when asked for
    except ImportError:
        raise DatasetError("--backend ray needs Ray: pip install 'graspforge[ray]'") from None
    started = False
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=1)(run_batch)
        pending = [task.remote(root, b, cfg_text, sett, 1, device) for b in work]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done(ray.get(ready[0]))
    finally:
        if started:
            ray.shutdown()


def dataset_summary(root: str | Path) -> dict:
    """Totals over a dataset's index: jobs, grasps generated and kept, mean success, time."""
    root = Path(root)
    rows = read_dataset_index(root)
    gen = sum(r["generated"] for r in rows)
    kept = sum(r["kept"] for r in rows)
    succ = [r["success"] * r["generated"] for r in rows if r["success"] is not None]
    return {
        "jobs": len(rows), "hands": sorted({r["hand"] for r in rows}), "types": sorted({r["type"] for r in rows}),
        "objects": len({r["object"] for r in rows}), "generated": gen, "kept": kept,
        "success": sum(succ) / max(1, sum(r["generated"] for r in rows if r["success"] is not None)) if succ else None,
        "synthesis_seconds": sum(r["synthesis_seconds"] for r in rows), "evaluation_seconds": sum(r["evaluation_seconds"] for r in rows),
    }
