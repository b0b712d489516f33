"""graspforge's ``dexgraspnet`` and ``graspqp`` exports read by the peers' own loading code, and the
hands they build checked against graspforge's forward kinematics. Prints JSON.

    python bench/peer_loaders.py --dexgraspnet ~/DexGraspNet --graspqp ~/graspqp \\
        [--pytorch-kinematics ~/pytorch_kinematics] [--work /tmp/peer-work]

Checkouts, outside this repository (nothing of them is copied into graspforge):
``git clone https://github.com/PKU-EPIC/DexGraspNet`` and ``https://github.com/leggedrobotics/graspqp``
(its ``thirdparty/pytorch_kinematics`` submodule, renezurbruegg/pytorch_kinematics, or
``--pytorch-kinematics DIR``). Run it with a Python that has graspforge and the peers' pure-Python
dependencies (``pip install transforms3d transformations absl-py six roma``; GraspQP's hand model
also needs pytorch3d and, for ``SDF_BACKEND=WARP`` on a CPU, warp-lang). A checkout not given, or
a dependency missing, is reported as skipped with the reason.

What runs (each peer in its own subprocess, both ship a package named ``pytorch_kinematics``):

- DexGraspNet: the loading statements of ``grasp_generation/tests/visualize_result.py`` (its
  ``np.load(...)[num]``, ``transforms3d.euler.euler2mat`` of ``WRJR*``, the joint list it hard-codes),
  taken from the file and executed for every grasp of the Shadow-hand export; the ``hand_pose`` they
  build is put into DexGraspNet's ``HandModelMJCFLite`` (pytorch_kinematics on
  ``mjcf/shadow_hand_wrist_free.xml``) and every body's origin compared with graspforge's FK of the
  same link of the original grasp.
- GraspQP: ``get_saved_poses`` of ``graspqp_isaaclab/utils/data.py`` (taken from the file: the module
  imports Isaac Lab) with the joint lists of its Isaac Lab hand configs (``actuated_joints_expr``,
  read from ``graspqp_isaaclab/assets/HAND.py``), compared with the grasp file; and the body of
  ``_show_dir`` of ``scripts/vis/visualize_result.py`` up to ``hand_model.set_parameters`` (its glob
  of ``grasp_predictions/HAND/K_contacts/ENERGY/TYPE/*.dexgrasp.pt``, ``torch.load``, root pose
  w-x-y-z to rot6d, contact indices), whose GraspQP hand model's link origins and contact points are
  compared with graspforge's.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

HANDS = {"shadow_hand": ["full", "precision"], "allegro": ["full"]}


# -- pieces of the peers' files --------------------------------------------------------------------
def _source(path: Path, node: ast.AST) -> str:
    return ast.get_source_segment(path.read_text(), node) or ""


def _main_block_statements(path: Path, start: str, drop: tuple[str, ...]) -> str:
    """The statements of ``if __name__ == '__main__':`` of ``path`` from the first whose source
    contains ``start``, leaving out (also inside ``if`` blocks) those mentioning any of ``drop``
    (plotting, models not built here); plus the file's top-level assignments."""
    text = path.read_text()
    tree = ast.parse(text)
    main = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))

    def keep(stmts):
        out = []
        for s in stmts:
            src = ast.unparse(s)
            if isinstance(s, ast.If):
                body = keep(s.body)
                if body:
                    out.append(ast.If(test=s.test, body=body, orelse=keep(s.orelse)))
            elif not any(d in src for d in drop):
                out.append(s)
        return out

    body = main.body
    first = next(i for i, s in enumerate(body) if start in ast.unparse(s))
    top = [n for n in tree.body if isinstance(n, ast.Assign)]
    return ast.unparse(ast.Module(body=top + keep(body[first:]), type_ignores=[]))


def _function(path: Path, name: str) -> str:
    tree = ast.parse(path.read_text())
    return ast.unparse(next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name))


def _function_body_until(path: Path, name: str, stop: str) -> str:
    """Function ``name`` cut after the first statement containing ``stop``, returning its locals."""
    fn = next(n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == name)
    out = []
    for s in fn.body:
        out.append(s)
        if stop in ast.unparse(s):
            break
    fn.body = out + [ast.parse("return locals()").body[0]]
    return ast.unparse(fn)


def _keyword_literal(path: Path, keyword: str):
    """The literal value of ``keyword=`` in ``path`` (or of the module-level name it is given)."""
    tree = ast.parse(path.read_text())
    for n in ast.walk(tree):
        if isinstance(n, ast.keyword) and n.arg == keyword:
            if isinstance(n.value, ast.Name):
                return next(ast.literal_eval(a.value) for a in tree.body
                            if isinstance(a, ast.Assign) and any(isinstance(t, ast.Name) and t.id == n.value.id for t in a.targets))
            return ast.literal_eval(n.value)
    raise KeyError(f"{path}: no {keyword}=")


