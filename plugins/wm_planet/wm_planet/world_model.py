"""PlaNet as a wm world model: :class:`PlaNet` on :class:`wm_core.models.base.WorldModelBase`.

The base checks every argument and state and picks up new checkpoints in
``observe_fn``; this module filters observed rows with the posterior
(:meth:`PlaNet.update_state`), rolls the prior out for proposals
(:meth:`PlaNet.rollout`, all ``P`` proposals — or all ``N * P`` of a batch —
in one compiled call) and builds the training loop (:func:`train_loop`).

State (owned by the caller, never mutated here): ``{"deter": float32
[1, deter_size], "stoch": float32 [1, stoch_size]}`` — the GRU state and
the stochastic state of the posterior after the last observed frame.
``stoch`` is a posterior *sample* when the world model samples (the
default, as PlaNet acts), the posterior mean otherwise.

Observe and predict run in the strategy's cross-replica context, i.e. on
one device; the model's variables live under the strategy given to
:class:`PlaNet` (one strategy per :class:`~wm_planet.model.RecurrentStateSpaceModel`).
"""

from __future__ import annotations

from typing import Any, Sequence

import gin
import numpy as np
import tensorflow as tf

from wm_core.api.contracts import Predictions, State
from wm_core.deprecation import renamed_parameters
from wm_core.loops.training import TrainLoop
from wm_core.models.base import ArraySpec, StateSpec, WorldModelBase, temporary_model_dir
from wm_planet.model import RecurrentStateSpaceModel
from wm_planet.noise import generator
from wm_planet.training import Trainer
from wm_tf.checkpoints import restore_newest

__all__ = ["PlaNet", "train_loop"]


@renamed_parameters(chunk_length="duration")
def train_loop(
    model: RecurrentStateSpaceModel,
    model_dir: str,
    strategy: tf.distribute.Strategy | None = None,
    train_steps: int = 100,
    batch: int = 50,
    duration: int = 50,
    learning_rate: float = 1e-3,
    clip_norm: float = 1000.0,
    adam_epsilon: float = 1e-4,
    stochastic: bool = True,
    max_episodes_in_memory: int = 1000,
    checkpoints_to_keep: int = 3,
    learning_rate_ramp: int = 0,
    seed: int = 0,
) -> TrainLoop:
    """``train_fn(data_path) -> None``: ``train_steps`` steps on ``batch`` chunks of ``duration`` rows.

    A :class:`wm_core.loops.training.TrainLoop` around PlaNet's
    :class:`~wm_planet.training.Trainer`: chunks from one iterator per data
    path kept across calls, every step's metrics to the ``train_step`` hook,
    a checkpoint (model, optimiser, step) in ``model_dir`` after the
    ``train_steps`` steps.  ``learning_rate_ramp``: linear warm-up steps (0:
    none).  Raises ``FileNotFoundError``/``ValueError`` for a missing or
    empty episode directory and
    :class:`wm_core.loops.training.TrainingDivergedError` on a NaN loss.
    """
    trainer = Trainer(
        model, model_dir, learning_rate, adam_epsilon, clip_norm, strategy, stochastic,
        checkpoints_to_keep, learning_rate_ramp,
    )
    return TrainLoop(
        trainer, train_steps, batch, duration, seed=seed, max_episodes_in_memory=max_episodes_in_memory,
    )


