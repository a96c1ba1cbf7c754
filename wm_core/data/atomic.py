"""Atomic text files: a reader sees the old file or the new one, never a part."""

from __future__ import annotations

import os

__all__ = ["write_text_atomically"]


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, flush it to disk, rename it over ``path``."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
