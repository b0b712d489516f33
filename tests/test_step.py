"""One optimiser step without host round trips, and the same synthesis on every kernel backend.

The torch backend is what runs on GPUs without Triton and the reference of the Triton kernels; its
step must never wait for the device (no ``.item()``, no boolean compaction), or it cannot be
captured in a CUDA graph. These run on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from graspforge.backend import HAVE_NUMBA, kernel_backend, use_kernels
from graspforge.config import load_config
from graspforge.hands import load_hand
from graspforge.objects import load_object
from graspforge.pipelines.synthesis import make_optimizer, synthesize

#: ATen compute ops of one torch-backend step at B = 8, K = 12 (forward, backward, MALA*, 20 QP iterations): ~2,900 when
#: written. The count does not grow with B; the bound catches a loop over grasps, objects or Newton
#: iterations sneaking back.
MAX_OPS_PER_STEP = 3400


@pytest.fixture(scope="module")
def hand():
    return load_hand("allegro")


def _cfg(**kw):
    over = {"grasps": 4, "contacts": 12, "optimizer.iterations": 30, "energy.object_points": 400, "seed": 1}
    over.update(kw)
    return load_config(overrides=over)


#: ATen ops that only make views or metadata (no kernel launch on a GPU)
VIEW_OPS = {"aten::as_strided", "aten::slice", "aten::select", "aten::reshape", "aten::view", "aten::unsqueeze",
            "aten::expand", "aten::transpose", "aten::resolve_conj", "aten::empty", "aten::empty_strided",
            "aten::_unsafe_view", "aten::alias", "aten::squeeze", "aten::permute", "aten::t", "aten::detach",
            "aten::empty_like", "aten::narrow", "aten::unbind", "aten::split", "aten::result_type", "aten::_reshape_alias",
            "aten::expand_as", "aten::view_as", "aten::lift_fresh", "aten::movedim"}


def _op_counts(fn) -> dict[str, int]:
    """Events by name, plus "compute" = ATen ops that do work (no view op, no ATen op inside)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    counts: dict[str, int] = {"compute": 0}
    for e in prof.events():
        counts[e.name] = counts.get(e.name, 0) + 1
        if (e.name.startswith("aten::") and e.name not in VIEW_OPS
                and not any(c.name.startswith("aten::") and c.name not in VIEW_OPS for c in e.cpu_children)):
            counts["compute"] += 1
    return counts


def test_torch_step_never_waits_for_the_device(hand):
    objs = [load_object("box"), load_object("sphere:radius=0.04")]
    with use_kernels("torch"):
        assert kernel_backend("cpu") == "torch"
        opt, _, _ = make_optimizer(hand, objs, _cfg())
        opt.step()  # first step outside the profile (lazy tables)
        counts = _op_counts(opt._step_body)
    assert counts.get("aten::_local_scalar_dense", 0) == 0, "a tensor is read on the host inside the step"
    assert counts.get("aten::nonzero", 0) == 0, "boolean compaction (data-dependent shape) inside the step"
    assert counts.get("aten::item", 0) == 0
    assert 100 < counts["compute"] <= MAX_OPS_PER_STEP, counts["compute"]


