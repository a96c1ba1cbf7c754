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
* :func:`restore_newest` — what both restore with, and a plugin's
  ``restore_checkpoint``: the newest checkpoint that can be read.

Faults: a newest checkpoint that cannot be read (truncated, corrupt, a file
missing) is skipped with a ``RuntimeWarning`` and the one before it restored;
the trainer then writes that step again.  A full disk during a save raises
:class:`wm_core.data.atomic.DiskFullError` naming the checkpoint, after
removing what the save had written of it: the checkpoint state file still
names the previous checkpoint, which a restarted run resumes from.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from wm_core.data.atomic import DiskFullError
from wm_core.loops.training import divergence_error

__all__ = ["CheckpointWatcher", "TrainingCheckpoints", "restore_newest"]

# What reading a damaged checkpoint raises: a truncated data file an
# IndexError ("Read less bytes than requested"), a changed byte a
# DataLossError (checksum), a truncated index file or a missing file an OpError.
_UNREADABLE = (tf.errors.OpError, IndexError)
_DISK_FULL_MESSAGES = ("No space left on device", "Disk quota exceeded")


def restore_newest(checkpoint: tf.train.Checkpoint, directory: str, partial: bool = False) -> str | None:
    """Restore into ``checkpoint`` the newest checkpoint in ``directory`` that
    can be read; its path, or ``None`` when ``directory`` has no checkpoint.

    The checkpoints the state file lists are tried newest first; one that
    cannot be read is skipped with a ``RuntimeWarning`` naming it.  With
    ``partial``, objects the checkpoint lacks (or has more of) are not
    required; else everything in ``checkpoint`` must match
    (``AssertionError``).  Raises ``RuntimeError`` when none can be read.
    """
    state = tf.train.get_checkpoint_state(directory)
    if state is None or not state.model_checkpoint_path:
        return None
    paths = [path for path in state.all_model_checkpoint_paths if path != state.model_checkpoint_path]
    failures = []
    for path in [state.model_checkpoint_path, *reversed(paths)]:
        try:
            status = checkpoint.restore(path)
        except _UNREADABLE as error:
            reason = f"{type(error).__name__}: {str(error).strip().splitlines()[-1]}"
            failures.append(f"{path} ({reason})")
            warnings.warn(f"checkpoint {path} cannot be read ({reason}); trying the one before it",
                          RuntimeWarning, stacklevel=2)
            continue
        if partial:
            status.expect_partial()
        else:
            status.assert_existing_objects_matched()
        return path
    raise RuntimeError(f"no checkpoint in {directory} can be read: {'; '.join(failures)}")


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
        restored = restore_newest(checkpoint, self.directory)
        for key, value in (optional or {}).items():
            setattr(checkpoint, key, value)  # saved from now on
        if restored and optional:
            tf.train.Checkpoint(**optional).restore(restored).expect_partial()
        self.manager = tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep)

    @property
    def latest(self) -> str | None:
        """The newest checkpoint's path in ``directory`` (``None`` before the first save)."""
        return tf.train.latest_checkpoint(self.directory)

    def save(self, step: int) -> str:
        """Write a checkpoint numbered ``step``; its path (a non-chief: the
        chief's path for this step, its own copy already deleted).

        Raises :class:`wm_core.loops.training.TrainingDivergedError` (after
        :meth:`restore_last`) instead of saving non-finite weights, and
        :class:`wm_core.data.atomic.DiskFullError` when the disk is full
        (nothing of this checkpoint left behind; the weights in memory stay).
        """
        broken = [v.name for v in self.variables if not np.all(np.isfinite(v.numpy()))]
        if broken:
            restored = self.restore_last()
            details = {"non-finite variables": ", ".join(broken[:5])}
            raise divergence_error(self.name, step, restored, details, self.directory)
        if self.is_chief:
            try:
                path = self.manager.save(checkpoint_number=step)
            except tf.errors.OpError as error:
                if not any(message in error.message for message in _DISK_FULL_MESSAGES):
                    raise
                self._remove_unlisted(step)
                raise DiskFullError("checkpoint", os.path.join(self.directory, f"ckpt-{step}")) from error
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
        """Put the newest readable checkpoint back in memory (see
        :func:`restore_newest`); its path, or ``None`` if none exists."""
        return restore_newest(self.checkpoint, self.directory, partial=True)

    def _remove_unlisted(self, step: int) -> None:
        """Delete what a failed save of ``ckpt-<step>`` left: its temporary
        directory, the checkpoint state file's temporaries, and its files
        unless the state file lists them (an earlier save of that step)."""
        prefix = os.path.join(self.directory, f"ckpt-{step}")
        state = tf.train.get_checkpoint_state(self.directory)
        listed = prefix in (state.all_model_checkpoint_paths if state else ())
        leftovers = glob.glob(f"{glob.escape(prefix)}_temp*")
        leftovers += glob.glob(os.path.join(glob.escape(self.directory), "checkpoint.tmp*"))
        leftovers += [] if listed else glob.glob(f"{glob.escape(prefix)}.*")
        for path in leftovers:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.remove(path)


class CheckpointWatcher:
    """Restore ``checkpoint`` from ``directory`` whenever a newer checkpoint appears.

    A poll costs one ``os.stat`` of the ``checkpoint`` state file that
    :class:`tf.train.CheckpointManager` rewrites (atomically) after every
    save; the directory is read only when that file changed.  Objects the
    watched checkpoint lacks (the optimiser) are not required; a newest
    checkpoint that cannot be read is skipped (:func:`restore_newest`).
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
        self.restored = restore_newest(self.checkpoint, self.directory, partial=True)
        return True
