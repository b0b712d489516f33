"""graspforge: grasp datasets for robot hands with GraspQP and MALA*.

>>> import graspforge as gf
>>> hand, box = gf.load_hand("allegro"), gf.load_object("box")
>>> result = gf.synthesize(hand, [box], gf.load_config(overrides={"grasps": 8}))
>>> result.grasp_sets[0].save("box__allegro__full.npz")          # a gf.GraspSet
>>> gf.evaluate(result.grasp_sets[0]).summary["strict"]          # MuJoCo validation

Packages by layer (each imports only from the layers above it in this list; tests/test_architecture.py):

- foundation: ``errors``, ``config`` (run settings), ``_io`` (atomic files), ``backend`` (devices)
- core: ``geometry`` -> ``hands``, ``objects`` -> ``energy``, ``optimize``
- io: ``io`` (grasp-set files, dataset index, exports)
- measure: ``evaluate`` (physics, exact geometry, metrics) -> ``viz`` (pictures)
- pipelines: ``pipelines`` (synthesis, evaluation, dataset build, the paper's comparison)
- cli: ``cli``

``synthesis``, ``dataset`` and ``report`` (and ``evaluate.run``) are aliases of moved modules, kept for old imports.

The names below are imported on first use, so ``import graspforge`` stays light (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute); None: the module itself
_API: dict[str, tuple[str, str | None]] = {
    "load_hand": ("graspforge.hands.loading", "load_hand"),
    "load_object": ("graspforge.objects.model", "load_object"),
    "load_config": ("graspforge.config", "load_config"),
    "GenerateConfig": ("graspforge.config", "GenerateConfig"),
    "synthesize": ("graspforge.pipelines.synthesis", "synthesize"),
    "GraspSet": ("graspforge.io.grasp_set", "GraspSet"),
    # the evaluation package, callable: gf.evaluate(grasp_set) runs evaluate_grasp_set
    "evaluate": ("graspforge.evaluate", None),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'graspforge' has no attribute {name!r}")
    module, attr = _API[name]
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
