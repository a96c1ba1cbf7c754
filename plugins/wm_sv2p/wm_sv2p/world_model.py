"""SV2P as a wm world model: :class:`SV2P` on :class:`wm_core.models.base.WorldModelBase`, and its factories.

``SV2P(task=..., input_length=2, output_length=10, model_dir=...)`` is the
world model; ``create_reset_fn``, ``create_observe_fn``,
``create_predict_fn`` and ``create_train_fn`` hand out the functions one by
one (as the gin configs build them).  The base checks every argument and
state and picks up new checkpoints in ``observe_fn``.

State
-----
A dict of NumPy arrays owned by the caller (never mutated here):

* ``image`` ``uint8 [k, H, W, C]``, ``action`` ``float32 [k, A]``,
  ``reward`` ``float32 [k]`` — the ``k <= input_length`` newest episode rows;
* ``seed`` ``int64 []`` — the ``seed`` given to ``reset_fn`` (0 if none);
* ``observed`` ``int64 []`` — rows observed since the reset.

Prediction
----------
``predict_fn`` conditions on the context window once (batch 1), then tiles
the conv-LSTM state to all ``P`` proposals and rolls them out as one batch.
Every proposal of one call shares one latent ``z ~ N(0, I)``, drawn from the
stateless seed ``(seed, observed)``: the proposals are compared under the
same sampled future (common random numbers), and ``predict_fn`` is a pure
function of its arguments.  A new episode seed, or one more observed row,
gives a new latent.  While fewer than ``input_length`` rows were observed the
context is padded at the front by repeating the first observed frame, with
zero actions and rewards ("nothing moved").
"""

from __future__ import annotations

import functools
from typing import Any

import gin
import numpy as np
import tensorflow as tf

from wm_core.api import spaces
from wm_core.api.contracts import Predictions, State, TrainFn
from wm_core.loops.training import TrainLoop
from wm_core.models.base import ArraySpec, StateSpec, WorldModelBase, temporary_model_dir
from wm_sv2p.model import FramePredictor, to_uint8, to_unit_float
from wm_sv2p.training import Trainer
from wm_tf.checkpoints import restore_newest
from wm_tf.replicas import pad_to_multiple, split_across_replicas

__all__ = [
    "SV2P",
    "create_reset_fn",
    "create_observe_fn",
    "create_predict_fn",
    "create_train_fn",
]