class _Rollout:
    """``run(actions float32 [M, H, A], starts {"deter": [M | 1, D], "stoch":
    [M | 1, S]}) -> predictions [M, H, ...]``: the prior rolled open-loop from
    each start (a start of one row is shared by all ``M``).

    Traced once per horizon ``H``, unrolled over its steps; with
    ``jit_compile`` XLA compiles it (once per ``M`` and ``H``), fusing each
    step's elementwise work (the same computation, equal up to float
    rounding; :mod:`wm_planet.noise` draws the same numbers either way).
    """

    def __init__(self, model: RecurrentStateSpaceModel, return_frames: bool, sample: bool, jit_compile: bool):
        self.model = model
        self.return_frames = return_frames
        self.jit_compile = jit_compile
        self.noise = generator(model.seed, "predict") if sample else None
        self.starts_spec = {
            "deter": tf.TensorSpec([None, model.cell.deter_size], tf.float32),
            "stoch": tf.TensorSpec([None, model.cell.stoch_size], tf.float32),
        }
        self.compiled: dict[int, Any] = {}  # horizon -> compiled rollout, unrolled over that horizon

    def _rollout(self, actions: tf.Tensor, starts: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        model = self.model
        features = model.cell.features(model.imagine(actions, starts, self.noise))
        predictions = {"reward": model.reward(features)}
        if self.return_frames:
            predictions["image"] = model.frames(features)
        return predictions

    def __call__(self, actions: np.ndarray, starts: dict[str, np.ndarray]) -> Predictions:
        horizon = actions.shape[1]
        if horizon not in self.compiled:
            action_spec = tf.TensorSpec([None, horizon, self.model.action_dim], tf.float32)
            self.compiled[horizon] = tf.function(
                self._rollout, input_signature=[action_spec, self.starts_spec],
                jit_compile=self.jit_compile, autograph=False,
            )
        return {key: value.numpy() for key, value in self.compiled[horizon](actions, starts).items()}


@gin.configurable(module="planet")
class PlaNet(WorldModelBase):
    """PlaNet as one world model: the four functions over one RSSM.

    :param task: the wm task (its action space sizes the model).
    :param model_dir: checkpoint directory, shared by training (writes) and
        observe (restores the newest); ``None``: a new temporary directory,
        made by the first ``train_fn`` call and removed with the model.
    :param model: the network; default ``RecurrentStateSpaceModel(task=task)``
        at the published sizes.
    :param strategy: the ``tf.distribute`` strategy for all four functions.
    :param sample: observe and predict with sampled states (as PlaNet plans);
        ``False``: posterior and prior means (deterministic).
    :param return_frames: predictions also hold ``image uint8 [P, H, 64, 64, C]``.
    :param jit_compile: compile the rollouts with XLA.
    :param train_settings: keyword arguments of :func:`train_loop`
        (default: 100 steps of 50 chunks of ``duration=50`` rows at 1e-3).
    """

    def __init__(
        self,
        task: Any,
        model_dir: str | None = None,
        model: RecurrentStateSpaceModel | None = None,
        strategy: tf.distribute.Strategy | None = None,
        sample: bool = True,
        return_frames: bool = False,
        jit_compile: bool = True,
        **train_settings: Any,
    ):
        self.model = model or RecurrentStateSpaceModel(task=task)
        self.strategy: tf.distribute.Strategy | None = None  # set by build()
        self._requested_strategy = strategy
        self.action_dim = self.model.action_dim
        self.frame_shape = self.model.frame_size
        self.model_dir = model_dir
        self.train_settings = train_settings
        self._train_loop: TrainLoop | None = None
        self._checkpoint = tf.train.Checkpoint(model=self.model)
        self._posterior = self._compiled_posterior(generator(self.model.seed, "observe") if sample else None)
        # One rollout for predict_fn, one for predict_batch_fn: each its own noise stream.
        self._rollouts = [_Rollout(self.model, return_frames, sample, jit_compile) for _ in range(2)]

    def build(self) -> PlaNet:
        """Create the model's variables under the strategy given (once; observe,
        predict and train call it first); returns ``self``.  Raises
        ``ValueError`` if the model was built under another strategy."""
        if self.strategy is None:
            self.strategy = self.model.build(self._requested_strategy)
        return self

    def _compiled_posterior(self, noise: tf.random.Generator | None):
        model = self.model
        signature = [
            tf.TensorSpec([None, *model.frame_size], tf.uint8),
            tf.TensorSpec([None, model.action_dim], tf.float32),
            {key: tf.TensorSpec(spec.shape, tf.float32) for key, spec in self.state_spec().items()},
        ]

        @tf.function(input_signature=signature, autograph=False)
        def posterior(frames, actions, state):
            states, _ = model.observe(frames[None], actions[None], state, noise)
            return {key: value[:, -1] for key, value in states.items()}

        return posterior

    def state_spec(self) -> StateSpec:
        cell = self.model.cell
        return {
            "deter": ArraySpec((1, cell.deter_size), np.float32),
            "stoch": ArraySpec((1, cell.stoch_size), np.float32),
        }

    def initial_state(self, **kwargs: Any) -> State:
        """The zero state; ``kwargs`` are ignored."""
        return {key: np.zeros(spec.shape, np.float32) for key, spec in self.state_spec().items()}

    def update_state(
        self, frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray, state: dict[str, np.ndarray]
    ) -> State:
        """Filter the ``T`` rows with the posterior, row by row, from ``state``
        (the posterior does not read rewards)."""
        self.build()
        return {key: value.numpy() for key, value in self._posterior(frames, actions, state).items()}

    def rollout(self, future_actions: np.ndarray, state: dict[str, np.ndarray]) -> Predictions:
        """``{"reward": float32 [P, H]}`` (and ``image`` with ``return_frames``):
        the prior from ``state`` for all ``P`` proposals in one compiled call;
        ``reward[:, j]`` is the predicted mean reward for ``future_actions[:, j]``."""
        self.build()
        return self._rollouts[0](future_actions, state)  # one start, shared by every proposal

    def rollout_batch(self, future_actions: np.ndarray, states: Sequence[dict[str, np.ndarray]]) -> Predictions:
        """All ``N * P`` proposals as one rollout; row ``i`` equals
        ``rollout(future_actions[i], states[i])`` exactly without sampling."""
        self.build()
        count, proposals = future_actions.shape[:2]
        starts = {
            key: np.repeat(np.concatenate([state[key] for state in states]), proposals, 0)
            for key in ("deter", "stoch")
        }
        flat = self._rollouts[1](future_actions.reshape(count * proposals, *future_actions.shape[2:]), starts)
        return {key: value.reshape(count, proposals, *value.shape[1:]) for key, value in flat.items()}

    def restore_checkpoint(self, directory: str) -> None:
        """Restore the model's weights from the newest readable checkpoint in ``directory``."""
        self.build()
        restore_newest(self._checkpoint, directory, partial=True)

    def train(self, data_path: str) -> None:
        """Train with :func:`train_loop` (built on the first call) on the episodes under ``data_path``."""
        if self._train_loop is None:
            self.model_dir = self.model_dir or temporary_model_dir(self, "wm-planet-")
            self._train_loop = train_loop(self.model, self.model_dir, self.build().strategy, **self.train_settings)
        self._train_loop(data_path)
