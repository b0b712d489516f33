"""Counter-based random numbers: every value is a hash of (grasp key, draw counter, stream, slot).

Why not ``torch.Generator``: a generator lives on one device and advances with every call, so (a) a
CPU generator feeding CUDA tensors costs a host-to-device copy each step, (b) a CUDA graph can only
replay a draw whose generator state it was told about, and (c) the numbers a grasp gets depend on
how many other grasps were drawn before it, i.e. on how jobs were batched. Here the counter is a
device tensor advanced inside the step, the same keys give the same numbers on the CPU and on a GPU,
and each grasp's numbers depend only on its own key (seed, hand, grasp type, object, grasp index).

The hash is a 32-bit integer finaliser (Mueller's ``0x45d9f3b`` mix) applied in int64 with every
product below 2^63, so the arithmetic is exact on every backend (no reliance on overflow).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch

MASK = 0xFFFFFFFF
_MUL = 0x45D9F3B
_GOLDEN = 0x9E3779B9
_C_MUL = 0x2545F491
_S_MUL = 0x6B43A9B5


def mix(x: torch.Tensor) -> torch.Tensor:
    """32-bit avalanche hash of int64 tensors holding values in [0, 2^32) (same shape)."""
    x = (((x >> 16) ^ x) * _MUL) & MASK
    x = (((x >> 16) ^ x) * _MUL) & MASK
    return (x >> 16) ^ x


def mix_int(x: int) -> int:
    """:func:`mix` on a Python int (keys are built on the host)."""
    x &= MASK
    x = (((x >> 16) ^ x) * _MUL) & MASK
    x = (((x >> 16) ^ x) * _MUL) & MASK
    return (x >> 16) ^ x


def text_key(text: str) -> int:
    """A stable 32-bit key of a string (CRC-32, identical on every machine and Python version)."""
    return zlib.crc32(text.encode("utf-8")) & MASK


def combine(*parts: int) -> int:
    """A 32-bit key from several ints (order matters)."""
    h = 0x6A09E667
    for p in parts:
        p = int(p)
        while True:  # fold ints wider than 32 bits (a large --seed) in 32-bit words
            h = mix_int(h ^ mix_int((p & MASK) + _GOLDEN))
            p >>= 32
            if p <= 0:
                break
    return h


def grasp_keys(seed: int, job: str, count: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(count,) int64 keys of grasps 0..count-1 of one job (``job`` names hand, grasp type and object)."""
    base = combine(seed, text_key(job))
    idx = np.arange(count, dtype=np.int64)
    keys = [combine(base, int(i)) for i in idx]
    return torch.as_tensor(keys, dtype=torch.int64, device=device)


class CounterRNG:
    """Uniform and normal numbers for B grasps with keys ``keys`` (B,) int64.

    ``uniform(counter, stream, *tail)`` returns (B, *tail) float64 in [0, 1) (32 random bits each);
    ``counter`` is an int or a 0-d int64 tensor on the keys' device (advanced by the caller), and
    ``stream`` a small int naming the purpose, so that two draws at one counter differ.
    """

    def __init__(self, keys: torch.Tensor):
        if keys.dtype != torch.int64 or keys.ndim != 1:
            raise ValueError("CounterRNG needs (B,) int64 keys")
        self.keys = keys
        self._slots: dict = {}

    @property
    def device(self) -> torch.device:
        return self.keys.device

    def _slot_keys(self, tail: tuple[int, ...]) -> torch.Tensor:
        n = int(np.prod(tail)) if tail else 1
        if n not in self._slots:  # built once per shape: no host work inside a step
            self._slots[n] = mix(torch.arange(n, dtype=torch.int64, device=self.device) * 2 + 1)
        return self._slots[n]

    def bits(self, counter: torch.Tensor | int, stream: int, *tail: int) -> torch.Tensor:
        """(B, *tail) int64 holding 32 random bits each."""
        c = counter if isinstance(counter, torch.Tensor) else torch.tensor(int(counter), dtype=torch.int64, device=self.device)
        # the counter spread by an odd multiplier (< 2^31, so the product stays below 2^63), the
        # stream by another, then one avalanche per grasp and one per slot
        salt = ((c & MASK) * _C_MUL + int(stream) * _S_MUL) & MASK
        h = mix(self.keys ^ salt)  # (B,)
        h = mix(h[:, None] ^ self._slot_keys(tail)[None, :])
        return h.reshape(self.keys.shape[0], *tail)

    def uniform(self, counter: torch.Tensor | int, stream: int, *tail: int) -> torch.Tensor:
        return self.bits(counter, stream, *tail).to(torch.float64) * (1.0 / 4294967296.0)

    def normal(self, counter: torch.Tensor | int, stream: int, *tail: int) -> torch.Tensor:
        """Standard normal (B, *tail) float64 (Box-Muller on two uniform streams)."""
        u1 = 1.0 - self.uniform(counter, 2 * stream + 1000, *tail)  # (0, 1]
        u2 = self.uniform(counter, 2 * stream + 1001, *tail)
        return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)
