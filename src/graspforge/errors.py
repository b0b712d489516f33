"""Exceptions raised on bad user input. Each message names the file or item at fault."""


class GraspforgeError(Exception):
    """Base class for every error graspforge raises on purpose."""


class MeshLoadError(GraspforgeError, ValueError):
    """A mesh file is missing, unreadable, empty or unusable (e.g. no inside/outside)."""


class ObjectMismatchError(MeshLoadError):
    """The mesh found at a grasp file's recorded object source is not the one its grasps were made for."""


class HandLoadError(GraspforgeError, ValueError):
    """A hand description (URDF/MJCF/JSON/built-in data) is missing, malformed or inconsistent."""


class UnknownNameError(GraspforgeError, KeyError):
    """A built-in hand, object or grasp type name that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class WriteError(GraspforgeError, OSError):
    """A file could not be written (full disk, no permission, read-only file system, missing folder).
    The message names the file and what to do; files finished before it are intact."""

    def __str__(self) -> str:
        return str(self.args[1]) if len(self.args) > 1 else super().__str__()
