"""TD-MPC2 as a wm world model: :class:`TDMPC`.

::

    world_model = TDMPC(task, model_dir)        # the wm.world_models entry point 'tdmpc'
    world_model.predict_fn, world_model.propose_fn, world_model.train_fn, ...

State (owned by the caller, never mutated here): ``{"frames": uint8 [K, h,
w, C]`` the newest ``K = frame_stack`` frames (oldest first; before ``K``
frames were seen the first one fills the rest), ``"seen": int64 []`` frames
observed this episode, ``"latent": float32 [1, Z]`` the encoding of
``frames``}``.

``predict_fn(future_actions [P, H, A], state)`` rolls the latent dynamics
open-loop: ``reward float32 [P, H]`` (``reward[:, j]`` for
``future_actions[:, j]``) and ``value float32 [P]``, the value of the
latent after the last action under the policy prior (the Q-ensemble's mean
at the prior's mean action).  ``H`` may not exceed the horizon the model
trains over.  Deterministic: same actions and state, same predictions.

``propose_fn(state, horizon, count, seed=0) -> float32 [count, horizon, A]``
(the optional contract member of :mod:`wm_core.api.contracts`): ``count``
action sequences drawn from the policy prior, rolled through the dynamics
from the state's latent; the same ``seed`` draws the same sequences.

Everything is gin-configurable under the module ``tdmpc``; a config hands
the model's functions to a planner and the loop with ``@wm.predict_fn()``
and the rest of :mod:`wm_core.api.configurables`.
"""

from __future__ import annotations

from typing import Any, Sequence

import gin
import numpy as np
import tensorflow as tf

from wm_core.api.contracts import Predictions, ProposeFn, State
from wm_core.loops.training import TrainLoop
from wm_core.models.base import ArraySpec, StateSpec, WorldModelBase, check_state, temporary_model_dir
from wm_tdmpc.networks import TDMPCModel
from wm_tdmpc.training import Trainer
from wm_tf.checkpoints import restore_newest

__all__ = ["TDMPC", "PROPOSAL_STREAM"]

#: The stateless-random stream of ``propose_fn``'s draws.
PROPOSAL_STREAM = 1