# -- graspforge's side -------------------------------------------------------------------------------
def _our_links(gs, names: list[str], q: np.ndarray | None = None) -> np.ndarray:
    """World origins (N, L, 3) of our links ``names`` for the grasps of ``gs`` (float64)."""
    import torch
    import trimesh.transformations as tf

    from graspforge.hands import load_hand_description
    from graspforge.hands.kinematics import TorchKinematics

    tree = load_hand_description(gs.hand).tree
    R = np.stack([tf.quaternion_matrix(x)[:3, :3] for x in gs.root_quaternion])
    lp = TorchKinematics(tree, dtype=torch.float64).forward(torch.as_tensor(gs.root_position, dtype=torch.float64), torch.as_tensor(R),
                                                            torch.as_tensor(gs.joint_positions if q is None else q, dtype=torch.float64))
    return lp.pos[:, [tree.link_names.index(n) for n in names]].numpy()


def make_grasps(work: Path, grasps: int, iterations: int) -> dict:
    from graspforge.cli.main import main
    from graspforge.io.export import export_grasps

    out = work / "grasps"
    for hand, types in HANDS.items():
        with contextlib.redirect_stdout(sys.stderr):
            rc = main(["generate", "--hand", hand, "--object", "box", "--grasps", str(grasps), "--iterations", str(iterations),
                       "--grasp-type", *types, "--seed", "0", "--out", str(out / hand), "--quiet"])
        if rc != 0:
            raise SystemExit(f"graspforge generate --hand {hand} failed ({rc})")
    files = sorted(out.glob("*/*.npz"))
    return {fmt: export_grasps(files, fmt, work / fmt) for fmt in ("dexgraspnet", "graspqp")}


# -- DexGraspNet -------------------------------------------------------------------------------------
def check_dexgraspnet(dgn: Path, work: Path) -> dict:
    import torch

    from graspforge.io.grasp_set import GraspSet

    gg = dgn / "grasp_generation"
    sys.path[:0] = [str(gg), str(dgn / "thirdparty" / "pytorch_kinematics")]
    os.chdir(gg)
    from utils.hand_model_lite import HandModelMJCFLite  # DexGraspNet's own

    loader = _main_block_statements(gg / "tests" / "visualize_result.py", "data_dict = np.load",
                                    ("HandModel", "ObjectModel", "hand_model", "object_model", "fig", "go."))
    hm = HandModelMJCFLite("mjcf/shadow_hand_wrist_free.xml", "mjcf/meshes")
    manifest = json.loads((work / "dexgraspnet" / "manifest.json").read_text())
    report = {"loader": "grasp_generation/tests/visualize_result.py (its loading statements), utils/hand_model_lite.HandModelMJCFLite",
              "files": []}
    for job in manifest["jobs"]:
        path = work / "dexgraspnet" / job["files"][0]
        entry = {"file": job["files"][0], "hand": job["hand"], "grasps": job["grasps"]}
        report["files"].append(entry)
        ns = {"np": np, "torch": torch, "os": os, "transforms3d": __import__("transforms3d"), "device": "cpu"}
        poses = []
        try:
            for i in range(job["grasps"]):
                ns["args"] = SimpleNamespace(result_path=str(path.parent), object_code=path.stem, num=i)
                exec(loader, ns)
                poses.append(ns["hand_pose"])
        except KeyError as e:
            entry["loaded"] = False
            entry["error"] = f"KeyError {e} (DexGraspNet's loaders read its Shadow hand's joints only)"
            continue
        entry["loaded"] = True
        hm.set_parameters(torch.stack(poses))
        bodies = [b for b in hm.current_status if b.startswith("robot0:") and not b.endswith("_child")]
        n = len(poses)
        theirs = torch.stack([hm.current_status[b].get_matrix()[:, :3, 3].expand(n, 3) for b in bodies], 1)
        theirs = (theirs @ hm.global_rotation.transpose(1, 2) + hm.global_translation[:, None]).double().numpy()
        gs = GraspSet.load(_source_file(work, job))
        ours = _our_links(gs, [b.replace("robot0:", "robot0_") for b in bodies])
        err = np.linalg.norm(theirs - ours, axis=-1)
        entry.update(bodies=len(bodies), max_link_origin_error_mm=float(err.max() * 1e3), mean_link_origin_error_mm=float(err.mean() * 1e3),
                     worst_body=bodies[int(err.max(0).argmax())], wrist_joints_rad_max=float(np.abs(gs.joint_positions[:, :2]).max()))
    return report


def _source_file(work: Path, job: dict) -> Path:
    return work / "grasps" / job["hand"] / f"{job['job']}.npz"


