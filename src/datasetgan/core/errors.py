"""Errors meant for users.

A ``UserError`` says what is wrong with the user's input (file, key or flag at
fault, and what was expected). The CLI prints it without a traceback; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input: the message names the file, key or flag at fault."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read safely or does not fit the network."""

    def __init__(self, path: str | Path, message: str):
        self.path, self.message = str(path), message
        super().__init__(f"{path}: {message}")

    def __reduce__(self):
        # Rebuild from both arguments, so the error survives a data-loader worker.
        return type(self), (self.path, self.message)


class LabelError(UserError):
    """A label file or label spec that does not fit."""

    def __init__(self, path: str | Path, message: str):
        self.path, self.message = str(path), message
        super().__init__(f"{path}: {message}")

    def __reduce__(self):
        return type(self), (self.path, self.message)


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a ``Path`` if it exists, else raise a ``UserError``."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: {what} not found")
    return path
