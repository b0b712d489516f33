"""GPU check (issue 16), run by ``bench/gpu_check.sh`` on a CUDA machine; writes one JSON file.

Stages, each guarded (a failing stage is recorded and the next one runs) and time-limited:

1. ``env``: torch / CUDA / Triton versions, the GPU, the kernel backend chosen for CUDA.
2. ``tests``: the CUDA tests (``pytest -m cuda``).
3. ``timing``: ms per optimiser iteration (Allegro, 12 contacts, 2500 object points, GraspQP with
   E_hpen, MALA*) for several batch sizes, CUDA graph on, peak GPU memory; one eager batch size for
   comparison; kernel launches and host syncs of one eager step (torch profiler).
4. ``full``: ``graspforge generate --device cuda`` on 8 objects x 1024 grasps at the default schedule
   (7000 + 4200 steps), as a user runs it; wall time and synthesised grasps per second.
5. ``quality``: a small set (4 objects x 32 grasps, default schedule) synthesised on CUDA and evaluated
   on the CPU cores (strict protocol); its grasp files are packed for a CPU-side comparison.

    python bench/gpu_check.py --out OUT [--objects DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
OUT: Path = Path("gpu_check")
DEVICE = "cuda"


def save() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "gpu_check.json").write_text(json.dumps(RESULTS, indent=1, default=str))


def stage(name: str):
    def wrap(fn):
        def run(*a, **k):
            t = time.perf_counter()
            print(f"== {name}", flush=True)
            try:
                RESULTS[name] = fn(*a, **k)
            except Exception as e:  # noqa: BLE001 - recorded, the next stage runs
                RESULTS[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
                print(RESULTS[name]["traceback"], flush=True)
            RESULTS.setdefault("stage_seconds", {})[name] = round(time.perf_counter() - t, 1)
            save()
            print(json.dumps(RESULTS[name], default=str)[:1500], flush=True)
        return run
    return wrap


def cli(*args: str, timeout: float) -> dict:
    """Run ``graspforge ARGS`` in a subprocess; wall time, return code and the output's tail."""
    env = dict(os.environ)
    t = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "graspforge.cli.main", *args], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=REPO)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", ((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""))
    return {"rc": rc, "seconds": round(time.perf_counter() - t, 1), "tail": out[-2500:]}


def objects_list(folder: str | None, n: int) -> list[str]:
    if folder and Path(folder).is_dir():
        found = sorted(str(p) for p in Path(folder).iterdir() if p.is_dir())
        if len(found) >= n:
            return found[:n]
    builtin = ["box", "cylinder", "sphere", "capsule", "torus", "mug", "sphere:radius=0.03", "box:size=0.05,0.08,0.12"]
    return builtin[:n]


@stage("env")
def env_stage(objects: list[str]) -> dict:
    import torch

    from graspforge.backend import HAVE_NUMBA, HAVE_TRITON, kernel_backend
    from graspforge.objects import load_objects

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
            "numba": HAVE_NUMBA, "triton": HAVE_TRITON, "cpu_count": os.cpu_count()}
    try:
        import triton

        info["triton_version"] = triton.__version__
    except Exception:  # noqa: BLE001
        pass
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda,
                    backend_cuda=kernel_backend("cuda"))
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    except Exception:  # noqa: BLE001
        pass
    t = time.perf_counter()
    objs = load_objects(objects)  # builds and caches their distance grids once, before any timing
    for o in objs:
        o.sdf, o.surface_points, o.convex_hull  # noqa: B018
    info["objects"] = [o.name for o in objs]
    info["object_load_seconds"] = round(time.perf_counter() - t, 1)
    return info


@stage("tests")
def tests_stage(timeout: float) -> dict:
    t = time.perf_counter()
    try:
        # -o addopts: one process (one GPU; the bare image may lack pytest-xdist, which the project's -n needs)
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider", "-m", "cuda", "-rs",
                            "tests/test_cuda.py", "tests/test_qp_fixed.py"],
                           capture_output=True, text=True, timeout=timeout, cwd=REPO)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", str(e.stdout)[-3000:]
    return {"rc": rc, "seconds": round(time.perf_counter() - t, 1), "tail": out[-3000:]}