# -- GraspQP -----------------------------------------------------------------------------------------
def check_graspqp(gqp: Path, work: Path, pk_dir: Path | None) -> dict:
    import torch

    from graspforge.io.grasp_set import GraspSet

    report = {"files": []}
    manifest = json.loads((work / "graspqp" / "manifest.json").read_text())
    data_py = gqp / "graspqp_isaaclab" / "src" / "graspqp_isaaclab" / "utils" / "data.py"
    ns = {"torch": torch}
    exec(_function(data_py, "get_saved_poses"), ns)
    get_saved_poses = ns["get_saved_poses"]
    report["isaaclab_loader"] = "graspqp_isaaclab/utils/data.py get_saved_poses"
    for job in manifest["jobs"]:
        path = work / "graspqp" / job["files"][0]
        gs = GraspSet.load(_source_file(work, job))
        joints = _keyword_literal(gqp / "graspqp_isaaclab" / "src" / "graspqp_isaaclab" / "assets" / f"{job['hand']}.py", "actuated_joints_expr")
        art = SimpleNamespace(cfg=SimpleNamespace(actuated_joints_expr=joints))
        pose, q, vel, energy = get_saved_poses(str(path), art, num_grasps=-1)
        order = np.argsort(gs.energy, kind="stable")
        idx = [gs.joint_names.index(n) for n in joints]
        report["files"].append({
            "file": job["files"][0], "grasps": len(pose), "isaaclab_joints": len(joints),
            "root_pose_max_abs_diff": float(np.abs(pose.double().numpy() - np.concatenate([gs.root_position, gs.root_quaternion], 1)[order]).max()),
            "joints_max_abs_diff_rad": float(np.abs(q.double().numpy() - gs.joint_positions[order][:, idx]).max()),
            # get_saved_poses sorts poses, joints and energies by energy but returns the velocities in file order
            "velocities_vs_squeeze_minus_grasp_max_abs_diff": float(np.abs(vel.double().numpy() - (gs.squeeze_joint_positions - gs.joint_positions)[:, idx]).max()),
            "energies_sorted": bool(np.all(np.diff(energy.numpy()) >= 0)),
        })
    # the visualiser's loader with GraspQP's own hand model
    pk = pk_dir or gqp / "thirdparty" / "pytorch_kinematics"
    sys.path[:0] = [str(gqp / "graspqp" / "src"), str(pk)]
    os.environ.setdefault("SDF_BACKEND", "WARP")
    import roma

    vis = gqp / "scripts" / "vis" / "visualize_result.py"
    body = _function_body_until(vis, "_show_dir", "hand_model.set_parameters")
    try:
        from graspqp.hands import get_hand_model

        model = "graspqp.hands.get_hand_model (GraspQP's HandModel)"
    except Exception as e:  # pytorch3d (no wheel for this torch), torchsdf (CUDA) or warp missing
        get_hand_model = _kinematics_only(gqp)
        model = (f"GraspQP's HandModel cannot be built here ({type(e).__name__}: {e}); its kinematics instead: "
                 "pytorch_kinematics.build_chain_from_urdf of its URDF and the lines of HandModel.set_parameters "
                 "(graspqp.utils.transforms.robust_compute_rotation_matrix_from_ortho6d); contact points not checked")
    report["visualizer"] = {"loader": "scripts/vis/visualize_result.py _show_dir (to set_parameters)", "hand_model": model, "files": []}
    import glob

    for job in manifest["jobs"]:
        rel = Path(job["files"][0])
        # OBJECT/grasp_predictions/HAND/K_contacts/ENERGY/TYPE/OBJECT.dexgrasp.pt
        obj, _, hand, k, energy_name, gtype = rel.parts[:6]
        gs = GraspSet.load(_source_file(work, job))
        args = SimpleNamespace(hand_name=hand, num_contacts=k, energy=energy_name, grasp_type=gtype, max_grasps=len(gs), device="cpu")
        g = {"torch": torch, "roma": roma, "glob": glob, "os": os, "np": np, "get_hand_model": get_hand_model}
        exec(compile(body, str(vis), "exec"), g)
        ns = g["_show_dir"](str(work / "graspqp" / obj / "grasp_predictions"), args, "cpu")
        if ns is None:
            report["visualizer"]["files"].append({"file": str(rel), "loaded": False})
            continue
        hm, order = ns["hand_model"], ns["indices"].numpy()
        links = [n for n in hm.current_status if n in load_tree_links(gs.hand)]
        R, t = hm.global_rotation.double(), hm.global_translation.double()
        status = hm.current_status
        theirs = torch.stack([status[n].get_matrix()[:, :3, 3].double().expand(len(R), 3) for n in links], 1) @ R.transpose(1, 2) + t[:, None]
        err = np.linalg.norm(theirs.numpy() - _our_links(gs, links)[order], axis=-1)
        # GraspQP's pytorch_kinematics (renezurbruegg/pytorch_kinematics 92c3b97, frame.py get_transform,
        # "ugly fix") turns every revolute joint 0.01 rad further: +0.01 where theta > 0, else -0.01
        shifted = _our_links(gs, links, gs.joint_positions + np.where(gs.joint_positions > 0, 0.01, -0.01))[order]
        err_shift = np.linalg.norm(theirs.numpy() - shifted, axis=-1)
        entry = {"file": str(rel), "grasp_type_in_file": ns["checkpoint_data"].get("grasp_type"), "links": len(links),
                 "max_link_origin_error_mm": float(err.max() * 1e3),
                 "max_link_origin_error_mm_with_their_0.01rad_joint_shift": float(err_shift.max() * 1e3)}
        if getattr(hm, "contact_points", None) is not None:
            cp = hm.contact_points.double().numpy()
            entry["max_contact_point_error_mm"] = float(np.linalg.norm(cp - gs.contact_points[order], axis=-1).max() * 1e3)
        report["visualizer"]["files"].append(entry)
    return report


