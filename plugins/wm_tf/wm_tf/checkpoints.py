"""Checkpoints for TensorFlow trainers: written under a ``tf.distribute`` strategy, picked up by observe.

* :class:`TrainingCheckpoints` — what a :class:`wm_core.loops.training.Trainer`
  needs: restore the newest checkpoint on construction, save at a step
  (refusing non-finite weights), go back to the last save.  Under a
  multi-worker strategy every worker restores from ``directory`` but only
  the chief writes there; the others save too (the save is a collective
  operation) into a temporary directory that is deleted right after.
* :class:`CheckpointWatcher` — picks up the checkpoints a trainer (maybe in
  another process) writes, for a model's ``observe_fn``: one ``os.stat`` per
  poll while nothing changed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from wm_core.loops.training import divergence_error

__all__ = ["CheckpointWatcher", "TrainingCheckpoints"]


class TrainingCheckpoints:
    """A :class:`tf.train.CheckpointManager` for a trainer (see module docs).

    :param checkpoint: everything a restart needs (model, optimiser, step).
    :param directory: where checkpoints go; its newest one is restored now.
    :param variables: checked for NaN/inf before every save.
    :param name: the model's name, for error messages.
    :param max_to_keep: checkpoints kept on disk.
    :param strategy: the strategy the variables live under.
    :param optional: more objects to save, by name, that checkpoints written
        before they were added lack (restored when present).  Everything in
        ``checkpoint`` must match the newest checkpoint.
    """

    def __init__(
        self,
        checkpoint: tf.train.Checkpoint,
        directory: str,
        variables: Sequence[tf.Variable],
        name: str,
        max_to_keep: int = 3,
        strategy: tf.distribute.Strategy | None = None,
        optional: Mapping[str, Any] | None = None,
    ):
        strategy = strategy or tf.distribute.get_strategy()
        self.checkpoint = checkpoint
        self.directory = os.fspath(directory)
        self.variables = list(variables)
        self.name = name
        self.strategy = strategy
        self.is_chief = strategy.extended.should_checkpoint
        if self.latest:
            checkpoint.restore(self.latest).assert_existing_objects_matched()
        for key, value in (optional or {}).items():
            setattr(checkpoint, key, value)  # saved from now on
        if self.latest and optional:
            tf.train.Checkpoint(**optional).restore(self.latest).expect_partial()
        self.manager = tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep)

    @property
    def latest(self) -> str | None:
        """The newest checkpoint's path in ``directory`` (``None`` before the first save)."""
        return tf.train.latest_checkpoint(self.directory)

    def save(self, step: int) -> str:
        """Write a checkpoint numbered ``step``; its path (a non-chief: the
        chief's path for this step, its own copy already deleted).

        Raises :class:`wm_core.loops.training.TrainingDivergedError` (after
        :meth:`restore_last`) instead of saving non-finite weights.
        """
        broken = [v.name for v in self.variables if not np.all(np.isfinite(v.numpy()))]
        if broken:
            restored = self.restore_last()
            details = {"non-finite variables": ", ".join(broken[:5])}
            raise divergence_error(self.name, step, restored, details, self.directory)
        if self.is_chief:
            path = self.manager.save(checkpoint_number=step)
        else:
            scratch = tempfile.mkdtemp(prefix="wm-worker-checkpoint-")
            try:
                self.checkpoint.save(os.path.join(scratch, "ckpt"))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            path = os.path.join(self.directory, f"ckpt-{step}")
        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # A barrier: no worker goes on (and maybe restores) before the chief's file is complete.
            self.strategy.reduce(
                tf.distribute.ReduceOp.SUM, self.strategy.run(lambda: tf.constant(1.0)), axis=None
            )
        return path

    def restore_last(self) -> str | None:
        """Put the newest checkpoint back in memory; its path, or ``None`` if none exists."""
        last = self.latest
        if last:
            self.checkpoint.restore(last)
        return last


class CheckpointWatcher:
    """Restore ``checkpoint`` from ``directory`` whenever a newer checkpoint appears.

    A poll costs one ``os.stat`` of the ``checkpoint`` state file that
    :class:`tf.train.CheckpointManager` rewrites (atomically) after every
    save; the directory is read only when that file changed.  Objects the
    watched checkpoint lacks (the optimiser) are not required.
    """

    def __init__(self, checkpoint: tf.train.Checkpoint, directory: str):
        self.directory = os.fspath(directory)
        self.checkpoint = checkpoint
        self.restored: str | None = None
        self._state_file = os.path.join(self.directory, "checkpoint")
        self._stamp: tuple[int, int] | None = None

    def poll(self) -> bool:
        """Restore the newest checkpoint if it is new; whether one was restored."""
        try:
            info = os.stat(self._state_file)
        except FileNotFoundError:
            return False
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        latest = tf.train.latest_checkpoint(self.directory)
        if latest is None or latest == self.restored:
            return False
        self.checkpoint.restore(latest).expect_partial()
        self.restored = latest
        return True
