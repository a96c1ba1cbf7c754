"""Atomic files, and a full disk named: a reader sees the old file or the new one, never a part.

* :func:`write_text_atomically` writes a temporary file beside the target
  and renames it over the target; a failed write removes the temporary.
  :func:`writing_atomically` does it for any writer (episode files).
* :class:`DiskFullError` is what writers of run files (episodes,
  checkpoints, these text files) raise when the disk is full
  (``ENOSPC``/``EDQUOT``): one line naming what was being written, after the
  writer removed what it had written of it.  :func:`naming_a_full_disk`
  turns a full disk met inside a ``with`` block into one.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import IO, Iterator

__all__ = [
    "DISK_FULL_ERRNOS", "DiskFullError", "naming_a_full_disk", "write_text_atomically", "writing_atomically",
]

#: The ``errno`` values of a full disk: no space left, disk quota exceeded.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFullError(OSError):
    """No space left on device while writing ``what`` (``"episode"``,
    ``"checkpoint"``, ``"file"``) at ``path``; nothing partial of it is left
    visible, so the run can go on from where it was once there is space."""

    def __init__(self, what: str, path: str):
        super().__init__(errno.ENOSPC, f"no space left on device while writing {what} {path}")
        self.what = what
        self.path = path

    def __str__(self) -> str:
        return self.strerror


@contextlib.contextmanager
def naming_a_full_disk(what: str, path: str) -> Iterator[None]:
    """Re-raise an ``OSError`` of a full disk met in the block as
    :class:`DiskFullError` ``(what, path)`` (the original as its cause);
    other errors pass unchanged.  The block removes its partial output."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as error:
        if error.errno not in DISK_FULL_ERRNOS:
            raise
        raise DiskFullError(what, path) from error


@contextlib.contextmanager
def writing_atomically(path: str, temporary: str, what: str, mode: str = "w") -> Iterator[IO]:
    """The file ``temporary`` (beside ``path``) opened with ``mode``; after
    the block it is flushed to disk and renamed over ``path``.  If the block
    or any of that fails, the temporary is removed and ``path`` is
    untouched; a full disk raises :class:`DiskFullError` ``(what, path)``."""
    try:
        with naming_a_full_disk(what, path):
            with open(temporary, mode) as file:
                yield file
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`writing_atomically` (the
    temporary ``<path>.<pid>.tmp``; a full disk: :class:`DiskFullError`)."""
    with writing_atomically(path, f"{path}.{os.getpid()}.tmp", "file") as file:
        file.write(text)
