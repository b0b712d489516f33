"""The on-disk layout of a dataset folder and its index, read and written (no synthesis here).

Layout (written by :mod:`graspforge.pipelines.dataset_build`)::

    DATASET/dataset.toml     resolved synthesis config + [dataset] settings (fixed at the first run)
    DATASET/grasps/JOB.npz   one grasp file per job (a :class:`~graspforge.io.grasp_set.GraspSet`)
    DATASET/jobs/JOB.json    the job's record; written last, so its presence means "done"
    DATASET/index.json, index.csv   one row per finished job (rebuilt from the records)

Readers (``dataset info``, ``dataset export``) need only this module, so they work on a read-only
dataset and never import the synthesis pipeline.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .._io import atomic_write_json, atomic_write_text
from ..errors import GraspforgeError

INDEX_FIELDS = ("job", "object", "hand", "type", "generated", "kept", "success", "ugr", "H", "D_mm",
                "synthesis_seconds", "evaluation_seconds", "file")

class DatasetError(GraspforgeError, ValueError):
    """A dataset that cannot be built or read as asked."""


def read_record(path: Path) -> dict | None:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or not all(k in rec for k in INDEX_FIELDS):
        return None
    return rec


def read_index(root: Path) -> list[dict]:
    """The index rows of every finished job, read from the job records (unreadable ones are left out).

    Reads only, so ``dataset info`` and ``dataset export`` work on a read-only dataset."""
    root = Path(root)
    rows = []
    jobs_dir = root / "jobs"
    if jobs_dir.is_dir():
        for p in sorted(jobs_dir.glob("*.json")):
            rec = read_record(p)
            if rec is not None and (root / rec["file"]).is_file():
                rows.append({k: rec[k] for k in INDEX_FIELDS})
    return rows


def read_dataset_index(root: Path) -> list[dict]:
    """:func:`read_index` of a folder that must be a dataset (:class:`DatasetError` otherwise)."""
    root = Path(root)
    if not (root / "index.json").is_file() and not (root / "jobs").is_dir() and not (root / "dataset.toml").is_file():
        raise DatasetError(f"{root}: not a graspforge dataset (no index.json, jobs/ or dataset.toml)")
    return read_index(root)


def write_index(root: Path) -> list[dict]:
    """Rebuild ``index.json`` and ``index.csv`` from the job records; returns the rows."""
    rows = read_index(root)
    atomic_write_json(root / "index.json", rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(INDEX_FIELDS))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(root / "index.csv", buf.getvalue())
    return rows