def _sync() -> None:
    import torch

    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def _time_steps(batch: int, objects, steps: int, graph: bool) -> dict:
    import torch

    from graspforge.config import load_config
    from graspforge.hands import load_hand
    from graspforge.pipelines.synthesis import make_optimizer

    n_obj = len(objects)
    cfg = load_config(overrides={"grasps": max(1, batch // n_obj), "contacts": 12, "optimizer.cuda_graph": graph})
    hand = load_hand("allegro", device=DEVICE)
    cuda = DEVICE.startswith("cuda")
    _sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    opt, energy, _ = make_optimizer(hand, objects, cfg)
    for _ in range(6):  # warm-up: Triton compiles, the graph is captured at the 4th step
        opt.step()
    _sync()
    setup = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        opt.step()
    _sync()
    ms = (time.perf_counter() - t) / steps * 1e3
    st = opt.sync()
    return {"batch": opt.pose.shape[0], "ms_per_iteration": round(ms, 3), "graph": st.graph, "setup_seconds": round(setup, 1),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "accept_rate": round(st.accept_rate, 3), "finite": bool(torch.isfinite(opt.energy).all())}


@stage("timing")
def timing_stage(objects: list[str], batches: list[int], steps: int) -> dict:
    import torch

    from graspforge.config import load_config
    from graspforge.hands import load_hand
    from graspforge.objects import load_objects
    from graspforge.pipelines.synthesis import make_optimizer

    objs = load_objects(objects)
    out: dict = {"rows": []}
    for B in batches:
        try:
            out["rows"].append(_time_steps(B, objs, steps, graph=True))
        except Exception as e:  # noqa: BLE001
            out["rows"].append({"batch": B, "error": f"{type(e).__name__}: {e}"[:500]})
        print(out["rows"][-1], flush=True)
        if DEVICE.startswith("cuda"):
            torch.cuda.empty_cache()
    try:
        out["eager_1024"] = _time_steps(batches[0], objs, max(5, steps // 3), graph=False)
    except Exception as e:  # noqa: BLE001
        out["eager_1024"] = {"error": f"{type(e).__name__}: {e}"[:500]}
    # kernels and host syncs of one eager step at B = 1024
    try:
        cfg = load_config(overrides={"grasps": max(1, batches[0] // len(objs)), "contacts": 12, "optimizer.cuda_graph": False})
        opt, _, _ = make_optimizer(load_hand("allegro", device=DEVICE), objs, cfg)
        opt.step()
        _sync()
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEVICE.startswith("cuda") else [])
        with profile(activities=acts) as prof:
            opt._step_body()
            _sync()
        ev = prof.events()
        names = [e.name for e in ev]
        out["profile_step"] = {"batch": opt.pose.shape[0],
            "aten_ops": sum(1 for n in names if n.startswith("aten::")),
            "local_scalar_dense": names.count("aten::_local_scalar_dense"),
            "nonzero": names.count("aten::nonzero"),
            "cuda_kernels": sum(1 for e in ev if getattr(e, "device_type", None) is not None and str(e.device_type).endswith("CUDA")),
        }
    except Exception as e:  # noqa: BLE001
        out["profile_step"] = {"batch": opt.pose.shape[0],"error": f"{type(e).__name__}: {e}"[:500]}
    return out


def _pack(folder: Path, name: str) -> str:
    dest = OUT / name
    with tarfile.open(dest, "w:gz") as tar:
        for f in sorted(folder.glob("*.npz")):
            tar.add(f, arcname=f.name)
    return str(dest)


def _summary_rows(tail: str) -> list[str]:
    return [line for line in tail.splitlines() if "__" not in line and line.strip()][-14:]


@stage("full")
def full_stage(objects: list[str], grasps: int, timeout: float, work: Path, extra: list[str]) -> dict:
    folder = work / "full"
    r = cli("generate", "--device", DEVICE, "--hand", "allegro", "--object", *objects, "--grasps", str(grasps), *extra,
            "--objects-per-batch", str(len(objects)), "--out", str(folder), "--quiet", timeout=timeout)
    total = grasps * len(objects)
    r["grasps"] = total
    r["grasps_per_second_wall"] = round(total / r["seconds"], 1) if r["rc"] == 0 else None
    # the synthesis time alone, from the grasp files (each records its batch's seconds in the summary)
    r["summary"] = _summary_rows(r.pop("tail"))
    try:  # the 's' column: synthesis seconds per object (the batch's time / its objects)
        r["synthesis_seconds"] = round(sum(float(line.split()[-1]) for line in r["summary"]
                                           if len(line.split()) > 3 and line.split()[1] == "full"), 1)
        r["synthesized_grasps_per_second"] = round(total / r["synthesis_seconds"], 1)
    except (ValueError, IndexError, ZeroDivisionError):
        pass
    if r["rc"] == 0:
        import numpy as np

        from graspforge.io.grasp_set import GraspSet

        sets = [GraspSet.load(f) for f in sorted(folder.glob("*.npz"))]
        r["finite"] = all(np.isfinite(g.energy).all() for g in sets)
        r["contact_ok_5mm"] = float(np.mean([np.mean(np.abs(g.contact_distance).mean(1) < 0.005) for g in sets]))
        # a subset of 64 grasps per object travels back for evaluation on another machine
        sub = work / "full_subset"
        sub.mkdir(parents=True, exist_ok=True)
        for f, g in zip(sorted(folder.glob("*.npz")), sets):
            g.select(np.arange(min(64, len(g)))).save(sub / f.name)
        r["packed"] = _pack(sub, "full_subset.tar.gz")
    return r


@stage("quality")
def quality_stage(objects: list[str], timeout: float, work: Path, extra: list[str]) -> dict:
    folder = work / "quality"
    r = cli("generate", "--device", DEVICE, "--hand", "allegro", "--object", *objects, "--grasps", "32", *extra,
            "--objects-per-batch", str(len(objects)), "--out", str(folder), "--quiet", timeout=timeout)
    r["summary"] = _summary_rows(r.pop("tail"))
    if r["rc"] != 0:
        return r
    r["packed"] = _pack(folder, "quality.tar.gz")
    ev = cli("evaluate", str(folder), "--protocol", "strict", "--workers", str(max(1, min(16, os.cpu_count() or 1))), "--json",
             timeout=timeout)
    r["evaluate_rc"], r["evaluate_seconds"] = ev["rc"], ev["seconds"]
    results = {}
    for f in sorted(folder.glob("*.eval.json")):
        s = json.loads(f.read_text())
        strict = s.get("summary", {}).get("strict", s.get("strict", {}))
        results[f.name] = {k: strict.get(k) for k in ("success_rate", "D_mm", "ugr")}
    r["evaluation"] = results or ev["tail"][-1500:]
    return r


def main() -> int:
    global OUT, DEVICE
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="gpu_check")
    ap.add_argument("--objects", default=str(REPO / ".devassets" / "ycb"), help="folder of object folders (default: built-ins)")
    ap.add_argument("--quick", action="store_true", help="env, tests and a short timing only")
    ap.add_argument("--batches", type=int, nargs="+", default=[1024, 4096, 8192, 16384])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--full-grasps", type=int, default=1024)
    ap.add_argument("--skip", nargs="*", default=[], help="stages to skip")
    ap.add_argument("--device", default="cuda", help="cuda (default); cpu only to try the script itself")
    ap.add_argument("--quality-iterations", type=int, default=None, help="schedule of the quality set (default: the full one)")
    ap.add_argument("--full-iterations", type=int, default=None, help="schedule of the 8 x 1024 run (default: the full one)")
    ap.add_argument("--full-timeout", type=float, default=300)
    ap.add_argument("--quality-timeout", type=float, default=150)
    ap.add_argument("--tests-timeout", type=float, default=180)
    args = ap.parse_args()
    OUT = Path(args.out)
    DEVICE = args.device
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("GF_WORK", "/tmp/gf-gpu-check"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GRASPFORGE_CACHE_DIR", str(work / "cache"))
    sys.path.insert(0, str(REPO / "src"))
    objects = objects_list(args.objects, 8)
    RESULTS["args"] = vars(args)
    env_stage(objects)
    if "tests" not in args.skip:
        tests_stage(args.tests_timeout)
    if "timing" not in args.skip:
        timing_stage(objects, args.batches[:1] + args.batches[-1:] if args.quick else args.batches, 10 if args.quick else args.steps)
    rows = RESULTS.get("timing", {}).get("rows", []) if isinstance(RESULTS.get("timing"), dict) else []
    if "timing" not in args.skip and not any("ms_per_iteration" in r for r in rows):
        RESULTS["skipped"] = "full and quality: no batch size could be timed (see timing)"
    elif not args.quick:
        if "full" not in args.skip:
            full_stage(objects, args.full_grasps, args.full_timeout, work,
                       ["--iterations", str(args.full_iterations)] if args.full_iterations else [])
        if "quality" not in args.skip:
            extra = ["--iterations", str(args.quality_iterations)] if args.quality_iterations else []
            quality_stage(objects[:4], args.quality_timeout, work, extra)
    RESULTS["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