@gin.configurable(module="sv2p")
class SV2P(WorldModelBase):
    """Stochastic Variational Video Prediction (Babaeizadeh et al. 2018).

    :param task: provides the action space (any wm task).
    :param input_length: context rows the model conditions on.
    :param output_length: rows predicted per training chunk (chunks have
        ``input_length + output_length`` rows).
    :param frame_size: ``(H, W, C)`` of the ``uint8`` frames.
    :param model_dir: checkpoints are read from and written to here; the
        newest one is loaded on construction and whenever ``observe_fn``
        finds a newer one (``None``: a new temporary directory, removed with the model).
    :param num_masks: number of CDNA transformations.
    :param latent_channels: channels of the latent map ``[H/8, W/8, L]``.
    :param base_channels: width of the first conv-LSTM (32: published size).
    :param strategy: the ``tf.distribute`` strategy whose scope holds the
        variables (default: the current strategy).
    """

    def __init__(
        self,
        task: Any = gin.REQUIRED,
        input_length: int = 2,
        output_length: int = 10,
        frame_size: tuple[int, int, int] = (64, 64, 3),
        model_dir: str | None = None,
        num_masks: int = 10,
        latent_channels: int = 1,
        base_channels: int = 32,
        lstm_kernel: int = 5,
        cdna_kernel: int = 5,
        strategy: tf.distribute.Strategy | None = None,
    ):
        if input_length < 1 or output_length < 1:
            raise ValueError(
                f"input_length and output_length must be >= 1, got {input_length}, {output_length}"
            )
        self.task = task
        self.action_dim = spaces.action_dim(task.action_space)
        self.input_length = int(input_length)
        self.output_length = int(output_length)
        self.frame_size = tuple(int(size) for size in frame_size)
        if len(self.frame_size) != 3:
            raise ValueError(f"frame_size must be (H, W, C), got {frame_size!r}")
        self.frame_shape = self.frame_size
        self.model_dir = str(model_dir or temporary_model_dir(self, "wm-sv2p-"))
        self.strategy = strategy or tf.distribute.get_strategy()
        self._distributed = tf.distribute.has_strategy() or strategy is not None
        with self.strategy.scope():
            self.network = FramePredictor(
                self.frame_size,
                self.action_dim,
                num_masks=num_masks,
                latent_channels=latent_channels,
                base_channels=base_channels,
                lstm_kernel=lstm_kernel,
                cdna_kernel=cdna_kernel,
            )
            self.network.build_variables(self.input_length, self.output_length)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._checkpoint = tf.train.Checkpoint(network=self.network, step=self.step)
        self._train_fn: TrainFn | None = None
        height, width, channels = self.frame_size
        signature = [
            tf.TensorSpec([self.input_length, height, width, channels], tf.uint8),
            tf.TensorSpec([self.input_length, self.action_dim], tf.float32),
            tf.TensorSpec([2], tf.int64),
            tf.TensorSpec([None, None, self.action_dim], tf.float32),
        ]
        # One compiled prediction with frames, one without (planners need
        # only rewards: no frames are kept, converted or copied out).
        self._predict_graphs = {
            return_frames: tf.function(
                functools.partial(self._prediction, return_frames=return_frames),
                input_signature=signature,
                autograph=False,
            )
            for return_frames in (False, True)
        }
        self.poll_checkpoint()

    # ------------------------------------------------------------------ what the base calls

    def state_spec(self) -> StateSpec:
        return {
            "image": ArraySpec((None, *self.frame_size), np.uint8),
            "action": ArraySpec((None, self.action_dim), np.float32),
            "reward": ArraySpec((None,), np.float32),
            "seed": ArraySpec((), np.int64),
            "observed": ArraySpec((), np.int64),
        }

    def initial_state(self, **kwargs: Any) -> State:
        """An empty context window; ``seed`` (if given) seeds the latents."""
        seed = kwargs.get("seed")
        return {
            "image": np.zeros((0, *self.frame_size), np.uint8),
            "action": np.zeros((0, self.action_dim), np.float32),
            "reward": np.zeros((0,), np.float32),
            "seed": np.int64(0 if seed is None else seed),
            "observed": np.int64(0),
        }

    def update_state(
        self, frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray, state: dict[str, np.ndarray]
    ) -> State:
        """Append the ``T`` rows to the window (keeping ``input_length``)."""
        keep = self.input_length
        return {
            "image": np.concatenate([state["image"], frames])[-keep:],
            "action": np.concatenate([state["action"], actions])[-keep:],
            "reward": np.concatenate([state["reward"], rewards])[-keep:],
            "seed": np.int64(state["seed"]),
            "observed": np.int64(state["observed"] + len(frames)),
        }

    def rollout(
        self, future_actions: np.ndarray, state: dict[str, np.ndarray], return_frames: bool = False
    ) -> Predictions:
        """``future_actions float32 [P, H, A]`` → ``{"reward": float32 [P, H]}``
        (+ ``"image": uint8 [P, H, *frame_size]`` with ``return_frames``)."""
        image, action = self._padded_context(state)
        seed = np.array([state["seed"], state["observed"]], np.int64)
        graph = self._predict_graphs[bool(return_frames)]
        outputs = self._run(graph, image, action, seed, future_actions)
        predictions = {"reward": outputs["reward"].astype(np.float32)}
        if return_frames:
            predictions["image"] = outputs["image"]
        return predictions

    def restore_checkpoint(self, directory: str) -> None:
        """Restore the network and step from the newest readable checkpoint in ``directory``."""
        restore_newest(self._checkpoint, directory, partial=True)

    def train(self, data_path: str) -> None:
        """Train with the ``train_fn`` that ``create_train_fn(self)`` builds (gin-configurable)."""
        if self._train_fn is None:
            self._train_fn = create_train_fn(model=self)
        self._train_fn(data_path)

    # ------------------------------------------------------------------ internals

    def _prediction(self, context_image, context_action, seed, future_actions, return_frames):
        frames = to_unit_float(context_image)[None]
        latent = self.network.prior_latent(1, seed)
        _, _, state = self.network.observe_context(frames, context_action[None], latent)
        proposals = tf.shape(future_actions)[0]

        def tile(tensor: tf.Tensor) -> tf.Tensor:
            return tf.repeat(tensor, proposals, axis=0)

        images, rewards = self.network.imagine(
            tile(frames[:, -1]), future_actions, tile(latent), tf.nest.map_structure(tile, state),
            keep_frames=return_frames,
        )
        if not return_frames:
            return {"reward": rewards}
        return {"reward": rewards, "image": to_uint8(images)}

    def _run(self, graph, image, action, seed, future_actions) -> dict[str, np.ndarray]:
        """The compiled prediction ``graph``, proposals split across the strategy's replicas."""
        replicas = self.strategy.num_replicas_in_sync
        if not self._distributed:
            outputs = graph(image, action, seed, future_actions)
            return {key: value.numpy() for key, value in outputs.items()}
        proposals = len(future_actions)
        padded = pad_to_multiple(future_actions, replicas)
        distributed = split_across_replicas(self.strategy, {"future_actions": padded})
        # A plain callable: given the tf.function itself, MirroredStrategy.run
        # binds the PerReplica value to its input signature and fails.
        outputs = self.strategy.run(
            lambda shard: graph(image, action, seed, shard["future_actions"]), args=(distributed,)
        )
        return {
            key: np.concatenate(
                [part.numpy() for part in self.strategy.experimental_local_results(value)]
            )[:proposals]
            for key, value in outputs.items()
        }

    def _padded_context(self, state: State) -> tuple[np.ndarray, np.ndarray]:
        image, action = state["image"], state["action"]
        if len(image) == 0:
            raise ValueError("SV2P predict_fn: the state has no observed frame; call observe_fn first")
        missing = self.input_length - len(image)
        if missing > 0:
            image = np.concatenate([np.repeat(image[:1], missing, 0), image])
            action = np.concatenate([np.zeros((missing, self.action_dim), np.float32), action])
        return image, action


