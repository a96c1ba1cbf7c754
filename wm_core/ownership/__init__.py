"""A run owns its directory: its children die with it, and one writer holds it.

Two mechanisms, standard library only (no TensorFlow):

* :mod:`wm_core.ownership.parent_death` — a child process calls
  :func:`die_with_parent` first thing, and is sent ``SIGTERM`` when the
  process that started it dies, however it dies (``SIGKILL`` included).  The
  parent starts it with :func:`child_environment`, which tells the child
  whose death to follow.  :func:`descendants` and :func:`is_running` check
  that none outlived it.
* :mod:`wm_core.ownership.lock` — :class:`DirectoryLock`: one holder per
  directory and role (the ``"run"`` lock of a run directory, the
  ``"checkpoints"`` lock of a ``model_dir``).  A second holder gets
  :class:`DirectoryInUseError` naming the process that holds it; a lock whose
  holder died is free again and taken over with a log note.  Readers
  (``wm-run evaluate``, TensorBoard) never take it.
"""

from __future__ import annotations

from wm_core.ownership.lock import CHECKPOINTS, RUN, DirectoryInUseError, DirectoryLock
from wm_core.ownership.parent_death import (
    PARENT_PID_VARIABLE,
    child_environment,
    descendants,
    die_with_parent,
    is_running,
)

__all__ = [
    "CHECKPOINTS",
    "PARENT_PID_VARIABLE",
    "RUN",
    "DirectoryInUseError",
    "DirectoryLock",
    "child_environment",
    "descendants",
    "die_with_parent",
    "is_running",
]
