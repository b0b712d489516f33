"""Replaying an optimiser step as a CUDA graph.

A step is hundreds of small kernels; at a few thousand grasps their launch overhead, not their
work, sets the time. ``torch.cuda.CUDAGraph`` records the kernels of one step once and replays them
with one launch. That needs a step that never waits for the host and updates its state tensors in
place (see :class:`graspforge.optimize.mala.GraspOptimizer`), and a few eager warm-up steps first
(Triton compiles its kernels, cuBLAS makes its handles, autograd sets up its streams).

If capture fails (an op that synchronises, a library that allocates during capture), the runner says
why in :attr:`StepRunner.status` and keeps running the step eagerly: slower, never wrong.
"""

from __future__ import annotations

import os
from typing import Callable

import torch

#: eager steps before capture (on a side stream, as PyTorch's CUDA-graph notes require)
WARMUP_STEPS = 3


class StepRunner:
    """Calls ``step()`` (no arguments, no result, state updated in place): eagerly, or, when
    ``enabled`` (CUDA only), ``WARMUP_STEPS`` times eagerly and then as a captured graph.

    ``GRASPFORGE_CUDA_GRAPHS=0`` in the environment turns capture off.
    """

    def __init__(self, step: Callable[[], None], enabled: bool):
        self.step = step
        self.enabled = bool(enabled) and os.environ.get("GRASPFORGE_CUDA_GRAPHS", "1") != "0"
        self.status = "off" if not self.enabled else "warming up"
        self._calls = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._stream: torch.cuda.Stream | None = None

    def __call__(self) -> None:
        if self._graph is not None:
            self._graph.replay()
            return
        if not self.enabled:
            self.step()
            return
        if self._stream is None:
            self._stream = torch.cuda.Stream()
        if self._calls < WARMUP_STEPS:
            self._stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self._stream):
                self.step()
            torch.cuda.current_stream().wait_stream(self._stream)
            self._calls += 1
            return
        # Capture does not run the kernels: the step recorded here is then replayed once for real.
        graph = torch.cuda.CUDAGraph()
        try:
            torch.cuda.synchronize()
            with torch.cuda.graph(graph):
                self.step()
        except Exception as e:  # noqa: BLE001 - any capture failure means: run eagerly
            self.enabled = False
            self.status = f"capture failed ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); running eagerly"
            torch.cuda.synchronize()
            self.step()
            return
        self._graph = graph
        self.status = "captured"
        graph.replay()
