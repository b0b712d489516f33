"""MuJoCo's own forward kinematics of a URDF, as an independent reference for ours."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np


def mujoco_model_from_urdf(path: Path) -> mujoco.MjModel:
    """Compile a URDF's kinematics in MuJoCo (geometry stripped; static bodies kept apart)."""
    root = ET.fromstring(Path(path).read_text())
    for link in root.findall("link"):
        for tag in ("visual", "collision"):
            for el in link.findall(tag):
                link.remove(el)
        if link.find("inertial") is None:
            inert = ET.SubElement(link, "inertial")
            ET.SubElement(inert, "mass", value="0.01")
            ET.SubElement(inert, "inertia", ixx="1e-6", iyy="1e-6", izz="1e-6", ixy="0", ixz="0", iyz="0")
    for el in root.findall("mujoco"):
        root.remove(el)
    mj = ET.SubElement(root, "mujoco")
    ET.SubElement(mj, "compiler", fusestatic="false", discardvisual="true", balanceinertia="true", boundmass="1e-4", boundinertia="1e-8")
    xml = ET.tostring(root, encoding="unicode")
    xml = re.sub(r"<transmission.*?</transmission>", "", xml, flags=re.S)
    return mujoco.MjModel.from_xml_string(xml)


def mujoco_link_poses(model: mujoco.MjModel, joint_values: dict[str, float], links: list[str]) -> np.ndarray:
    """(L, 4, 4) world poses of ``links`` with the named joints set (radians / metres)."""
    data = mujoco.MjData(model)
    for name, v in joint_values.items():
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if jid < 0:
            raise KeyError(name)
        data.qpos[model.jnt_qposadr[jid]] = v
    mujoco.mj_kinematics(model, data)
    out = np.zeros((len(links), 4, 4))
    for i, n in enumerate(links):
        bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)
        if bid < 0:
            raise KeyError(n)
        out[i, :3, :3] = data.xmat[bid].reshape(3, 3)
        out[i, :3, 3] = data.xpos[bid]
        out[i, 3, 3] = 1
    return out
