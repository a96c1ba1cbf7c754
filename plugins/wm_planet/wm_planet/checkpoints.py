"""Pick up the checkpoints a trainer (maybe in another process) writes.

:class:`CheckpointWatcher` restores the model weights of the newest
checkpoint in ``model_dir`` when one appears.  A poll costs one ``os.stat``
of the ``checkpoint`` state file that :class:`tf.train.CheckpointManager`
rewrites (atomically) after every save; the directory is read only when
that file changed.
"""

from __future__ import annotations

import os

import tensorflow as tf

__all__ = ["CheckpointWatcher"]


class CheckpointWatcher:
    """Restore ``tf.train.Checkpoint(model=model)`` from ``model_dir`` when it changes."""

    def __init__(self, model: tf.Module, model_dir: str):
        self.model_dir = os.fspath(model_dir)
        self.checkpoint = tf.train.Checkpoint(model=model)
        self.restored: str | None = None
        self._state_file = os.path.join(self.model_dir, "checkpoint")
        self._stamp: tuple[int, int] | None = None

    def poll(self) -> bool:
        """Restore the newest checkpoint if it is new; return whether one was restored."""
        try:
            info = os.stat(self._state_file)
        except FileNotFoundError:
            return False
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        latest = tf.train.latest_checkpoint(self.model_dir)
        if latest is None or latest == self.restored:
            return False
        self.checkpoint.restore(latest).expect_partial()  # the optimiser is not needed here
        self.restored = latest
        return True
