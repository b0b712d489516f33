"""Which implementation runs the hot kernels (SDF lookups, point-vs-link distances, the QP).

One place decides, per device, instead of a check in every kernel's caller:

- ``numba``: CPU tensors. Fused loops compiled by numba; at the batch sizes a laptop runs (16-128
  grasps) a step is dominated by the number of tiny tensor ops, which these kernels replace.
- ``triton``: CUDA tensors, where Triton is installed (it ships with PyTorch's CUDA wheels). One
  program per grasp and block of points; no host round trips, so a step can be captured in a CUDA
  graph.
- ``torch``: any device. Fixed-shape tensor code with no host synchronisation; the portable fallback
  and the reference the two others are tested against.

``GRASPFORGE_KERNELS=torch|numba|triton|auto`` (environment) or :func:`use_kernels` (code) forces a
choice; a forced backend that cannot serve a device (numba on CUDA, triton on the CPU) falls back to
``torch`` there.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch

BACKENDS = ("auto", "numba", "triton", "torch")

try:  # numba is a dependency, but the package must still import (and run, on torch) without it
    import numba  # noqa: F401

    HAVE_NUMBA = True
except Exception:  # pragma: no cover
    HAVE_NUMBA = False

try:  # Triton comes with CUDA builds of torch, never with the CPU wheel
    import triton  # noqa: F401

    HAVE_TRITON = True
except Exception:
    HAVE_TRITON = False

_forced: str | None = None


def _check(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def requested() -> str:
    """The backend asked for: :func:`use_kernels`, else ``$GRASPFORGE_KERNELS``, else ``auto``."""
    if _forced is not None:
        return _forced
    return _check(os.environ.get("GRASPFORGE_KERNELS", "auto").strip().lower() or "auto")


def kernel_backend(device: torch.device | str) -> str:
    """``"numba"``, ``"triton"`` or ``"torch"``: the implementation that serves tensors on ``device``."""
    kind = torch.device(device).type
    want = requested()
    if kind == "cpu":
        return "numba" if want in ("auto", "numba") and HAVE_NUMBA else "torch"
    if kind == "cuda":
        return "triton" if want in ("auto", "triton") and HAVE_TRITON else "torch"
    return "torch"


@contextmanager
def use_kernels(name: str) -> Iterator[None]:
    """Force a backend inside a ``with`` block (tests, benchmarks)."""
    global _forced
    old, _forced = _forced, _check(name)
    try:
        yield
    finally:
        _forced = old
