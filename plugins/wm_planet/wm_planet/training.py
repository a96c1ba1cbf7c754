"""Optimising a :class:`~wm_planet.model.RecurrentStateSpaceModel` under any ``tf.distribute`` strategy.

:class:`Trainer` owns the optimiser (Adam, ``epsilon=1e-4`` as published),
the global step and the :class:`tf.train.CheckpointManager` under
``model_dir``.  One :meth:`Trainer.train_step` is one compiled
``strategy.run`` over a global batch split evenly across the replicas:
every replica sums its sequences' losses and divides by the *global* batch
size, gradients are all-reduced (summed) before clipping by global norm, so
the update and the reported loss equal the single-device ones.

A non-finite loss or gradient norm (with mixed precision: loss only, since
the dynamic loss scale skips overflowing steps itself) rolls the weights
back to the last checkpoint and raises :class:`TrainingDivergedError`; :meth:`Trainer.save`
refuses to write non-finite weights, so a good checkpoint is never replaced
by a diverged one.
"""

from __future__ import annotations

import os
from typing import Iterator, Mapping

import numpy as np
import tensorflow as tf
import tf_keras

from wm_core.hooks import Hooks
from wm_planet.model import RecurrentStateSpaceModel

__all__ = ["Trainer", "TrainingDivergedError", "LinearRamp"]

Batch = Mapping[str, np.ndarray]
_BATCH_KEYS = ("image", "action", "reward")


class TrainingDivergedError(FloatingPointError):
    """The loss or the gradients became NaN/inf; no checkpoint was written."""


class LinearRamp(tf_keras.optimizers.schedules.LearningRateSchedule):
    """``rate * min(1, (step + 1) / ramp)``: PlaNet's linear warm-up (``ramp`` 0: constant)."""

    def __init__(self, rate: float, ramp: int):
        self.rate, self.ramp = float(rate), int(ramp)

    def __call__(self, step):
        if self.ramp <= 0:
            return tf.constant(self.rate, tf.float32)
        progress = (tf.cast(step, tf.float32) + 1.0) / float(self.ramp)
        return self.rate * tf.minimum(1.0, progress)

    def get_config(self) -> dict:
        return {"rate": self.rate, "ramp": self.ramp}


