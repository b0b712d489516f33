"""The command line, run as a user runs it (a real subprocess through the installed entry point)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import HANDS_DIR, need_shared


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graspforge.cli.main", *args], capture_output=True, text=True, timeout=300)


def test_hands_show_builtin():
    r = run("hands", "show", "allegro")
    assert r.returncode == 0, r.stderr
    assert "hand allegro: 16 DoF" in r.stdout
    assert "thumb_joint_3" in r.stdout and "[-0.2792, +1.7627] rad" in r.stdout
    assert "precision: index_link_3 (8), middle_link_3 (8), thumb_link_3 (8); curls ring_joint_0" in r.stdout


def test_hands_show_json_and_reference_folder():
    r = run("hands", "show", str(need_shared(HANDS_DIR / "ability_hand")), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["dof"] == 6
    assert {c["joint"] for c in s["coupled_joints"]} == {"index_q2", "middle_q2", "ring_q2", "pinky_q2"}
    assert all(abs(c["multiplier"] - 1.05851325) < 1e-9 for c in s["coupled_joints"])
    assert set(s["grasp_types"]) >= {"full", "pinch", "precision", "fingertip"}


def test_hands_show_urdf_file():
    r = run("hands", "show", str(need_shared(HANDS_DIR / "panda" / "franka_panda.urdf")), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["dof"] == 1 and s["coupled_joints"][0]["follows"] == "panda_finger_joint1"


def test_hands_list():
    r = run("hands", "list")
    assert r.returncode == 0 and "allegro" in r.stdout and "16" in r.stdout


def test_unknown_hand_exits_with_message():
    r = run("hands", "show", "no_such_hand")
    assert r.returncode == 1
    assert "no hand or file named 'no_such_hand'" in r.stderr
    assert "Traceback" not in r.stderr


def test_no_command_prints_help():
    r = run()
    assert r.returncode == 2 and "hands" in r.stdout
