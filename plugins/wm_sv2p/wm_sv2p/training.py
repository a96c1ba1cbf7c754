"""Training SV2P: the sequence loss and a distributed, checkpointing trainer.

A training chunk has ``L = input_length + output_length`` episode rows.  The
predictor reads the ``input_length`` ground-truth context rows, then predicts
rows ``input_length .. L-1`` from its own previous predictions (or, with
scheduled sampling, sometimes the true previous frame).  The loss per chunk is

``mean squared pixel error over rows 1..L-1``
``+ reward_weight * mean squared standardised reward error over rows 1..L-1``
``+ kl_weight(step) * KL(q(z | chunk) || N(0, I))`` (mean per latent element).

The reward error is divided by the decoder's reward scale squared (see
:class:`~wm_sv2p.model.RewardDecoder`), so its gradients do not depend on
the task's reward units: with rewards of variance 0.009 (the moving-square
test data) the raw error's gradients sit below Adam's epsilon and the
decoder barely learned in 80 steps (0.0090 -> 0.0078; standardised:
0.0087 -> 0.0038).  The ``reward_loss`` metric is the raw error.

Metrics reported through :func:`wm_core.hooks.active_hooks` after every
step: ``loss``, ``reconstruction``, ``reward_loss``, ``kl``, ``kl_weight``,
``true_frame_probability``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf
import tf_keras

from wm_core import sampling
from wm_core.hooks import active_hooks
from wm_sv2p.latent import KLSchedule, kl_to_prior
from wm_sv2p.model import FramePredictor, to_unit_float

if TYPE_CHECKING:
    from wm_sv2p.sv2p import SV2P

__all__ = ["sequence_loss", "true_frame_probability", "Trainer"]

_REWARD_SAMPLE = 1024  # reward rows whose statistics standardise the reward decoder


def true_frame_probability(step: tf.Tensor, scheduled_sampling_k: float) -> tf.Tensor:
    """Scheduled sampling (Bengio et al. 2015, inverse sigmoid decay):
    ``k / (k + exp(step / k))``; 0 (never feed true frames) when ``k == 0``."""
    if scheduled_sampling_k == 0:
        return tf.constant(0.0)
    k = float(scheduled_sampling_k)
    step = tf.cast(step, tf.float32)
    return k / (k + tf.exp(tf.minimum(step / k, 80.0)))


def sequence_loss(
    network: FramePredictor,
    schedule: KLSchedule,
    chunk: dict[str, tf.Tensor],
    step: tf.Tensor,
    input_length: int,
    reward_weight: float,
    scheduled_sampling_k: float,
    seed: tf.Tensor,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Per-chunk losses ``[B]`` and per-chunk metrics (see module docs).

    ``chunk``: ``image`` uint8 ``[B, L, H, W, C]``, ``action`` float32
    ``[B, L, A]``, ``reward`` float32 ``[B, L]``.  All sampling (latents,
    scheduled sampling) is drawn statelessly from ``seed`` (``int64 [2]``).
    """
    frames = to_unit_float(chunk["image"])
    actions = tf.cast(chunk["action"], tf.float32)
    rewards = tf.cast(chunk["reward"], tf.float32)
    batch = tf.shape(frames)[0]
    posterior_seed, prior_seed, sampling_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3)
    )

    mean, std = network.latent_tower(frames)
    posterior = mean + std * tf.random.stateless_normal(tf.shape(mean), posterior_seed)
    prior = tf.random.stateless_normal(tf.shape(mean), prior_seed)
    latent = tf.where(schedule.uses_posterior(step), posterior, prior)
    kl = kl_to_prior(mean, std)

    context_frames, context_rewards, state = network.observe_context(
        frames[:, :input_length], actions[:, :input_length], latent
    )
    probability = true_frame_probability(step, scheduled_sampling_k)
    future_frames, future_rewards = network.imagine(
        frames[:, input_length - 1],
        actions[:, input_length:],
        latent,
        state,
        true_frames=frames[:, input_length:] if scheduled_sampling_k else None,
        true_frame_probability=probability,
        sampling_seed=sampling_seed,
    )
    predicted_frames = tf.concat([context_frames, future_frames], axis=1)
    predicted_rewards = tf.concat([context_rewards, future_rewards], axis=1)
    reconstruction = tf.reduce_mean(tf.square(predicted_frames - frames[:, 1:]), axis=[1, 2, 3, 4])
    reward_loss = tf.reduce_mean(tf.square(predicted_rewards - rewards[:, 1:]), axis=1)
    kl_weight = schedule.weight(step)
    scale = network.reward_decoder.scale
    loss = reconstruction + reward_weight * reward_loss / tf.square(scale) + kl_weight * kl
    ones = tf.ones([batch])
    metrics = {
        "loss": loss,
        "reconstruction": reconstruction,
        "reward_loss": reward_loss,
        "kl": kl,
        "kl_weight": kl_weight * ones,
        "true_frame_probability": probability * ones,
    }
    return loss, metrics


