"""Numba kernels compiled twice: a parallel version for several threads and a serial one.

Why: numba's OpenMP threads spin after every parallel region; with one thread asked for (the
default in tests, benchmarks and pool workers) the spinning thread still burns the second core.
The serial build has no parallel region at all. Both builds are cached on disk (``cache=True``)
under distinct names, so neither is loaded in place of the other.
"""

from __future__ import annotations

import types

import numba as nb
import torch


def threads() -> int:
    """Threads the kernels may use: torch's setting (one knob for both), within numba's pool."""
    return max(1, min(torch.get_num_threads(), nb.config.NUMBA_NUM_THREADS))


class DualKernel:
    def __init__(self, fn):
        serial_fn = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__, fn.__closure__)
        serial_fn.__qualname__ = fn.__qualname__ + "_serial"
        self.parallel = nb.njit(parallel=True, cache=True)(fn)
        self.serial = nb.njit(parallel=False, cache=True)(serial_fn)
        self.__doc__ = fn.__doc__

    def __call__(self, *args):
        n = threads()
        if n <= 1:
            return self.serial(*args)
        nb.set_num_threads(n)
        return self.parallel(*args)


def dual_kernel(fn) -> DualKernel:
    """Decorator: ``fn`` (written with ``numba.prange``) as a :class:`DualKernel`."""
    return DualKernel(fn)