def _check_strategy(model: SV2P, strategy: tf.distribute.Strategy | None, where: str) -> None:
    if strategy is not None and strategy is not model.strategy:
        raise ValueError(
            f"{where}: strategy {strategy!r} is not the one SV2P's variables were created under "
            f"({model.strategy!r}); pass the strategy to SV2P(strategy=...)"
        )


@gin.configurable(module="sv2p")
def create_reset_fn(model: SV2P = gin.REQUIRED):
    """``reset_fn(**kwargs) -> state`` (see :class:`SV2P`)."""
    return model.reset


@gin.configurable(module="sv2p")
def create_observe_fn(model: SV2P = gin.REQUIRED):
    """``observe_fn(last_frames, last_actions, last_rewards, state) -> state``."""
    return model.observe


@gin.configurable(module="sv2p")
def create_predict_fn(
    model: SV2P = gin.REQUIRED,
    prediction_horizon: int = gin.REQUIRED,
    strategy: tf.distribute.Strategy | None = None,
    return_frames: bool = False,
):
    """``predict_fn(future_actions [P, prediction_horizon, A], state) -> predictions``.

    ``strategy`` must be ``None`` or the model's own strategy.
    """
    _check_strategy(model, strategy, "create_predict_fn")
    if prediction_horizon < 1:
        raise ValueError(f"prediction_horizon must be >= 1, got {prediction_horizon}")

    def predict_fn(future_actions: np.ndarray, state: State) -> Predictions:
        horizon = np.shape(future_actions)[1] if np.ndim(future_actions) == 3 else None
        if horizon != prediction_horizon:
            raise ValueError(
                f"SV2P predict_fn was created for prediction_horizon={prediction_horizon}, "
                f"got future_actions of shape {np.shape(future_actions)}"
            )
        return model.predict(future_actions, state, return_frames=return_frames)

    return predict_fn


@gin.configurable(module="sv2p")
def create_train_fn(
    model: SV2P = gin.REQUIRED,
    train_steps: int = 100,
    batch: int = 16,
    strategy: tf.distribute.Strategy | None = None,
    *,
    seed: int = 0,
    max_episodes_in_memory: int = 1000,
    **trainer_settings: Any,
) -> TrainFn:
    """``train_fn(data_path) -> None``: ``train_steps`` steps on ``batch``
    chunks of ``input_length + output_length`` rows, then a checkpoint in the
    model's ``model_dir`` (a :class:`wm_core.loops.training.TrainLoop` around
    :class:`~wm_sv2p.training.Trainer`).

    :param seed: seeds the chunk sampling and the trainer's noise.
    :param trainer_settings: the other keyword arguments of
        :class:`~wm_sv2p.training.Trainer` (``learning_rate``,
        ``adam_epsilon``, ``clip_norm``, ``reward_weight``, ``kl_schedule``,
        ``scheduled_sampling_k``, ``checkpoints_to_keep``), gin-bindable here
        (``sv2p.create_train_fn.learning_rate = 1e-3``).
    """
    _check_strategy(model, strategy, "create_train_fn")
    trainer = Trainer(
        model.network, model.step, model.strategy, model.model_dir, model.input_length, batch,
        seed=seed, **trainer_settings,
    )
    return TrainLoop(
        trainer, train_steps, batch, model.input_length + model.output_length, seed=seed,
        max_episodes_in_memory=max_episodes_in_memory,
    )
