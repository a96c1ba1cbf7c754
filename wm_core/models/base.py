"""The base every world-model plugin builds on: the contract's chores, written once.

:class:`WorldModelBase` is a :class:`wm_core.api.contracts.WorldModel` whose
``reset``/``observe``/``predict``/``predict_batch`` check what comes in and
then call the plugin's own methods with checked NumPy arrays:

========================================  =====================================================
the plugin writes                         the base does, before calling it
========================================  =====================================================
:meth:`~WorldModelBase.state_spec`        —
:meth:`~WorldModelBase.initial_state`     checks the state against the spec (``reset``)
:meth:`~WorldModelBase.update_state`      checks frames/actions/rewards and the state; picks
                                          up a new checkpoint (``observe``)
:meth:`~WorldModelBase.rollout`           checks ``future_actions [P, H, A]`` (``P, H >= 1``)
                                          and the state (``predict``)
:meth:`~WorldModelBase.rollout_batch`     checks ``[N, P, H, A]`` and the ``N`` states
(optional)                                (``predict_batch``); default: one :meth:`rollout`
                                          per state
:meth:`~WorldModelBase.restore_checkpoint` called by ``observe`` when the checkpoint state file
(optional)                                in ``model_dir`` changed (one ``os.stat`` per call)
:meth:`~WorldModelBase.train`             — (the plugin's training step in
                                          :class:`wm_core.loops.training.TrainLoop`)
========================================  =====================================================

The subclass sets ``action_dim`` (``A``), ``frame_shape`` (``(H, W, C)``, or
``None`` for a model that accepts any frame size) and ``model_dir`` (the
checkpoint directory, or ``None``) in its constructor.  Nothing here imports
TensorFlow: a TensorFlow plugin restores its checkpoints itself in
:meth:`~WorldModelBase.restore_checkpoint`.

A model given no checkpoint directory makes one with
:func:`temporary_model_dir`, removed with the model.

The state is a ``dict`` of NumPy arrays, owned by the caller and never
mutated; :class:`ArraySpec` declares each entry's shape and dtype.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from wm_core.api.checks import check_future_actions, check_observe_args
from wm_core.api.contracts import ContractError, Predictions, State, WorldModel, batched

__all__ = ["ArraySpec", "StateSpec", "CheckpointPoller", "WorldModelBase", "check_state", "temporary_model_dir"]


def temporary_model_dir(owner: object, prefix: str) -> str:
    """A new empty directory for ``owner``'s checkpoints, removed with everything in it
    when ``owner`` is garbage-collected or the interpreter exits, whichever comes first."""
    path = tempfile.mkdtemp(prefix=prefix)
    weakref.finalize(owner, shutil.rmtree, path, ignore_errors=True)
    return path


@dataclass(frozen=True)
class ArraySpec:
    """One state entry: ``shape`` (``None`` for a dimension of any size) and ``dtype``."""

    shape: tuple[int | None, ...]
    dtype: Any

    def matches(self, array: np.ndarray) -> bool:
        """Whether ``array`` has exactly this dtype and a matching shape."""
        return (
            array.dtype == np.dtype(self.dtype)
            and array.ndim == len(self.shape)
            and all(size is None or size == actual for size, actual in zip(self.shape, array.shape))
        )

    def __str__(self) -> str:
        sizes = ", ".join("?" if size is None else str(size) for size in self.shape)
        return f"{np.dtype(self.dtype)} [{sizes}]"


StateSpec = Mapping[str, ArraySpec]


def check_state(state: Any, spec: StateSpec, where: str = "state") -> dict[str, np.ndarray]:
    """``state`` checked against ``spec``: a ``dict`` with exactly the spec's
    keys, each value an array of the declared dtype and shape.  Returns a new
    ``dict`` of NumPy arrays (the caller's state is not touched); raises
    :class:`~wm_core.api.contracts.ContractError` naming the first mismatch."""
    if not isinstance(state, Mapping) or sorted(state) != sorted(spec):
        keys = sorted(state) if isinstance(state, Mapping) else type(state).__name__
        raise ContractError(f"{where}: the state must be a dict with keys {sorted(spec)}, got {keys}")
    checked = {}
    for key, array_spec in spec.items():
        value = np.asarray(state[key])
        if not array_spec.matches(value):
            raise ContractError(
                f"{where}: state[{key!r}] is {value.dtype} {value.shape}, expected {array_spec}"
            )
        checked[key] = value
    return checked


class CheckpointPoller:
    """Notices when a checkpoint state file changes, at one ``os.stat`` per poll.

    Checkpoint writers (``tf.train.CheckpointManager``, ``np.savez`` followed
    by an atomic rename) replace one file after every save; its modification
    time, size and inode identify the save.  A missing file is "no checkpoint".
    """

    def __init__(self) -> None:
        self._stamps: dict[str, tuple[int, int, int]] = {}

    def changed(self, path: str) -> bool:
        """Whether ``path`` exists and differs from the last time this returned ``True`` for it."""
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return False
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        if self._stamps.get(path) == stamp:
            return False
        self._stamps[path] = stamp
        return True


class WorldModelBase(WorldModel):
    """A world model whose contract chores the base does (see module docs).

    :attr:`action_dim` (``A``), :attr:`frame_shape` and :attr:`model_dir`
    are set by the subclass.  :attr:`checkpoint_file`: the file in
    ``model_dir`` that every save rewrites (``"checkpoint"``, TensorFlow's
    state file, by default).
    """

    action_dim: int
    frame_shape: tuple[int, int, int] | None = None
    model_dir: str | None = None
    checkpoint_file: str = "checkpoint"

    # -- what a plugin writes --------------------------------------------------

    def state_spec(self) -> StateSpec:
        """The state's entries: ``{name: ArraySpec(shape, dtype)}``."""
        raise NotImplementedError

    def initial_state(self, **kwargs: Any) -> State:
        """The state before the first frame of an episode (``kwargs`` as
        ``reset_fn``'s, with at least ``seed``)."""
        raise NotImplementedError

    def update_state(
        self, frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray, state: dict[str, np.ndarray]
    ) -> State:
        """The state after the ``T`` new rows ``frames uint8 [T, H, W, C]``,
        ``actions float32 [T, A]``, ``rewards float32 [T]`` (checked; ``T >=
        1``).  ``state`` is checked against :meth:`state_spec`; return a new one."""
        raise NotImplementedError

    def rollout(self, future_actions: np.ndarray, state: dict[str, np.ndarray], **options: Any) -> Predictions:
        """Predictions for ``future_actions float32 [P, H, A]`` (``P, H >= 1``)
        from the checked ``state``, as ``predict_fn`` returns them."""
        raise NotImplementedError

    def rollout_batch(
        self, future_actions: np.ndarray, states: Sequence[dict[str, np.ndarray]], **options: Any
    ) -> Predictions:
        """``future_actions float32 [N, P, H, A]`` and ``N`` checked states ->
        ``[N, P, H]``-led predictions.  Default: one :meth:`rollout` per state;
        override with a truly batched computation."""
        return batched(lambda actions, state: self.rollout(actions, state, **options))(
            future_actions, states
        )

    def restore_checkpoint(self, directory: str) -> None:
        """Load the newest checkpoint in ``directory`` (called when
        :attr:`checkpoint_file` there changed).  Default: nothing to load.

        A newest checkpoint that cannot be read (truncated, corrupt) must
        not stop the run: restore the one before it, with a warning
        (:func:`wm_tf.checkpoints.restore_newest` does this for TensorFlow
        checkpoints)."""

    # -- the contract ----------------------------------------------------------

    @property
    def name(self) -> str:
        """What error messages call this model (the class name)."""
        return type(self).__name__

    def reset(self, **kwargs: Any) -> State:
        """``reset_fn``: :meth:`initial_state`, checked against :meth:`state_spec`."""
        state = self.initial_state(**kwargs)
        check_state(state, self.state_spec(), f"{self.name} reset_fn (its initial_state)")
        return state

    def observe(
        self, last_frames: np.ndarray, last_actions: np.ndarray, last_rewards: np.ndarray, state: State
    ) -> State:
        """``observe_fn``: checks, checkpoint pick-up, :meth:`update_state`."""
        where = f"{self.name} observe_fn"
        frames, actions, rewards = check_observe_args(
            last_frames, last_actions, last_rewards, frame_shape=self.frame_shape,
            action_dim=self.action_dim, where=where,
        )
        checked = check_state(state, self.state_spec(), where)
        self.poll_checkpoint()
        return self.update_state(frames, actions, rewards, checked)

    def predict(self, future_actions: np.ndarray, state: State, **options: Any) -> Predictions:
        """``predict_fn``: checks, then :meth:`rollout` (``options`` go to it)."""
        where = f"{self.name} predict_fn"
        actions = self._checked_actions(future_actions, where, batch=False)
        return self.rollout(actions, check_state(state, self.state_spec(), where), **options)

    def predict_batch(self, future_actions: np.ndarray, states: Sequence[State], **options: Any) -> Predictions:
        """``predict_batch_fn``: checks, then :meth:`rollout_batch`."""
        where = f"{self.name} predict_batch_fn"
        actions = self._checked_actions(future_actions, where, batch=True)
        if len(states) != len(actions):
            raise ContractError(
                f"{where}: future_actions has {len(actions)} rows of proposals but {len(states)} states"
            )
        spec = self.state_spec()
        checked = [check_state(state, spec, f"{where} (state {index})") for index, state in enumerate(states)]
        return self.rollout_batch(actions, checked, **options)

    def poll_checkpoint(self) -> bool:
        """Call :meth:`restore_checkpoint` if :attr:`checkpoint_file` in
        :attr:`model_dir` changed since the last poll; whether it did."""
        if self.model_dir is None:
            return False
        poller = self.__dict__.setdefault("_checkpoint_poller", CheckpointPoller())
        if not poller.changed(os.path.join(self.model_dir, self.checkpoint_file)):
            return False
        self.restore_checkpoint(self.model_dir)
        return True

    def _checked_actions(self, future_actions: Any, where: str, batch: bool) -> np.ndarray:
        actions = check_future_actions(future_actions, self.action_dim, where, batch=batch)
        if 0 in actions.shape[:-1]:
            lead = "N, P, H" if batch else "P, H"
            raise ContractError(
                f"{where}: future_actions has shape {actions.shape}; it needs [{lead}] >= 1 "
                "(at least one proposal of at least one step)"
            )
        return actions
