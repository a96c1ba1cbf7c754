"""Training SV2P: one distributed optimisation step of :func:`~wm_sv2p.model.sequence_loss`.

:class:`Trainer` is SV2P's :class:`wm_core.loops.training.Trainer`; the loop
around it (batches, hooks, divergence, saving) is
:class:`wm_core.loops.training.TrainLoop`.  Metrics of every step: ``loss``,
``reconstruction``, ``reward_loss``, ``kl``, ``kl_weight``,
``true_frame_probability``, ``grad_norm``.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf
import tf_keras

from wm_core.deprecation import moved_attributes
from wm_core.loops.training import Batch
from wm_sv2p import model
from wm_sv2p.latent import KLSchedule
from wm_sv2p.model import FramePredictor
from wm_tf.checkpoints import TrainingCheckpoints
from wm_tf.replicas import split_across_replicas

__all__ = ["Trainer"]

__getattr__ = moved_attributes(__name__, {
    "sequence_loss": "wm_sv2p.model.sequence_loss",
    "true_frame_probability": "wm_sv2p.model.true_frame_probability",
})

_REWARD_SAMPLE = 1024  # reward rows whose statistics standardise the reward decoder


class Trainer:
    """SV2P's :class:`~wm_core.loops.training.Trainer`: one step of ``sequence_loss``
    under the network's strategy, and the checkpoints in ``model_dir``.

    :param network: the frame predictor (variables under ``strategy``).
    :param step: the step counter saved with the network (``int64`` variable).
    :param model_dir: checkpoints (network, optimiser, step); the newest one
        is restored now.
    :param input_length: context rows of a training chunk.
    :param batch: the global batch size (a multiple of the replicas).
    :param learning_rate, adam_epsilon: Adam's.
    :param clip_norm: the global gradient norm clipped to.
    :param reward_weight: weight of the standardised reward error in the
        loss.  That error trains only the reward decoder (no gradient reaches
        the frame predictor), so this is not a trade-off against frame
        quality; it scales the decoder's gradients against Adam's epsilon and
        the shared ``clip_norm``.
    :param kl_schedule: the three-phase latent schedule (default
        :class:`~wm_sv2p.latent.KLSchedule` ``()``).
    :param scheduled_sampling_k: 0 feeds the model its own predictions after
        the context; ``k > 0`` feeds the true frame with probability
        ``k / (k + exp(step / k))``.
    :param seed: seeds all training noise, drawn statelessly from
        ``(seed, step)`` per replica, so a restored run draws what the
        uninterrupted one would have.
    :param checkpoints_to_keep: checkpoints kept in ``model_dir``.

    Before the very first step (:meth:`before_first_step`) the reward
    decoder's output is scaled to the mean and std of >= 1024 sampled reward
    rows, then saved with the network.
    """

    name = "SV2P"
    tolerated_nonfinite: frozenset[str] = frozenset()

    def __init__(
        self,
        network: FramePredictor,
        step: tf.Variable,
        strategy: tf.distribute.Strategy,
        model_dir: str,
        input_length: int,
        batch: int,
        learning_rate: float = 1e-3,
        adam_epsilon: float = 1e-3,
        clip_norm: float = 100.0,
        reward_weight: float = 1.0,
        kl_schedule: KLSchedule | None = None,
        scheduled_sampling_k: float = 0.0,
        seed: int = 0,
        checkpoints_to_keep: int = 2,
    ):
        replicas = strategy.num_replicas_in_sync
        if batch < 1 or batch % replicas:
            raise ValueError(
                f"batch must be a positive multiple of the {replicas} replica(s), got {batch}"
            )
        if scheduled_sampling_k < 0:
            raise ValueError(f"scheduled_sampling_k must be >= 0, got {scheduled_sampling_k}")
        self.network = network
        self.step_counter = step
        self.strategy = strategy
        self.input_length = input_length
        self.frame_size = network.frame_size
        self.action_dim = network.action_dim
        self.batch = batch
        self.clip_norm = clip_norm
        self.reward_weight = float(reward_weight)
        self.kl_schedule = kl_schedule or KLSchedule()
        self.scheduled_sampling_k = float(scheduled_sampling_k)
        self.seed = seed
        with strategy.scope():
            self.optimizer = tf_keras.optimizers.Adam(learning_rate, epsilon=adam_epsilon)
            # Slots now, not inside the first compiled step: a tf.function that
            # creates variables is traced twice (as PlaNet's trainer does).
            self.optimizer.build(network.trainable_variables)
        self.checkpoints = TrainingCheckpoints(
            tf.train.Checkpoint(network=network, optimizer=self.optimizer, step=step),
            model_dir, network.trainable_variables, self.name, checkpoints_to_keep, strategy,
        )
        self._distributed_step = tf.function(self._distributed_step_fn, autograph=False)

    @property
    def step(self) -> int:
        """Optimisation steps taken (restored with the checkpoint)."""
        return int(self.step_counter.numpy())

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimisation step on ``batch`` (``image`` uint8 ``[batch, L, H, W, C]``,
        ``action`` float32 ``[batch, L, A]``, ``reward`` float32 ``[batch, L]``,
        ``L = input_length + output_length``); returns the step's mean metrics."""
        chunk = {key: batch[key] for key in ("image", "action", "reward")}
        distributed = split_across_replicas(self.strategy, chunk)
        return {key: float(value) for key, value in self._distributed_step(distributed).items()}

    def before_first_step(self, batches: Iterator[Batch]) -> None:
        """Scale the reward decoder's output to the mean and std of at least
        ``_REWARD_SAMPLE`` sampled reward rows."""
        rewards = []
        while sum(map(len, rewards)) < _REWARD_SAMPLE:
            rewards.append(next(batches)["reward"][:, 1:].ravel())
        rewards = np.concatenate(rewards)
        self.network.reward_decoder.set_statistics(float(rewards.mean()), float(rewards.std()))

    def save(self) -> str:
        """Write a checkpoint at the current step (refuses non-finite weights)."""
        return self.checkpoints.save(self.step)

    def restore_last(self) -> str | None:
        """Put the last checkpoint's network, optimiser and step back in memory."""
        return self.checkpoints.restore_last()

    def _replica_step(self, chunk: dict[str, tf.Tensor]):
        with tf.GradientTape() as tape:
            losses, metrics = model.sequence_loss(
                self.network,
                self.kl_schedule,
                chunk,
                self.step_counter,
                self.input_length,
                self.reward_weight,
                self.scheduled_sampling_k,
                self._step_seed(),
            )
            loss = tf.reduce_sum(losses) / self.batch
        variables = self.network.trainable_variables
        gradients = tape.gradient(loss, variables)
        gradients, norm = tf.clip_by_global_norm(gradients, self.clip_norm)
        self.optimizer.apply_gradients(zip(gradients, variables))
        sums = {key: tf.reduce_sum(value) for key, value in metrics.items()}
        sums["grad_norm"] = norm * tf.cast(tf.shape(losses)[0], tf.float32)
        return sums

    def _step_seed(self) -> tf.Tensor:
        """This replica's sampling seed at this step, ``int64 [2]``."""
        replicas = self.strategy.num_replicas_in_sync
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        return tf.stack([tf.constant(self.seed, tf.int64), self.step_counter * replicas + replica])

    def _distributed_step_fn(self, chunk) -> dict[str, tf.Tensor]:
        sums = self.strategy.run(self._replica_step, args=(chunk,))
        totals = {key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                  for key, value in sums.items()}
        self.step_counter.assign_add(1)
        return {key: value / self.batch for key, value in totals.items()}
