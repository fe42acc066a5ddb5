"""What a project id is: a non-negative integer, never a path. Requests and the model store both check it."""

from __future__ import annotations

import re

__all__ = ["MAX_PROJECT_ID", "UnsafePathError", "check_project_id"]

MAX_PROJECT_ID = 10**12


class UnsafePathError(ValueError):
    """A project id or version name that could escape ``MODEL_DIR`` or is not of the allowed form."""


def check_project_id(project_id: object) -> int:
    """The project id as an int, or :class:`UnsafePathError`. Only ints (and plain digit strings) pass."""
    if isinstance(project_id, bool):
        raise UnsafePathError("project id must be an integer, not a boolean")
    if isinstance(project_id, int):
        pid = project_id
    elif isinstance(project_id, str) and re.fullmatch(r"[0-9]{1,12}", project_id):
        pid = int(project_id)
    else:
        raise UnsafePathError(f"project id must be a non-negative integer, got {type(project_id).__name__}")
    if not 0 <= pid < MAX_PROJECT_ID:
        raise UnsafePathError("project id out of range")
    return pid
