#!/usr/bin/env bash
# GPU check of issue 16, on a machine with a CUDA GPU, from anywhere:
#
#   bash bench/gpu_check.sh [OUT_DIR] [--quick] [more bench/gpu_check.py options]
#
# Runs the CUDA tests, times optimiser iterations for several batch sizes, synthesises 8 objects x
# 1024 grasps at the default schedule, and synthesises + evaluates a small set; writes
# OUT_DIR/gpu_check.json (default ./gpu_check) and packs the small set's grasp files beside it.
#
# It runs on the machine's own torch (any CUDA build, e.g. torch 2.11 + CUDA 13, Python 3.12),
# not the CPU wheel the project pins: the project is put on PYTHONPATH, not pip-installed. The
# project's other dependencies must be importable; on a bare CUDA image put their wheels in a folder
# and name it in WHEELS (trimesh, tomli_w, libigl, mujoco, mujoco-core, glfw, pyopengl): they are
# installed into a private folder, nothing else changes. To make such a folder for Python 3.12:
#   for p in trimesh==5.2.0 tomli_w==1.2.0 libigl==2.6.3 mujoco==4.0.1 mujoco-core==4.0.1 glfw pyopengl; do
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 -d .whl $p; done
# Objects: --objects DIR (a folder of object folders, e.g. 8 of ../shared/assets/objects/ycb copied into
# .devassets/ycb, the default); without one the built-in objects are used.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check}
[ $# -gt 0 ] && shift
if [ -n "${WHEELS:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gf-site "$WHEELS"/*.whl \
        || { echo "gpu_check: installing the wheels in $WHEELS failed" >&2; exit 2; }
    export PYTHONPATH=/tmp/gf-site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-}
export PYTHONUNBUFFERED=1
python3 bench/gpu_check.py --out "$OUT" "$@"
