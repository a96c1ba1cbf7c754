"""One TD-MPC2 update: the :class:`wm_core.loops.training.Trainer` that ``wm_tdmpc``'s ``train_fn`` runs.

A batch is ``B`` chunks of ``L = frame_stack + horizon + td_steps - 1``
episode rows (``image uint8 [B, L, h, w, C]``, ``action float32 [B, L, A]``,
``reward float32 [B, L]``; rows as in :mod:`wm_core.api.contracts`).  With
``K = frame_stack``, ``H = horizon`` and ``n = td_steps``, observation ``t``
(``t = 0..H + n - 1``) is the stack of frames ``t .. t + K - 1``,
``action_t = action[:, K + t]`` leads from observation ``t`` to ``t + 1``
and earns ``reward_t = reward[:, K + t]``.

One :meth:`Trainer.train_step` (Hansen et al. 2024, section 3 and the
published code):

1. every frame stack is randomly shifted (:func:`~wm_tdmpc.networks.random_shift`);
   observations ``1..H + n - 1`` are encoded without gradient: the targets ``z'_t``;
2. ``n``-step TD targets ``y_t = sum_k discount**k * reward_{t+k} + discount**n *
   min(Q'_i, Q'_j)(z'_{t+n}, a')`` (``k < n``), ``a'`` sampled from the policy
   prior, ``i != j`` two random heads of the target ensemble
   (:func:`n_step_td_targets`).  TD-MPC2 publishes ``n = 1``; a larger ``n`` carries
   rewards back ``n`` times faster per target update, at the cost of
   bootstrapping through the replayed (older) actions, as DrQ-v2 does with 3;
3. from ``z_0 = encode(observation 0)`` the dynamics roll ``H`` steps; the
   model loss is ``20 * consistency + 0.1 * reward + 0.1 * value``, each a
   ``rho**t``-weighted mean over the horizon: the latent's squared error to
   ``z'_t``, and the two-hot cross-entropies of the reward head to
   ``reward_t`` and of every Q-function to ``y_t``;
4. Adam on the model (learning rate ``3e-4``, the encoder's times ``0.3``),
   gradients clipped to global norm 20;
5. the policy: maximise ``Q(z_t, a_t) / scale + entropy_coef * A * entropy``
   over the (stopped-gradient) rolled latents, ``rho**t``-weighted, where
   ``Q`` averages two random online heads and ``scale`` is a running
   (``tau``) estimate of the 5-95 percentile range of those values at
   ``t = 0`` (at least 1); Adam (``eps 1e-5``), clipped to norm 20;
6. the target Q-functions move ``tau`` towards the online ones (Polyak).

Before its first regular update a new model takes ``pretrain_steps`` updates
on the data it has then (TD-MPC2 takes as many as there are seed steps), so
the first planned episode already plans with a trained model.

Everything that affects the next update is checkpointed: the model (with its
targets), the three optimisers, the value scale, the step and the position of
the training noise stream, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Iterator

import tensorflow as tf
import tf_keras

from wm_core.api.checks import check_int_at_least
from wm_core.loops.training import Batch
from wm_tdmpc.networks import TDMPCModel, generator, random_shift
from wm_tf.checkpoints import TrainingCheckpoints

__all__ = ["Trainer", "td_targets", "n_step_td_targets", "percentile_range", "TRAINING_STREAM"]

#: The :func:`~wm_tdmpc.networks.generator` stream of the training noise.
TRAINING_STREAM = 0


def td_targets(rewards: tf.Tensor, discount: float, target_values: tf.Tensor) -> tf.Tensor:
    """``reward + discount * min over heads``: ``rewards [...]``,
    ``target_values [heads, ...]`` (the chosen target heads' values)."""
    return n_step_td_targets(rewards[None], discount, target_values)


def n_step_td_targets(rewards: tf.Tensor, discount: float, target_values: tf.Tensor) -> tf.Tensor:
    """``sum_k discount**k * rewards[k] + discount**n * min over heads``:
    ``rewards [n, ...]`` the ``n`` rewards from the state valued, in order;
    ``target_values [heads, ...]`` the chosen target heads' values of the
    state ``n`` steps later."""
    steps = rewards.shape[0]
    weights = tf.reshape(discount ** tf.range(steps, dtype=rewards.dtype), [steps] + [1] * (rewards.shape.rank - 1))
    return tf.reduce_sum(weights * rewards, 0) + discount**steps * tf.reduce_min(target_values, 0)


def percentile_range(values: tf.Tensor, low: float = 5.0, high: float = 95.0) -> tf.Tensor:
    """``percentile(values, high) - percentile(values, low)`` over a 1-D tensor,
    linearly interpolated between order statistics (NumPy's default)."""
    ordered = tf.sort(values)
    last = tf.cast(tf.size(values) - 1, tf.float32)

    def percentile(q: float) -> tf.Tensor:
        position = q / 100.0 * last
        below = tf.floor(position)
        above = tf.minimum(below + 1.0, last)
        weight = position - below
        return (tf.gather(ordered, tf.cast(below, tf.int32)) * (1.0 - weight)
                + tf.gather(ordered, tf.cast(above, tf.int32)) * weight)

    return percentile(high) - percentile(low)


def _two_heads(noise: tf.random.Generator, count: int) -> tf.Tensor:
    """Two different indices in ``[0, count)``, drawn uniformly."""
    first = noise.uniform([], 0, count, tf.int32)
    second = (first + noise.uniform([], 1, count, tf.int32)) % count
    return tf.stack([first, second])


class Trainer:
    """TD-MPC2's :class:`~wm_core.loops.training.Trainer` (see module docs).

    :param model: the networks (their variables exist already).
    :param model_dir: checkpoint directory; its newest checkpoint is restored now.
    :param learning_rate: Adam's rate for the model and the policy (3e-4).
    :param encoder_learning_scale: the encoder's rate is ``learning_rate`` times this (0.3).
    :param clip_norm: global-norm clip of the model's and the policy's gradients (20).
    :param rho: per-step decay of the losses' weights over the horizon (0.5).
    :param tau: Polyak rate of the target Q-functions and the value scale (0.01).
    :param consistency_coef, reward_coef, value_coef: the model loss's weights (20, 0.1, 0.1).
    :param entropy_coef: the policy's entropy bonus (1e-4).
    :param td_steps: the rewards summed before the TD targets bootstrap (1, as published).
    :param pretrain_steps: updates taken before the first regular one, on the
        first data trained on (0: none).
    :param checkpoints_to_keep: how many checkpoints stay on disk.
    """

    name = "TD-MPC"
    tolerated_nonfinite: frozenset[str] = frozenset()

    def __init__(
        self,
        model: TDMPCModel,
        model_dir: str,
        learning_rate: float = 3e-4,
        encoder_learning_scale: float = 0.3,
        clip_norm: float = 20.0,
        rho: float = 0.5,
        tau: float = 0.01,
        consistency_coef: float = 20.0,
        reward_coef: float = 0.1,
        value_coef: float = 0.1,
        entropy_coef: float = 1e-4,
        td_steps: int = 1,
        pretrain_steps: int = 0,
        checkpoints_to_keep: int = 3,
    ):
        check_int_at_least("pretrain_steps", pretrain_steps, 0)
        check_int_at_least("td_steps", td_steps, 1)
        if not 0.0 < tau <= 1.0 or not 0.0 < rho <= 1.0:
            raise ValueError(f"tau and rho must be in (0, 1]; got tau={tau}, rho={rho}")
        self.model = model
        self.frame_size = tuple(model.frame_size)
        self.action_dim = model.action_dim
        self.td_steps = int(td_steps)
        self.chunk_length = model.frame_stack + model.horizon + self.td_steps - 1
        self.clip_norm, self.rho, self.tau = float(clip_norm), float(rho), float(tau)
        self.coefs = (float(consistency_coef), float(reward_coef), float(value_coef))
        self.entropy_coef = float(entropy_coef)
        self.pretrain_steps = int(pretrain_steps)
        self.encoder_optimizer = tf_keras.optimizers.Adam(learning_rate * encoder_learning_scale)
        self.model_optimizer = tf_keras.optimizers.Adam(learning_rate)
        self.policy_optimizer = tf_keras.optimizers.Adam(learning_rate, epsilon=1e-5)
        self.encoder_optimizer.build(model.encoder_variables)
        self.rest_variables = model.model_variables[len(model.encoder_variables):]
        self.model_optimizer.build(self.rest_variables)
        self.policy_optimizer.build(model.policy_variables)
        self.value_scale = tf.Variable(1.0, trainable=False, name="value_scale")
        self.step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.noise = generator(model.seed, TRAINING_STREAM)
        self.checkpoints = TrainingCheckpoints(
            tf.train.Checkpoint(
                model=model, encoder_optimizer=self.encoder_optimizer,
                model_optimizer=self.model_optimizer, policy_optimizer=self.policy_optimizer,
                value_scale=self.value_scale, step=self.step_counter, noise=self.noise,
            ),
            model_dir, model.trainable_variables, self.name, checkpoints_to_keep,
        )
        self._compiled_step = tf.function(self._step, autograph=False)

    @property
    def step(self) -> int:
        """Optimisation steps taken (restored with the checkpoint)."""
        return int(self.step_counter.numpy())

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One update on ``batch`` (see module docs); returns the pre-update
        ``loss``, ``consistency_loss``, ``reward_loss``, ``value_loss``,
        ``policy_loss``, ``grad_norm``, ``policy_grad_norm`` (before clipping),
        ``value_scale`` and ``latent_spread`` (the encodings' standard deviation
        over the batch, averaged over the latent's entries: near 0, the encoder
        has collapsed to a constant and the model has stopped seeing the frames)
        as floats."""
        length = batch["image"].shape[1]
        if length != self.chunk_length:
            raise ValueError(
                f"TD-MPC trains on chunks of frame_stack + horizon + td_steps - 1 = {self.chunk_length} rows; "
                f"this batch has {length}"
            )
        arrays = {key: tf.constant(batch[key]) for key in ("image", "action", "reward")}
        return {key: float(value) for key, value in self._compiled_step(arrays).items()}

    def before_first_step(self, batches: Iterator[Batch]) -> None:
        """Pretrain: ``pretrain_steps`` updates on ``batches`` (see module docs)."""
        for _ in range(self.pretrain_steps):
            self.train_step(next(batches))

    def save(self) -> str:
        """Write a checkpoint at the current step (refuses non-finite weights)."""
        return self.checkpoints.save(self.step)

    def restore_last(self) -> str | None:
        """Put the last checkpoint's networks, optimisers, scale, noise and step back."""
        return self.checkpoints.restore_last()

    # -- the update ----------------------------------------------------------------

    def _observations(self, images: tf.Tensor) -> tf.Tensor:
        """``[B, L, h, w, C]`` -> shifted frame stacks ``[B, H + n, h, w, K * C]``."""
        model = self.model
        count, height, width, colors = tf.shape(images)[0], *self.frame_size
        observations = model.horizon + self.td_steps
        stacks = tf.stack(
            [tf.concat(tf.unstack(images[:, t : t + model.frame_stack], axis=1), -1)
             for t in range(observations)],
            axis=1,
        )
        flat = tf.reshape(stacks, [-1, height, width, colors * model.frame_stack])
        shifted = random_shift(flat, model.shift_pad, self.noise)
        return tf.reshape(shifted, [count, observations, height, width, colors * model.frame_stack])

    def _step(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        model, horizon, stack, steps = self.model, self.model.horizon, self.model.frame_stack, self.td_steps
        observations = self._observations(batch["image"])
        actions = tf.unstack(batch["action"][:, stack:], axis=1)  # (H + n - 1) x [B, A]
        rewards = batch["reward"][:, stack:]  # [B, H + n - 1]
        count = tf.shape(observations)[0]
        targets_flat = tf.stop_gradient(model.encode(tf.reshape(
            observations[:, 1:], [-1, *observations.shape[2:]])))
        next_latents = tf.unstack(tf.reshape(targets_flat, [count, horizon + steps - 1, -1]), axis=1)
        heads = _two_heads(self.noise, model.num_q)
        td = []
        for t in range(horizon):
            latent = next_latents[t + steps - 1]  # observation t + n
            next_action, _ = model.policy_action(latent, self.noise.normal([count, self.action_dim]))
            target_logits = tf.gather(model.q_logits(latent, next_action, target=True), heads)
            target_values = model.two_hot.decode(target_logits)
            returns = tf.transpose(rewards[:, t : t + steps])  # [n, B]
            td.append(tf.stop_gradient(n_step_td_targets(returns, model.discount, target_values)))
        rewards = tf.unstack(rewards, axis=1)
        weights = [self.rho**t for t in range(horizon)]

        with tf.GradientTape() as tape:
            latent = model.encode(observations[:, 0])
            latents = [latent]
            consistency = reward_loss = value_loss = 0.0
            for t in range(horizon):
                reward_loss += weights[t] * tf.reduce_mean(
                    model.two_hot.cross_entropy(model.reward(latent, actions[t]), rewards[t]))
                value_loss += weights[t] * tf.reduce_mean(
                    model.two_hot.cross_entropy(model.q_logits(latent, actions[t]), td[t][None]))
                latent = model.next(latent, actions[t])
                consistency += weights[t] * tf.reduce_mean(
                    tf.reduce_sum(tf.square(latent - next_latents[t]), -1) / model.latent_size)
                latents.append(latent)
            consistency, reward_loss = consistency / horizon, reward_loss / horizon
            value_loss = value_loss / horizon  # the mean over heads is already taken
            consistency_coef, reward_coef, value_coef = self.coefs
            loss = consistency_coef * consistency + reward_coef * reward_loss + value_coef * value_loss
        variables = model.model_variables
        gradients, grad_norm = tf.clip_by_global_norm(tape.gradient(loss, variables), self.clip_norm)
        split = len(model.encoder_variables)
        self.encoder_optimizer.apply_gradients(zip(gradients[:split], variables[:split]))
        self.model_optimizer.apply_gradients(zip(gradients[split:], variables[split:]))

        policy_loss, policy_grad_norm = self._policy_update(tf.stop_gradient(tf.stack(latents)))
        for online, target in zip(model.q_variables, model.target_q_variables):
            target.assign(target + self.tau * (online - target))
        self.step_counter.assign_add(1)
        return {
            "loss": loss, "consistency_loss": consistency, "reward_loss": reward_loss,
            "value_loss": value_loss, "policy_loss": policy_loss, "grad_norm": grad_norm,
            "policy_grad_norm": policy_grad_norm, "value_scale": self.value_scale.read_value(),
            "latent_spread": tf.reduce_mean(tf.math.reduce_std(latents[0], 0)),
        }

    def _policy_update(self, latents: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One policy step on ``latents [H + 1, B, Z]``; its loss and gradient norm."""
        model = self.model
        heads = _two_heads(self.noise, model.num_q)
        noise = self.noise.normal([*latents.shape[:2], self.action_dim])
        weights = tf.constant([self.rho**t for t in range(latents.shape[0])], tf.float32)
        variables = model.policy_variables
        with tf.GradientTape() as tape:
            actions, info = model.policy_action(latents, noise)
            logits = tf.gather(model.q_logits(latents, actions), heads)
            values = tf.reduce_mean(model.two_hot.decode(logits), 0)
            self.value_scale.assign(self.value_scale + self.tau * (
                tf.maximum(percentile_range(tf.stop_gradient(values[0])), 1.0) - self.value_scale))
            entropy = -info["log_prob"] * self.action_dim
            per_step = tf.reduce_mean(self.entropy_coef * entropy + values / self.value_scale, -1)
            loss = -tf.reduce_mean(per_step * weights)
        gradients, grad_norm = tf.clip_by_global_norm(tape.gradient(loss, variables), self.clip_norm)
        self.policy_optimizer.apply_gradients(zip(gradients, variables))
        return loss, grad_norm
