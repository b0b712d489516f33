"""The public API at the top of the package: ``import graspforge as gf`` is light, its names are
the real objects, and the README's first Python example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graspforge as gf

README = Path(__file__).resolve().parents[1] / "README.md"


def test_import_graspforge_loads_no_heavy_module():
    """``import graspforge`` pulls in neither torch nor numpy nor MuJoCo (the CLI and scripts that
    only read the version stay fast); the names arrive on first use."""
    src = str(Path(gf.__file__).resolve().parents[1])
    code = ("import sys, graspforge; heavy = [m for m in ('torch', 'numpy', 'mujoco', 'trimesh') if m in sys.modules]; "
            "print(heavy); graspforge.GraspSet; print('numpy' in sys.modules, 'torch' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True False"  # GraspSet needs numpy only


def test_public_names_are_the_library_objects():
    from graspforge.config import GenerateConfig, load_config
    from graspforge.pipelines.evaluation import evaluate_grasps
    from graspforge.hands import load_hand
    from graspforge.io import GraspSet
    from graspforge.objects import load_object
    from graspforge.pipelines.synthesis import synthesize

    assert (gf.load_hand, gf.load_object, gf.synthesize, gf.GraspSet, gf.load_config, gf.GenerateConfig) == (
        load_hand, load_object, synthesize, GraspSet, load_config, GenerateConfig)
    assert callable(gf.evaluate) and gf.evaluate.evaluate_grasps is evaluate_grasps
    assert set(gf.__all__) == {"__version__", "load_hand", "load_object", "load_config", "GenerateConfig", "synthesize",
                               "GraspSet", "evaluate"}
    assert set(gf.__all__) <= set(dir(gf))
    with pytest.raises(AttributeError):
        gf.no_such_name  # noqa: B018


def test_energy_package_exports_the_energy_and_the_object_batch():
    import graspforge.energy as energy
    from graspforge.energy.model import GraspEnergy
    from graspforge.energy.scene import ObjectBatch

    assert (energy.GraspEnergy, energy.ObjectBatch) == (GraspEnergy, ObjectBatch)
    assert {"GraspEnergy", "ObjectBatch"} <= set(energy.__all__)


def _first_python_block(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


@pytest.mark.slow
def test_readme_first_example_runs(tmp_path, monkeypatch, capsys):
    """The README's first Python block, executed as written (in a scratch folder)."""
    code = _first_python_block(README.read_text(encoding="utf-8"))
    assert code.startswith("import graspforge as gf\n")
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, str(README), "exec"), ns)  # noqa: S102 - the README is this repository's own text
    grasps, report = ns["grasps"], ns["report"]
    assert len(grasps) == 4 and grasps.hand == "allegro" and grasps.object_name == "box"
    back = gf.GraspSet.load(tmp_path / "box__allegro__full.npz")
    np.testing.assert_array_equal(back.joint_positions, grasps.joint_positions)
    rate = report.summary["strict"]["success_rate"]
    assert 0.0 <= rate <= 1.0
    assert report.arrays["eval_strict_success"].shape == (4,)
    assert capsys.readouterr().out == f"{rate:.0%} of 4 grasps hold\n"
    # the short run still optimised: every grasp ends well below where annealing starts
    assert np.all(np.isfinite(grasps.energy)) and np.median(grasps.energy) < 50