class Trainer:
    """``train_fn(data_path)`` for an :class:`~wm_sv2p.sv2p.SV2P` model.

    Each call restores the newest checkpoint under ``model.model_dir`` (model,
    optimizer and step) if it is newer than what is in memory; before the
    very first step it sets the reward decoder's output scale from the data
    (mean and std of >= 1024 sampled rewards, then saved with the model); runs
    ``train_steps`` optimisation steps on batches from one
    :class:`wm_core.sampling.ChunkIterator` per data directory (kept across calls,
    so each episode file is read once), and saves a checkpoint.  A non-finite
    loss or gradient raises ``FloatingPointError`` before anything is saved
    and puts the last saved weights back in memory.
    """

    def __init__(
        self,
        model: SV2P,
        train_steps: int,
        batch: int,
        learning_rate: float = 1e-3,
        clip_norm: float = 100.0,
        reward_weight: float = 1.0,
        kl_schedule: KLSchedule | None = None,
        scheduled_sampling_k: float = 0.0,
        seed: int = 0,
        max_to_keep: int = 2,
    ):
        if train_steps < 1:
            raise ValueError(f"train_steps must be >= 1, got {train_steps}")
        replicas = model.strategy.num_replicas_in_sync
        if batch < 1 or batch % replicas:
            raise ValueError(
                f"batch must be a positive multiple of the {replicas} replica(s), got {batch}"
            )
        if scheduled_sampling_k < 0:
            raise ValueError(f"scheduled_sampling_k must be >= 0, got {scheduled_sampling_k}")
        self.model = model
        self.train_steps = train_steps
        self.batch = batch
        self.clip_norm = clip_norm
        self.reward_weight = float(reward_weight)
        self.kl_schedule = kl_schedule or KLSchedule()
        self.scheduled_sampling_k = float(scheduled_sampling_k)
        self.seed = seed
        with model.strategy.scope():
            self.optimizer = tf_keras.optimizers.Adam(learning_rate, epsilon=1e-3)
        self.checkpoint = model.training_checkpoint(self.optimizer)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, model.model_dir, max_to_keep=max_to_keep
        )
        self._restored: str | None = None
        self._chunks: dict[str, sampling.ChunkIterator] = {}
        self._distributed_step = tf.function(self._distributed_step_fn)

    def _replica_step(self, chunk: dict[str, tf.Tensor]):
        network = self.model.network
        with tf.GradientTape() as tape:
            losses, metrics = sequence_loss(
                network,
                self.kl_schedule,
                chunk,
                self.model.step,
                self.model.input_length,
                self.reward_weight,
                self.scheduled_sampling_k,
                self._step_seed(),
            )
            loss = tf.reduce_sum(losses) / self.batch
        variables = network.trainable_variables
        gradients = tape.gradient(loss, variables)
        gradients, norm = tf.clip_by_global_norm(gradients, self.clip_norm)
        self.optimizer.apply_gradients(zip(gradients, variables))
        sums = {key: tf.reduce_sum(value) for key, value in metrics.items()}
        sums["grad_norm"] = norm * tf.cast(tf.shape(losses)[0], tf.float32)
        return sums

    def _step_seed(self) -> tf.Tensor:
        """This replica's sampling seed at this step, ``int64 [2]``: a run's
        noise follows ``seed`` and the step count, also after a restore."""
        replicas = self.model.strategy.num_replicas_in_sync
        replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int64)
        return tf.stack([tf.constant(self.seed, tf.int64), self.model.step * replicas + replica])

    def _distributed_step_fn(self, chunk) -> dict[str, tf.Tensor]:
        strategy = self.model.strategy
        sums = strategy.run(self._replica_step, args=(chunk,))
        totals = {key: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                  for key, value in sums.items()}
        self.model.step.assign_add(1)
        return {key: value / self.batch for key, value in totals.items()}

    def _distribute(self, batch: dict[str, np.ndarray]):
        strategy = self.model.strategy
        replicas = strategy.num_replicas_in_sync
        chunk = {key: batch[key] for key in ("image", "action", "reward")}

        def shard(context: tf.distribute.InputContext):
            index = context.replica_id_in_sync_group
            return {key: tf.constant(np.array_split(value, replicas)[index])
                    for key, value in chunk.items()}

        return strategy.experimental_distribute_values_from_function(shard)

    def _iterator(self, data_path: str) -> sampling.ChunkIterator:
        if data_path not in self._chunks:
            self._chunks[data_path] = sampling.ChunkIterator(
                data_path,
                self.batch,
                self.model.input_length + self.model.output_length,
                seed=self.seed,
            )
        return self._chunks[data_path]

    def restore_newest(self) -> None:
        """Load the newest checkpoint (model, optimizer, step) if not yet loaded."""
        newest = self.manager.latest_checkpoint
        if newest is not None and newest != self._restored:
            self.checkpoint.restore(newest)
            self._restored = newest
            self.model.mark_restored(newest)

    def _check_batch(self, batch: dict[str, np.ndarray], data_path: str) -> None:
        frames = batch["image"]
        if frames.dtype != np.uint8 or frames.shape[2:] != self.model.frame_size:
            raise ValueError(
                f"episodes in {data_path!r} have images {frames.dtype} {frames.shape[2:]}, "
                f"the model expects uint8 {self.model.frame_size}"
            )
        if batch["action"].shape[2:] != (self.model.action_dim,):
            raise ValueError(
                f"episodes in {data_path!r} have actions of shape {batch['action'].shape[2:]}, "
                f"the model expects ({self.model.action_dim},)"
            )

    def train_step(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One optimisation step on ``batch`` (``image`` uint8 ``[batch, L, H, W, C]``,
        ``action`` float32 ``[batch, L, A]``, ``reward`` float32 ``[batch, L]``,
        ``L = input_length + output_length``); returns the step's mean metrics.
        Reads and saves no checkpoint."""
        return {key: float(value) for key, value in
                self._distributed_step(self._distribute(batch)).items()}

    def __call__(self, data_path: str) -> None:
        """Train ``train_steps`` steps on the episodes under ``data_path``, then save."""
        self.restore_newest()
        chunks = self._iterator(data_path)
        if int(self.model.step.numpy()) == 0:
            self._standardise_rewards(chunks)
        hooks = active_hooks()
        for _ in range(self.train_steps):
            batch = next(chunks)
            self._check_batch(batch, data_path)
            metrics = self.train_step(batch)
            step = int(self.model.step.numpy())
            if not all(math.isfinite(value) for value in metrics.values()):
                raise FloatingPointError(
                    f"SV2P training diverged at step {step} on {data_path!r}: metrics {metrics}; "
                    f"nothing was saved; {self._recover()}"
                )
            hooks.train_step(step, metrics)
        self._restored = self.manager.save(checkpoint_number=self.model.step)
        self.model.mark_restored(self._restored)

    def _standardise_rewards(self, chunks: sampling.ChunkIterator) -> None:
        """Before the first step: scale the reward decoder's output to the
        mean and std of at least ``_REWARD_SAMPLE`` sampled reward rows."""
        rows_per_batch = self.batch * (self.model.input_length + self.model.output_length - 1)
        batches = -(-_REWARD_SAMPLE // rows_per_batch)
        rewards = np.concatenate([next(chunks)["reward"][:, 1:].ravel() for _ in range(batches)])
        self.model.network.reward_decoder.set_statistics(float(rewards.mean()), float(rewards.std()))

    def _recover(self) -> str:
        """Put the last saved weights back; says what happened."""
        newest = self.manager.latest_checkpoint
        if newest is None:
            return "there is no checkpoint to go back to, so the weights in memory are invalid"
        self.checkpoint.restore(newest)
        self._restored = newest
        self.model.mark_restored(newest)
        return f"weights in memory reset to {newest}"
