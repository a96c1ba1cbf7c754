"""One PlaNet optimisation step under any ``tf.distribute`` strategy: the
:class:`wm_core.loops.training.Trainer` that PlaNet's ``train_fn`` runs.

:class:`Trainer` owns the optimiser (Adam, ``epsilon=1e-4`` as published),
the step counter and the checkpoints under ``model_dir``
(:class:`wm_tf.checkpoints.TrainingCheckpoints`: model, optimiser, step,
and the training noise stream's position).
One :meth:`Trainer.train_step` is one compiled ``strategy.run`` over a global
batch split evenly across the replicas: every replica sums its sequences'
losses and divides by the *global* batch size, gradients are all-reduced
(summed) before clipping by global norm, so the update and the reported loss
equal the single-device ones.  The loop around it (batches, hooks,
divergence, saving) is :class:`wm_core.loops.training.TrainLoop`.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from wm_core.loops.training import Batch
from wm_tf.checkpoints import TrainingCheckpoints
from wm_tf.replicas import split_across_replicas
from wm_planet.model import RecurrentStateSpaceModel
from wm_planet.noise import generator

__all__ = ["Trainer", "LinearRamp"]


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
    """PlaNet's :class:`~wm_core.loops.training.Trainer` (see module docs).

    :param model: the model; its variables are created under ``strategy``.
    :param model_dir: checkpoint directory (model, optimiser and step); the
        latest checkpoint there is restored on construction.
    :param learning_rate, epsilon: Adam's settings (1e-3 and 1e-4 as published).
    :param learning_rate_ramp: warm the rate up linearly over this many
        optimiser steps (0 turns it off).
    :param clip_norm: clip gradients to this global norm.
    :param strategy: any ``tf.distribute`` strategy (``None``: the default one).
    :param stochastic: sample latent states and add dequantisation noise, as
        published; ``False`` trains on posterior means without noise, which
        makes a step deterministic (for tests and debugging).
    :param checkpoints_to_keep: how many checkpoints stay on disk.
    """

    name = "PlaNet"

    def __init__(
        self,
        model: RecurrentStateSpaceModel,
        model_dir: str,
        learning_rate: float = 1e-3,
        epsilon: float = 1e-4,
        clip_norm: float = 1000.0,
        strategy: tf.distribute.Strategy | None = None,
        stochastic: bool = True,
        checkpoints_to_keep: int = 3,
        learning_rate_ramp: int = 0,
    ):
        self.model = model
        self.strategy = model.build(strategy)
        self.clip_norm = clip_norm
        self.frame_size = tuple(model.frame_size)
        self.action_dim = model.action_dim
        # Under a dynamic loss scale an overflowing gradient skips the step
        # and lowers the scale: that is the scale's business, not divergence.
        self.tolerated_nonfinite = frozenset({"grad_norm"} if model.mixed_precision else ())
        with self.strategy.scope():
            rate = LinearRamp(learning_rate, learning_rate_ramp)
            optimizer = tf_keras.optimizers.Adam(rate, epsilon=epsilon, jit_compile=False)
            if model.mixed_precision:
                optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
            optimizer.build(model.trainable_variables)
            self.optimizer = optimizer
            self.step_counter = tf.Variable(
                0, dtype=tf.int64, trainable=False,
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA, name="global_step",
            )
            self.noise = generator(model.seed, "train") if stochastic else None
        self.checkpoints = TrainingCheckpoints(
            tf.train.Checkpoint(model=model, optimizer=optimizer, step=self.step_counter),
            model_dir, model.trainable_variables, self.name, checkpoints_to_keep, self.strategy,
            # a resumed run draws on, not the same numbers again
            optional={} if self.noise is None else {"noise": self.noise},
        )
        self._compiled_step = tf.function(self._distributed_step, autograph=False)

    @property
    def step(self) -> int:
        """Optimisation steps taken (restored with the checkpoint)."""
        return int(self.step_counter.numpy())

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimisation step on ``batch`` (``image uint8 [B, T, 64, 64, C]``,
        ``action float32 [B, T, A]``, ``reward float32 [B, T]``; ``B`` a
        multiple of the replicas).

        Returns the pre-update metrics as floats: ``loss``,
        ``image_log_likelihood``, ``reward_log_likelihood``, ``kl`` (means per
        step, nats), ``overshooting_kl`` when enabled, and ``grad_norm``
        (before clipping).
        """
        arrays = {key: batch[key] for key in ("image", "action", "reward")}
        distributed = split_across_replicas(self.strategy, arrays)
        metrics = self._compiled_step(distributed, len(arrays["image"]))
        return {key: float(value) for key, value in metrics.items()}

    def before_first_step(self, batches) -> None:
        """Nothing to prepare: PlaNet's outputs need no statistics of the data."""

    def save(self) -> str:
        """Write a checkpoint at the current step (refuses non-finite weights)."""
        return self.checkpoints.save(self.step)

    def restore_last(self) -> str | None:
        """Put the last checkpoint's model, optimiser and step back in memory."""
        return self.checkpoints.restore_last()

    def _distributed_step(self, batch, global_batch: int) -> dict[str, tf.Tensor]:
        sums, grad_norm = self.strategy.run(self._replica_step, args=(batch, global_batch))
        metrics = {
            key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) / global_batch
            for key, value in sums.items()
        }
        metrics["grad_norm"] = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, grad_norm, axis=None)
        self.step_counter.assign_add(1)
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
        gradients, grad_norm = tf.clip_by_global_norm(gradients, self.clip_norm)
        self.optimizer.apply_gradients(zip(gradients, variables), skip_gradients_aggregation=True)
        sums = {"loss": tf.reduce_sum(loss)}
        sums.update({key: tf.reduce_sum(value) for key, value in metrics.items()})
        return sums, grad_norm
