"""Small file helpers: atomic writes, content hashes, the on-disk cache folder."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import WriteError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def safe_filename(s: str, fallback: str = "x") -> str:
    """``s`` with every run of characters other than letters, digits, ``.``, ``_`` and ``-``
    replaced by ``_`` (``fallback`` if nothing is left): a name safe in any file system."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or fallback


#: temporary files name their writer (pid@host), so a cleanup can tell a live writer's from a dead one's
_WRITER = f"gf{os.getpid()}@{re.sub(r'[^A-Za-z0-9-]+', '-', socket.gethostname()) or 'host'}"
_TEMP_WRITER = re.compile(r"\.gf(\d+)@([A-Za-z0-9-]+)\.[^.]*\.tmp$")
#: a temporary file of another machine (or of an unknown writer) younger than this may still be written (s)
TEMP_GRACE_SECONDS = 600.0


def process_exists(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (this one, or another user's, included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def temp_file_is_live(path: str | os.PathLike) -> bool:
    """Whether a leftover ``.*.tmp`` of :func:`atomic_write_bytes` may belong to a write in progress:
    its writer process exists on this machine, or (another machine's, or unnamed) it is recent."""
    p = Path(path)
    m = _TEMP_WRITER.search(p.name)
    if m and m.group(2) == _WRITER.split("@", 1)[1]:
        return process_exists(int(m.group(1)))
    try:
        return time.time() - p.stat().st_mtime < TEMP_GRACE_SECONDS
    except OSError:
        return False


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, rename.

    A killed process leaves either the old file or the new one, never half of either.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_WRITER}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from e
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise write_error(path, e) from e
        raise


#: what to do about each errno a write can meet
_WRITE_ADVICE = {
    errno.ENOSPC: "the disk is full: free space or write elsewhere (--out), then rerun the same command to resume",
    errno.EDQUOT: "the disk quota is used up: free space or write elsewhere (--out), then rerun to resume",
    errno.EACCES: "no permission to write there: choose another folder (--out) or fix its permissions",
    errno.EPERM: "not permitted to write there: choose another folder (--out) or fix its permissions",
    errno.EROFS: "the file system is read-only: write elsewhere (--out)",
    errno.EFBIG: "the file exceeds the size this process may write (ulimit -f) or the file system allows",
    errno.ENOENT: "a folder on the way is missing or was removed: check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
}


def write_error(path: str | os.PathLike, e: OSError) -> WriteError:
    """A :class:`WriteError` naming ``path``, the system's reason and what to do."""
    reason = e.strerror or str(e)
    advice = _WRITE_ADVICE.get(e.errno or -1, "check the path and rerun")
    return WriteError(e.errno or 0, f"cannot write {path}: {reason} [{errno.errorcode.get(e.errno or -1, 'OSError')}]; {advice}")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def atomic_savez(path: str | os.PathLike, compressed: bool = True, **arrays: np.ndarray) -> None:
    """``np.savez`` through :func:`atomic_write_bytes` (never pickles: object arrays are refused)."""
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise TypeError(f"array {k!r} has dtype object; refusing to write a pickled array")
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load an ``.npz`` file into a dict, refusing pickled (object) arrays."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def sha256_arrays(*arrays: np.ndarray) -> str:
    """Content hash of arrays (dtype, shape and bytes), stable across runs and machines."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_dir() -> Path:
    """Folder for derived data (SDF grids, surface samples). ``GRASPFORGE_CACHE_DIR`` overrides it."""
    env = os.environ.get("GRASPFORGE_CACHE_DIR")
    if env:
        p = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        p = Path(base) / "graspforge"
    p.mkdir(parents=True, exist_ok=True)
    return p


def cached_npz(key: str, build: Callable[[], dict[str, np.ndarray]], subdir: str = "") -> dict[str, np.ndarray]:
    """Return the arrays cached under ``key``; build and store them atomically when absent or unreadable."""
    folder = cache_dir() / subdir if subdir else cache_dir()
    path = folder / f"{key}.npz"
    if path.exists():
        try:
            return load_npz(path)
        except Exception:  # a corrupt cache entry is rebuilt, never trusted
            pass
    arrays = build()
    try:
        atomic_savez(path, **arrays)
    except OSError:  # full disk or read-only cache: the result is still good, only not kept
        pass
    return arrays