@gin.configurable(module="tdmpc")
class TDMPC(WorldModelBase):
    """TD-MPC2's model as one world model (see module docs).

    :param task: a wm task with frames and a ``Box`` action space.
    :param model_dir: checkpoint directory, shared by training (writes) and
        observe (restores the newest); ``None``: a new temporary directory, removed with the model.
    :param model: the networks; default ``TDMPCModel(task)`` (gin-configurable).
    :param train_steps: updates per ``train_fn`` call.
    :param batch: chunks per update (of ``frame_stack + horizon + td_steps - 1`` rows).
    :param seed: seeds the order chunks are drawn in.
    :param trainer_settings: keyword arguments of :class:`wm_tdmpc.training.Trainer`
        (learning rate, rho, tau, ... as published by default).
    """

    def __init__(
        self,
        task: Any,
        model_dir: str | None = None,
        model: TDMPCModel | None = None,
        train_steps: int = 100,
        batch: int = 64,
        seed: int = 0,
        **trainer_settings: Any,
    ):
        self.model = model or TDMPCModel(task)
        self.model_dir = model_dir or temporary_model_dir(self, "wm-tdmpc-")
        self.action_dim = self.model.action_dim
        self.frame_shape = tuple(self.model.frame_size)
        self.horizon = self.model.horizon
        self.trainer = Trainer(self.model, self.model_dir, **trainer_settings)
        self.train = TrainLoop(self.trainer, train_steps, batch, self.trainer.chunk_length, seed=seed)
        self._rollouts: dict[int, Any] = {}
        self._proposals: dict[int, Any] = {}
        self._encode = tf.function(self.model.encode, autograph=False)

    # -- WorldModelBase -----------------------------------------------------------

    def state_spec(self) -> StateSpec:
        return {
            "frames": ArraySpec((self.model.frame_stack, *self.frame_shape), np.uint8),
            "seen": ArraySpec((), np.int64),
            "latent": ArraySpec((1, self.model.latent_size), np.float32),
        }

    def initial_state(self, **kwargs: Any) -> State:
        """No frame seen yet (``kwargs`` are ignored)."""
        return {
            "frames": np.zeros((self.model.frame_stack, *self.frame_shape), np.uint8),
            "seen": np.array(0, np.int64),
            "latent": np.zeros((1, self.model.latent_size), np.float32),
        }

    def update_state(
        self, frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray, state: dict[str, np.ndarray]
    ) -> State:
        """Push ``frames`` onto the stack and encode it (actions and rewards are not needed)."""
        stack = state["frames"] if state["seen"] else np.repeat(frames[:1], self.model.frame_stack, 0)
        stack = np.concatenate([stack, frames])[-self.model.frame_stack:]
        joined = np.concatenate(list(stack), axis=-1)[None]  # [1, h, w, K * C], newest last
        return {
            "frames": stack,
            "seen": np.array(state["seen"] + len(frames), np.int64),
            "latent": self._encode(joined).numpy(),
        }

    def rollout(self, future_actions: np.ndarray, state: dict[str, np.ndarray], **options: Any) -> Predictions:
        return self._predict(future_actions, state["latent"])

    def rollout_batch(
        self, future_actions: np.ndarray, states: Sequence[dict[str, np.ndarray]], **options: Any
    ) -> Predictions:
        count, proposals = future_actions.shape[:2]
        latents = np.repeat(np.concatenate([state["latent"] for state in states]), proposals, 0)
        flat = self._predict(future_actions.reshape(count * proposals, *future_actions.shape[2:]), latents)
        return {key: value.reshape(count, proposals, *value.shape[1:]) for key, value in flat.items()}

    def restore_checkpoint(self, directory: str) -> None:
        """Restore the networks from the newest readable checkpoint in ``directory``."""
        restore_newest(tf.train.Checkpoint(model=self.model), directory, partial=True)

    # -- the optional contract member -------------------------------------------------

    def propose(self, state: State, horizon: int, count: int, seed: int = 0) -> np.ndarray:
        """``float32 [count, horizon, A]`` action sequences of the policy prior (see module docs)."""
        where = f"{self.name} propose_fn"
        checked = check_state(state, self.state_spec(), where)
        self._check_horizon(horizon, where)
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"{where}: count must be an integer >= 1, got {count!r}")
        if horizon not in self._proposals:
            self._proposals[horizon] = tf.function(
                lambda latent, number, key: self._propose_graph(latent, number, key, horizon),
                input_signature=[tf.TensorSpec([1, self.model.latent_size], tf.float32),
                                 tf.TensorSpec([], tf.int32), tf.TensorSpec([2], tf.int64)],
                autograph=False,
            )
        key = tf.constant([int(seed), PROPOSAL_STREAM], tf.int64)
        return self._proposals[horizon](checked["latent"], tf.constant(count, tf.int32), key).numpy()

    @property
    def propose_fn(self) -> ProposeFn:
        return self.propose

    # -- computation ----------------------------------------------------------------------

    def _check_horizon(self, horizon: int, where: str) -> None:
        if horizon > self.horizon:
            raise ValueError(
                f"{where}: a horizon of {horizon} steps is longer than the {self.horizon} the model "
                f"trains its dynamics over (TDMPCModel.horizon); plan over at most {self.horizon} steps "
                "(the predicted value covers what lies beyond)"
            )

    def _predict(self, actions: np.ndarray, latents: np.ndarray) -> Predictions:
        horizon = actions.shape[1]
        self._check_horizon(horizon, f"{self.name} predict_fn")
        if horizon not in self._rollouts:
            self._rollouts[horizon] = tf.function(
                self._rollout_graph,
                input_signature=[tf.TensorSpec([None, horizon, self.action_dim], tf.float32),
                                 tf.TensorSpec([None, self.model.latent_size], tf.float32)],
                autograph=False,
            )
        return {key: value.numpy() for key, value in self._rollouts[horizon](actions, latents).items()}

    def _rollout_graph(self, actions: tf.Tensor, latents: tf.Tensor) -> dict[str, tf.Tensor]:
        model = self.model
        latent = tf.broadcast_to(latents, [tf.shape(actions)[0], model.latent_size])
        rewards = []
        for step in tf.unstack(actions, axis=1):
            rewards.append(model.two_hot.decode(model.reward(latent, step)))
            latent = model.next(latent, step)
        return {"reward": tf.stack(rewards, 1), "value": model.value(latent)}

    def _propose_graph(self, latent: tf.Tensor, count: tf.Tensor, key: tf.Tensor, horizon: int) -> tf.Tensor:
        model = self.model
        noise = tf.random.stateless_normal([horizon, count, self.action_dim], key)
        latent = tf.repeat(latent, count, 0)
        actions = []
        for step in range(horizon):
            action, _ = model.policy_action(latent, noise[step])
            actions.append(action)
            latent = model.next(latent, action)
        return tf.stack(actions, 1)
