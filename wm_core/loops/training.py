"""The training scaffold every world model's ``train_fn`` shares (no TensorFlow here).

A model plugin supplies a :class:`Trainer` — one optimisation step, save,
and going back to the last saved weights — and gets a complete
``train_fn(data_path)`` from :class:`TrainLoop`:

1. one :class:`wm_core.data.sampling.ChunkIterator` per data path, kept across
   calls (each episode file is read once; new files are picked up; a new
   data path closes the old iterator);
2. every batch checked against the model's shapes before it reaches the
   step (:func:`check_training_batch`);
3. ``train_steps`` steps, each step's metrics reported through
   ``wm_core.api.hooks.active_hooks().train_step`` (the ``train_step`` hook);
4. a non-finite metric stops training: the trainer puts its last saved
   weights back and :class:`TrainingDivergedError` says where and what;
5. a checkpoint after the last step (the trainer refuses to save non-finite
   weights, with the same error).

Training batches are dicts of ``image uint8 [B, L, H, W, C]``, ``action
float32 [B, L, A]`` and ``reward float32 [B, L]`` (``L`` = chunk length;
episode rows as in :mod:`wm_core.api.contracts`).
"""

from __future__ import annotations

import math
import os
from typing import Iterator, Mapping, Protocol

import numpy as np

from wm_core.api.checks import check_int_at_least
from wm_core.api.hooks import active_hooks
from wm_core.data import npz, sampling
from wm_core.deprecation import moved_attributes, renamed_parameters, warn_moved

__all__ = [
    "Batch",
    "TrainLoop",
    "Trainer",
    "TrainingDivergedError",
    "check_training_batch",
    "divergence_error",
]

__getattr__ = moved_attributes(__name__, {"Learner": f"{__name__}.Trainer"})

Batch = Mapping[str, np.ndarray]


class TrainingDivergedError(FloatingPointError):
    """The loss, the gradients or the weights became NaN/inf.

    Nothing was saved; the weights in memory were set back to the last
    checkpoint when there is one (the message says which).
    """


class Trainer(Protocol):
    """What a model plugin supplies to :class:`TrainLoop`.

    ``step`` counts optimisation steps (restored with the checkpoint).
    ``tolerated_nonfinite``: metric names allowed to be non-finite (e.g.
    ``grad_norm`` under a dynamic loss scale, which skips such steps itself).
    """

    name: str
    frame_size: tuple[int, int, int]
    action_dim: int
    tolerated_nonfinite: frozenset[str]

    @property
    def step(self) -> int: ...

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One update on a checked batch; returns the step's metrics as floats."""

    def before_first_step(self, batches: Iterator[Batch]) -> None:
        """Called once before step 0 of a fresh model (e.g. to set output
        statistics from data); may draw batches."""

    def save(self) -> str:
        """Write a checkpoint at ``step``; raise :class:`TrainingDivergedError`
        (after :meth:`restore_last`) rather than save non-finite weights."""

    def restore_last(self) -> str | None:
        """Put the last saved weights (and optimiser, step) back in memory;
        return the checkpoint's path, or ``None`` when there is none."""


def check_training_batch(
    batch: Batch, frame_size: tuple[int, ...], action_dim: int, where: str = "training batch"
) -> dict[str, np.ndarray]:
    """The batch's ``image``/``action``/``reward`` arrays, checked (see module docs).

    Raises ``ValueError`` naming the key, what it is and what was expected.
    Extra keys are dropped.
    """
    expected = {
        "image": (np.uint8, (None, None, *frame_size)),
        "action": (np.float32, (None, None, action_dim)),
        "reward": (np.float32, (None, None)),
    }
    checked = {}
    for key, (dtype, shape) in expected.items():
        if key not in batch:
            raise ValueError(f"{where} has no {key!r}; it has {sorted(batch)}")
        value = np.asarray(batch[key])
        if value.dtype != dtype or value.ndim != len(shape) or any(
            want is not None and have != want for have, want in zip(value.shape, shape)
        ):
            wanted = ", ".join("?" if size is None else str(size) for size in shape)
            raise ValueError(
                f"{where}[{key!r}] is {value.dtype} {value.shape}; expected "
                f"{np.dtype(dtype)} [{wanted}]"
            )
        checked[key] = value
    lengths = {value.shape[:2] for value in checked.values()}
    if len(lengths) != 1:
        raise ValueError(f"{where}: image, action and reward disagree on [B, L]: {sorted(lengths)}")
    return checked