def _kinematics_only(gqp: Path):
    """``get_hand_model`` for when GraspQP's HandModel cannot be built: the chain its ``__init__``
    builds (``pk.build_chain_from_urdf`` of the URDF its hands/HAND.py names) and the kinematic lines
    of its ``set_parameters``. Contact candidates (pytorch3d sampling) are not available."""
    import pytorch_kinematics as pk
    import torch
    from graspqp.utils.transforms import robust_compute_rotation_matrix_from_ortho6d

    urdfs = {"shadow_hand": "shadow_hand/shadow_hand.urdf", "allegro": "allegro/allegro_hand.urdf"}  # graspqp/hands/HAND.py mjcf_path

    class Kinematics:
        def __init__(self, hand):
            self.chain = pk.build_chain_from_urdf(open(gqp / "graspqp" / "assets" / urdfs[hand]).read()).to(dtype=torch.float)
            self._actuated_joints_names = list(self.chain.get_joint_parameter_names())
            self.contact_points = None

        def set_parameters(self, hand_pose, contact_point_indices=None):
            self.hand_pose = hand_pose.clone()
            self.global_translation = self.hand_pose[:, 0:3]
            self.global_rotation = robust_compute_rotation_matrix_from_ortho6d(self.hand_pose[:, 3:9])
            self.current_status = self.chain.forward_kinematics(self.hand_pose[:, 9:])

    return lambda hand_name, device, **kw: Kinematics(hand_name)


def load_tree_links(hand: str) -> set[str]:
    from graspforge.hands import load_hand_description

    return set(load_hand_description(hand).tree.link_names)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dexgraspnet", type=Path, help="DexGraspNet checkout (github.com/PKU-EPIC/DexGraspNet)")
    ap.add_argument("--graspqp", type=Path, help="GraspQP checkout (github.com/leggedrobotics/graspqp)")
    ap.add_argument("--pytorch-kinematics", type=Path, help="GraspQP's pytorch_kinematics fork, where its submodule is absent")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    ap.add_argument("--grasps", type=int, default=6)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--child", choices=["dexgraspnet", "graspqp"], help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        rep = check_dexgraspnet(a.dexgraspnet.resolve(), a.work) if a.child == "dexgraspnet" else \
            check_graspqp(a.graspqp.resolve(), a.work, a.pytorch_kinematics.resolve() if a.pytorch_kinematics else None)
        print(json.dumps(rep))
        return 0
    given = {peer: path for peer, path in (("dexgraspnet", a.dexgraspnet), ("graspqp", a.graspqp)) if path is not None and path.is_dir()}
    if not given:
        print(json.dumps({"skipped": "no peer checkout given (--dexgraspnet / --graspqp)"}))
        return 0
    work = (a.work or Path(tempfile.mkdtemp(prefix="peer-loaders-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    make_grasps(work, a.grasps, a.iterations)
    result = {"work": str(work)}
    for peer, path in (("dexgraspnet", a.dexgraspnet), ("graspqp", a.graspqp)):
        if path is None or not path.is_dir():
            result[peer] = "skipped: no checkout given" if path is None else f"skipped: {path} is not a folder"
            continue
        cmd = [sys.executable, __file__, "--child", peer, f"--{peer}", str(path), "--work", str(work)]
        if a.pytorch_kinematics:
            cmd += ["--pytorch-kinematics", str(a.pytorch_kinematics)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        lines = p.stdout.strip().splitlines()
        if p.returncode == 0 and lines:
            result[peer] = json.loads(lines[-1])
        else:
            err = (p.stderr.strip().splitlines() or ["no output"])[-1]
            result[peer] = f"skipped: {err}" if "ModuleNotFoundError" in err else f"failed: {err}"
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
