"""The Triton grid lookup (object distance + normal on GPUs) against the torch version, run on the
CPU by Triton's interpreter. TRITON_INTERPRET must be set before the kernel module is imported, so
the comparison runs in a subprocess (see tests/test_collision_triton.py for why)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")

WORKER = r"""
import os, sys
os.environ["TRITON_INTERPRET"] = "1"
import numpy as np, torch
torch.set_num_threads(1)
from graspforge.energy.scene import ObjectBatch
from graspforge.geometry._trilinear_triton import trilinear_triton
from graspforge.geometry.atlas import trilinear_gather
from graspforge.objects import load_object
from torch.profiler import profile, ProfilerActivity

b = ObjectBatch([load_object("box"), load_object("sphere:radius=0.04"), load_object("mug")], 2, surface_points=100)
data, dist, off, dims, origin, h = b._packed(torch.device("cpu"), torch.float32)
g = torch.Generator().manual_seed(0)
N = 700
p = (torch.rand(N, 3, generator=g) - 0.5) * 0.1  # inside and near the objects
p[:100] *= 6  # beyond the grids (clamped axes)
p[5] = float("nan")
gid = torch.randint(0, 3, (N,), generator=g)
out = {}
for name, table in (("dn", data), ("d", dist)):
    x1, x2 = p.clone().requires_grad_(), p.clone().requires_grad_()
    a = trilinear_gather(x1, table, off[gid], dims[gid], origin[gid], h[gid])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        c = trilinear_triton(x2, gid, table, off, dims, origin, h)
        w = torch.randn(a.shape, generator=g)
        (c.nan_to_num(0) * w).sum().backward()
    (a.nan_to_num(0) * w).sum().backward()
    names = [e.name for e in prof.events()]
    out[name + "_ref"], out[name + "_tri"] = a.detach().numpy(), c.detach().numpy()
    out[name + "_gref"], out[name + "_gtri"] = x1.grad.numpy(), x2.grad.numpy()
    out[name + "_syncs"] = np.array(names.count("aten::_local_scalar_dense") + names.count("aten::nonzero"))
np.savez(sys.argv[1], **out)
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    path = tmp_path_factory.mktemp("tri") / "out.npz"
    env = dict(os.environ, TRITON_INTERPRET="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", WORKER, str(path)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return dict(np.load(path))


@pytest.mark.parametrize("kind", ["dn", "d"])
def test_triton_lookup_matches_torch(results, kind):
    ref, tri = results[kind + "_ref"], results[kind + "_tri"]
    assert np.isnan(ref[5, 0]) and np.isnan(tri[5, 0])  # a NaN point reads NaN, never a made-up value
    ok = ~np.isnan(ref[:, 0])
    assert (ref[ok, 0] > 0).sum() > 20 and (ref[ok, 0] < -0.01).sum() > 20  # inside and well outside
    np.testing.assert_allclose(tri[ok], ref[ok], atol=2e-6, rtol=1e-5)
    gref, gtri = results[kind + "_gref"][ok], results[kind + "_gtri"][ok]
    assert np.abs(gref).max() > 0.5
    np.testing.assert_allclose(gtri, gref, atol=1e-4 * np.abs(gref).max(), rtol=1e-4)
    assert int(results[kind + "_syncs"]) == 0