class TrainLoop:
    """``train_fn(data_path) -> None`` around a :class:`Trainer` (see module docs).

    :param trainer: the model's optimisation step and checkpoints (its old
        keyword name ``learner`` still works, with a warning)
    :param train_steps: optimisation steps per call.
    :param batch: chunks per batch.
    :param chunk_length: episode rows per chunk.
    :param seed: seeds the chunk sampling.
    :param max_episodes_in_memory, prefetch: see :class:`~wm_core.data.sampling.ChunkIterator`.
    """

    @renamed_parameters(learner="trainer")
    def __init__(
        self,
        trainer: Trainer,
        train_steps: int,
        batch: int,
        chunk_length: int,
        seed: int = 0,
        max_episodes_in_memory: int = 1000,
        prefetch: int = 2,
    ):
        for name, value in (("train_steps", train_steps), ("batch", batch),
                            ("chunk_length", chunk_length)):
            check_int_at_least(name, value)
        self.trainer = trainer
        self.train_steps = int(train_steps)
        self.batch = int(batch)
        self.chunk_length = int(chunk_length)
        self.seed = seed
        self.max_episodes_in_memory = max_episodes_in_memory
        self.prefetch = prefetch
        self._chunks: tuple[str, sampling.ChunkIterator] | None = None

    @property
    def learner(self) -> Trainer:
        """The old name of :attr:`trainer` (warns)."""
        warn_moved("TrainLoop.learner", "TrainLoop.trainer")
        return self.trainer

    def __call__(self, data_path: str) -> None:
        """Train ``train_steps`` steps on the episodes under ``data_path``, then save.

        Raises ``FileNotFoundError`` for a missing directory, ``ValueError``
        for one without episodes or with episodes of the wrong shapes, and
        :class:`TrainingDivergedError` on non-finite metrics or weights.
        """
        data_path = os.fspath(data_path)
        if not npz.episode_paths(data_path):
            raise ValueError(f"no episode files (*.npz) in {data_path!r}: nothing to train on")
        chunks = self._iterator(data_path)
        trainer = self.trainer
        where = f"{trainer.name} training batch from {data_path!r}"
        if trainer.step == 0:
            trainer.before_first_step(chunks)
        hooks = active_hooks()
        for _ in range(self.train_steps):
            batch = check_training_batch(next(chunks), trainer.frame_size, trainer.action_dim, where)
            metrics = trainer.train_step(batch)
            broken = {
                key: value for key, value in metrics.items()
                if key not in trainer.tolerated_nonfinite and not math.isfinite(value)
            }
            if broken:
                step, restored = trainer.step, trainer.restore_last()
                raise divergence_error(trainer.name, step, restored, broken, data_path)
            hooks.train_step(trainer.step, metrics)
        trainer.save()

    def _iterator(self, data_path: str) -> sampling.ChunkIterator:
        if self._chunks is None or self._chunks[0] != data_path:
            self.close()
            iterator = sampling.ChunkIterator(
                data_path, self.batch, self.chunk_length, seed=self.seed,
                max_episodes_in_memory=self.max_episodes_in_memory, prefetch=self.prefetch,
            )
            self._chunks = (data_path, iterator)
        return self._chunks[1]

    def close(self) -> None:
        """Stop the chunk iterator's prefetching thread (if any)."""
        if self._chunks is not None:
            self._chunks[1].close()
            self._chunks = None


def divergence_error(
    name: str, step: int, restored: str | None, details: Mapping[str, object], where: str
) -> TrainingDivergedError:
    """The error for a model ``name`` that diverged at ``step`` (``restored``:
    the checkpoint whose weights were put back, ``None`` if there was none)."""
    kept = (
        f"the last good checkpoint {restored} was kept and restored" if restored
        else "there is no checkpoint to go back to, so the weights in memory are invalid"
    )
    facts = ", ".join(f"{key}={value}" for key, value in details.items())
    return TrainingDivergedError(
        f"{name} training diverged at step {step} ({facts}) on {where!r}; nothing was saved; {kept}"
    )