class Trainer:
    """Distributed PlaNet optimisation with checkpoints (see module docs).

    :param model: the model; its variables are created under ``strategy``.
    :param model_dir: checkpoint directory (model, optimiser and step); the
        latest checkpoint there is restored on construction.
    :param learning_rate, epsilon: Adam's settings (1e-3 and 1e-4 as published).
    :param learning_rate_ramp: warm the rate up linearly over this many
        optimiser steps (the published code uses 10000; 0 turns it off).
    :param grad_clip: clip gradients to this global norm.
    :param strategy: any ``tf.distribute`` strategy (``None``: the default one).
    :param stochastic: sample latent states and add dequantisation noise, as
        published; ``False`` trains on posterior means without noise, which
        makes a step deterministic (for tests and debugging).
    :param checkpoints_to_keep: how many checkpoints the manager keeps.
    """

    def __init__(
        self,
        model: RecurrentStateSpaceModel,
        model_dir: str,
        learning_rate: float = 1e-3,
        epsilon: float = 1e-4,
        grad_clip: float = 1000.0,
        strategy: tf.distribute.Strategy | None = None,
        stochastic: bool = True,
        checkpoints_to_keep: int = 3,
        learning_rate_ramp: int = 0,
    ):
        self.model = model
        self.strategy = model.build(strategy)
        self.grad_clip = grad_clip
        with self.strategy.scope():
            rate = LinearRamp(learning_rate, learning_rate_ramp)
            optimizer = tf_keras.optimizers.Adam(rate, epsilon=epsilon, jit_compile=False)
            if model.mixed_precision:
                optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
            optimizer.build(model.trainable_variables)
            self.optimizer = optimizer
            self.step = tf.Variable(
                0, dtype=tf.int64, trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA, name="global_step",
            )
            self.noise = tf.random.Generator.from_seed(model.seed + 1) if stochastic else None
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=self.step)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, model_dir, max_to_keep=checkpoints_to_keep
        )
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
        self._compiled_step = tf.function(self._distributed_step)

    # -- one step ---------------------------------------------------------------

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimisation step on ``batch`` (``image uint8 [B, T, 64, 64, C]``,
        ``action float32 [B, T, A]``, ``reward float32 [B, T]``).

        Returns the pre-update metrics as floats: ``loss``,
        ``image_log_likelihood``, ``reward_log_likelihood``, ``kl`` (means per
        step, nats), ``overshooting_kl`` when enabled, and ``grad_norm``
        (before clipping).
        """
        batch = self._checked(batch)
        distributed = self._distribute(batch)
        metrics = self._compiled_step(distributed, len(batch["image"]))
        return {key: float(value) for key, value in metrics.items()}

    def _checked(self, batch: Batch) -> dict[str, np.ndarray]:
        expected = {
            "image": (np.uint8, (None, None, *self.model.frame_size)),
            "action": (np.float32, (None, None, self.model.action_dim)),
            "reward": (np.float32, (None, None)),
        }
        checked = {}
        for key, (dtype, shape) in expected.items():
            value = np.asarray(batch[key])
            if value.dtype != dtype or value.ndim != len(shape) or any(
                want is not None and have != want for have, want in zip(value.shape, shape)
            ):
                raise ValueError(
                    f"training batch[{key!r}] is {value.dtype} {value.shape}; expected "
                    f"{np.dtype(dtype)} {tuple('?' if s is None else s for s in shape)}"
                )
            checked[key] = value
        size = len(checked["image"])
        replicas = self.strategy.num_replicas_in_sync
        if size % replicas:
            raise ValueError(f"batch size {size} is not divisible by the {replicas} replicas")
        return checked

    def _distribute(self, batch: dict[str, np.ndarray]):
        replicas = self.strategy.num_replicas_in_sync
        shards = {key: np.split(value, replicas) for key, value in batch.items()}

        def shard(context: tf.distribute.ValueContext) -> dict[str, tf.Tensor]:
            index = context.replica_id_in_sync_group
            return {key: tf.constant(parts[index]) for key, parts in shards.items()}

        return self.strategy.experimental_distribute_values_from_function(shard)

    def _distributed_step(self, batch, global_batch: int) -> dict[str, tf.Tensor]:
        sums, grad_norm = self.strategy.run(self._replica_step, args=(batch, global_batch))
        metrics = {
            key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) / global_batch
            for key, value in sums.items()
        }
        metrics["grad_norm"] = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, grad_norm, axis=None)
        self.step.assign_add(1)
        return metrics

    def _replica_step(self, batch, global_batch: int):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss, metrics = self.model.loss(batch, self.noise)
            objective = tf.reduce_sum(loss) / global_batch
            if self.model.mixed_precision:
                objective = self.optimizer.get_scaled_loss(objective)
        gradients = tape.gradient(objective, variables)
        context = tf.distribute.get_replica_context()
        gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        if self.model.mixed_precision:
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        gradients, grad_norm = tf.clip_by_global_norm(gradients, self.grad_clip)
        self.optimizer.apply_gradients(zip(gradients, variables), skip_gradients_aggregation=True)
        sums = {"loss": tf.reduce_sum(loss)}
        sums.update({key: tf.reduce_sum(value) for key, value in metrics.items()})
        return sums, grad_norm

    # -- loops and checkpoints -----------------------------------------------------

    def fit(self, batches: Iterator[Batch], steps: int, hooks: Hooks) -> dict[str, float]:
        """Run ``steps`` steps, report each through ``hooks.train_step``, then save.

        Returns the last step's metrics.  Raises :class:`TrainingDivergedError`
        (after restoring the last checkpoint's weights) on a non-finite loss.
        """
        metrics: dict[str, float] = {}
        for _ in range(steps):
            metrics = self.train_step(next(batches))
            if not self._finite(metrics):
                self._diverged(metrics)
            hooks.train_step(int(self.step.numpy()), metrics)
        self.save()
        return metrics

    def _finite(self, metrics: Mapping[str, float]) -> bool:
        """Whether a step's metrics are usable.  With mixed precision an
        overflowing gradient is the loss scale's business (the step is skipped
        and the scale lowered), so only the loss counts there."""
        checked = {
            key: value for key, value in metrics.items()
            if not (self.model.mixed_precision and key == "grad_norm")
        }
        return all(np.isfinite(value) for value in checked.values())

    def save(self) -> str:
        """Write a checkpoint at the current step; refuses non-finite weights."""
        broken = [
            variable.name
            for variable in self.model.trainable_variables
            if not np.all(np.isfinite(variable.numpy()))
        ]
        if broken:
            self._diverged({"non-finite variables": ", ".join(broken[:5])})
        return self.manager.save(checkpoint_number=self.step)

    def _diverged(self, details: Mapping[str, object]) -> None:
        step, last = int(self.step.numpy()), self.manager.latest_checkpoint
        if last:
            self.checkpoint.restore(last)
        kept = f"the last good checkpoint {last} was kept and restored" if last else (
            f"no checkpoint exists in {os.fspath(self.manager.directory)!r}; none was written"
        )
        raise TrainingDivergedError(
            f"PlaNet training diverged at step {step} "
            f"({', '.join(f'{key}={value}' for key, value in details.items())}); {kept}"
        )