def test_mala_star_reset_never_waits_for_the_device(hand):
    with use_kernels("torch"):
        opt, _, _ = make_optimizer(hand, [load_object("box")], _cfg())
        opt.step()
        counts = _op_counts(opt._mala_star_reset)
    assert counts.get("aten::_local_scalar_dense", 0) == 0 and counts.get("aten::nonzero", 0) == 0


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_torch_and_numba_backends_take_the_same_path(hand):
    """Same seed, same random numbers (counter-based), kernels that agree to float rounding: the
    first steps of both backends coincide; a whole short run ends at the same quality."""
    objs = [load_object("box"), load_object("sphere:radius=0.04")]
    cfg = _cfg()
    runs = {}
    for name in ("numba", "torch"):
        with use_kernels(name):
            opt, energy, _ = make_optimizer(hand, objs, cfg)
            e0 = opt.energy.clone()
            for _ in range(5):
                opt.step()
            runs[name] = (e0, opt.energy.clone(), opt.pose.clone(), opt.contacts.clone())
    (a0, a5, ap, ac), (b0, b5, bp, bc) = runs["numba"], runs["torch"]
    torch.testing.assert_close(a0, b0, rtol=1e-4, atol=1e-5)
    assert torch.equal(ac, bc)  # contact draws and accept decisions agree
    torch.testing.assert_close(ap, bp, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(a5, b5, rtol=1e-3, atol=1e-4)

    long = _cfg(**{"optimizer.iterations": 150, "optimizer.refine_fraction": 0.2, "grasps": 8})
    res = {}
    for name in ("numba", "torch"):
        with use_kernels(name):
            res[name] = synthesize(hand, objs, long)
    for gs_a, gs_b in zip(res["numba"].grasp_sets, res["torch"].grasp_sets):
        assert np.isfinite(gs_b.energy).all()
        # the runs drift apart by rounding, but land equally well
        assert np.median(gs_b.energy) < 1.5 * np.median(gs_a.energy) + 0.5
        assert np.median(gs_a.energy) < 1.5 * np.median(gs_b.energy) + 0.5
        np.testing.assert_allclose(np.abs(gs_a.contact_distance).mean(), np.abs(gs_b.contact_distance).mean(), atol=0.01)


def test_grasps_do_not_depend_on_their_batch(hand):
    """A job's random numbers depend on (seed, hand, type, object, grasp index) alone: the first
    grasps of an object are the same whether it is optimised alone or beside another object."""
    box, sphere = load_object("box"), load_object("sphere:radius=0.04")
    cfg = _cfg(grasps=4)
    alone, _, _ = make_optimizer(hand, [box], cfg)
    paired, _, _ = make_optimizer(hand, [sphere, box], cfg)
    torch.testing.assert_close(alone.pose, paired.pose[4:])
    assert torch.equal(alone.contacts, paired.contacts[4:])
    fresh_a = alone.fresh(torch.tensor(7))
    fresh_b = paired.fresh(torch.tensor(7))
    torch.testing.assert_close(fresh_a[0], fresh_b[0][4:])
    # whole runs, MALA* resets included: bit for bit on the CPU kernels (per-grasp random numbers,
    # per-object statistics, per-grasp kernels and QP)
    run = _cfg(grasps=4, **{"optimizer.iterations": 40, "optimizer.reset_every": 15, "optimizer.reset_stop_before_end": 0,
                            "optimizer.refine_fraction": 0.2})
    a = synthesize(hand, [box], run).grasp_sets[0]
    b = synthesize(hand, [sphere, box], run).grasp_sets[1]
    for name in ("joint_positions", "root_position", "root_quaternion", "energy", "squeeze_joint_positions"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.contact_indices, b.contact_indices)


def test_random_numbers_are_uniform_and_independent():
    from graspforge.optimize.rng import CounterRNG, grasp_keys

    rng = CounterRNG(grasp_keys(0, "job", 4096))
    u = rng.uniform(torch.tensor(5), 1, 64)  # (4096, 64)
    assert u.min() >= 0 and u.max() < 1
    # mean, variance and a 16-bin histogram of 262,144 draws against U(0, 1)
    assert abs(float(u.mean()) - 0.5) < 0.003 and abs(float(u.var()) - 1 / 12) < 0.002
    hist = torch.histc(u.float(), 16, 0, 1) / u.numel()
    assert float((hist - 1 / 16).abs().max()) < 0.003
    # neighbouring keys, slots, counters and streams are uncorrelated
    for other in (rng.uniform(torch.tensor(6), 1, 64), rng.uniform(torch.tensor(5), 2, 64), u.roll(1, 0), u.roll(1, 1)):
        c = torch.corrcoef(torch.stack([u.flatten(), other.flatten()]))[0, 1]
        assert abs(float(c)) < 0.01
    z = rng.normal(torch.tensor(5), 3, 64)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    # the same keys and counter give the same numbers
    assert torch.equal(u, rng.uniform(torch.tensor(5), 1, 64))
