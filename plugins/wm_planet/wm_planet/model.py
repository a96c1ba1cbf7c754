"""PlaNet's recurrent state-space model and its training objective.

:class:`RecurrentStateSpaceModel` holds the networks (encoder, RSSM cell,
decoder, reward head) and computes the variational bound of Hafner et al.
(2019): per step, the Gaussian image and reward log-likelihoods minus the
KL from the posterior to the prior, clipped below at ``free_nats``; with
``overshooting = D >= 2``, latent overshooting adds the KL of the
``d``-step open-loop priors (``d = 2..D``, posterior targets held fixed by
a stop-gradient), averaged over ``d``.  It holds no per-episode state:
observe/predict/train functions are built around it (:mod:`wm_planet.planet`).

Variables are created by :meth:`RecurrentStateSpaceModel.build` inside the
``tf.distribute`` strategy the functions run under; one model belongs to one
strategy.
"""

from __future__ import annotations

from typing import Any

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from wm_core.api import spaces
from wm_planet import networks, rssm
from wm_tf import images

__all__ = ["RecurrentStateSpaceModel"]

tfd = tfp.distributions


@gin.configurable(module="planet")
class RecurrentStateSpaceModel(tf.Module):
    """PlaNet's RSSM world model (networks and loss; see module docs).

    :param task: a wm task; its action space gives the action size ``A``
        (discrete actions arrive as one-hot vectors, :mod:`wm_core.api.spaces`).
    :param frame_size: ``(64, 64, C)``; the conv stack is built for 64×64.
    :param reward_stop_gradient: keep reward gradients out of the latent state.
    :param deter_size, stoch_size: GRU state size and stochastic state size.
    :param hidden_size: width of the RSSM's ReLU hidden layers.
    :param embed_size: frame embedding size (``32·depth`` needs no projection).
    :param depth: conv depth multiplier (32 as published; small for tests).
    :param reward_units, reward_layers: the reward head's ReLU MLP (2 x 100
        as in the published code).
    :param free_nats: the KL term is ``max(free_nats, KL)`` per step.
    :param overshooting: latent overshooting distance ``D`` (0 or 1: off).
    :param overshooting_scale: weight of the overshooting KL.
    :param reward_scale: weight of the reward log-likelihood (10 as published).
    :param min_stddev: floor of the Gaussian standard deviations.
    :param image_bits: bit depth frames are quantised to (5 as published).
    :param mixed_precision: compute in float16 with float32 variables and a
        dynamic loss scale (``tf_keras`` ``mixed_float16`` policy); for GPUs —
        on CPUs float16 kernels are slow or missing.
    :param seed: seeds the sampling in observe, predict and training.
    """

    def __init__(
        self,
        task: Any,
        frame_size: tuple[int, int, int] = (64, 64, 3),
        reward_stop_gradient: bool = False,
        deter_size: int = 200,
        stoch_size: int = 30,
        hidden_size: int = 200,
        embed_size: int = 1024,
        depth: int = 32,
        reward_units: int = 100,
        reward_layers: int = 2,
        free_nats: float = 3.0,
        overshooting: int = 0,
        overshooting_scale: float = 1.0,
        reward_scale: float = 10.0,
        min_stddev: float = 0.1,
        image_bits: int = 5,
        mixed_precision: bool = False,
        seed: int = 0,
    ):
        super().__init__(name="planet")
        frame_size = tuple(int(size) for size in frame_size)
        if len(frame_size) != 3 or frame_size[:2] != networks.FRAME_SIZE:
            raise ValueError(
                f"frame_size {frame_size} is not supported: PlaNet's conv stack needs "
                f"(64, 64, C) frames"
            )
        if overshooting < 0:
            raise ValueError(f"overshooting must be >= 0, got {overshooting}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0 (as wm-run's --seed), got {seed}")
        self.task = task
        self.action_dim = spaces.action_dim(task.action_space)
        self.frame_size = frame_size
        self.reward_stop_gradient = reward_stop_gradient
        self.free_nats, self.reward_scale = free_nats, reward_scale
        self.overshooting, self.overshooting_scale = overshooting, overshooting_scale
        self.image_bits = image_bits
        self.mixed_precision = mixed_precision
        self.seed = seed
        dtype = "mixed_float16" if mixed_precision else "float32"
        self.encoder = networks.Encoder(depth, embed_size, dtype)
        self.cell = rssm.RSSM(deter_size, stoch_size, hidden_size, min_stddev, dtype)
        self.decoder = networks.Decoder(depth, embed_size, frame_size[-1], dtype)
        self.reward_head = networks.RewardHead(reward_units, reward_layers, dtype)
        self._strategy: tf.distribute.Strategy | None = None

    # -- variables -----------------------------------------------------------

    @property
    def strategy(self) -> tf.distribute.Strategy | None:
        """The strategy the variables were created under (``None`` before :meth:`build`)."""
        return self._strategy

    def build(self, strategy: tf.distribute.Strategy | None = None) -> tf.distribute.Strategy:
        """Create all variables inside ``strategy.scope()`` (once); return the strategy.

        ``None`` means the default strategy.  Raises ``ValueError`` if the
        model was already built under a different strategy.
        """
        strategy = strategy or tf.distribute.get_strategy()
        if self._strategy is not None:
            if strategy is not self._strategy:
                raise ValueError(
                    f"this RecurrentStateSpaceModel was built under {self._strategy!r}; "
                    f"it cannot also run under {strategy!r}: pass the same strategy to "
                    f"every create_planet_*_fn"
                )
            return strategy
        with strategy.scope():
            frames = tf.zeros((1, 1, *self.frame_size), tf.uint8)
            actions = tf.zeros((1, 1, self.action_dim), tf.float32)
            self.observe(frames, actions, self.initial_state(1))
            self.decode(self.cell.features(self.initial_state(1)))
            self.reward(self.cell.features(self.initial_state(1)))
        self._strategy = strategy
        return strategy

    # -- inference ------------------------------------------------------------

    def initial_state(self, batch_size: int | tf.Tensor) -> dict[str, tf.Tensor]:
        """The zero latent state ``{"deter": [B, D], "stoch": [B, S]}``."""
        return self.cell.initial_state(batch_size)

    def observe(
        self,
        frames: tf.Tensor,
        actions: tf.Tensor,
        state: dict[str, tf.Tensor],
        noise: tf.random.Generator | None = None,
    ) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        """Filter ``frames uint8 [B, T, 64, 64, C]`` and ``actions [B, T, A]``.

        ``actions[:, t]`` is the action that led to ``frames[:, t]``.  Returns
        the posterior states ``[B, T, ...]`` and the prior/posterior statistics.
        With a ``noise`` generator the states are sampled and the frames get
        the dequantisation noise training adds (inputs then match training's).
        """
        image = images.preprocess(frames, self.image_bits, noise)
        return self.cell.observe(self.encoder(image), actions, state, noise)

    def imagine(
        self,
        actions: tf.Tensor,
        state: dict[str, tf.Tensor],
        noise: tf.random.Generator | None = None,
    ) -> dict[str, tf.Tensor]:
        """Open-loop prior states ``[B, H, ...]`` for ``actions [B, H, A]`` from ``state``."""
        return self.cell.imagine(actions, state, noise)

    def reward(self, features: tf.Tensor) -> tf.Tensor:
        """Predicted reward (the Gaussian mean), ``[...]`` for features ``[..., F]``."""
        return self.reward_head(features)

    def decode(self, features: tf.Tensor) -> tf.Tensor:
        """Mean frame in model space, ``float32 [..., 64, 64, C]``."""
        return self.decoder(features)

    def frames(self, features: tf.Tensor) -> tf.Tensor:
        """Predicted frames, ``uint8 [..., 64, 64, C]``."""
        return images.postprocess(self.decode(features), self.image_bits)

    # -- objective ------------------------------------------------------------

    def loss(
        self, batch: dict[str, tf.Tensor], noise: tf.random.Generator | None = None
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Negative bound per sequence: ``loss [B]`` and metrics, each ``[B]``.

        ``batch``: ``image uint8 [B, T, 64, 64, C]``, ``action float32
        [B, T, A]``, ``reward float32 [B, T]``.  With a ``noise`` generator the
        frames get dequantisation noise and the states are sampled; without,
        the loss is deterministic (posterior means, no noise).
        """
        image = images.preprocess(batch["image"], self.image_bits, noise)
        batch_size = tf.shape(image)[0]
        states, stats = self.cell.observe(
            self.encoder(image), batch["action"], self.initial_state(batch_size), noise
        )
        features = self.cell.features(states)
        image_ll = tfd.Independent(tfd.Normal(self.decode(features), 1.0), 3).log_prob(image)
        if self.reward_stop_gradient:
            features = tf.stop_gradient(features)
        reward_ll = tfd.Normal(self.reward(features), 1.0).log_prob(batch["reward"])
        posterior = rssm.gaussian(stats["posterior_mean"], stats["posterior_std"])
        prior = rssm.gaussian(stats["prior_mean"], stats["prior_std"])
        kl = tfd.kl_divergence(posterior, prior)
        loss = tf.reduce_mean(
            -image_ll - self.reward_scale * reward_ll + tf.maximum(self.free_nats, kl), 1
        )
        metrics = {
            "image_log_likelihood": tf.reduce_mean(image_ll, 1),
            "reward_log_likelihood": tf.reduce_mean(reward_ll, 1),
            "kl": tf.reduce_mean(kl, 1),
        }
        if self.overshooting >= 2:
            overshooting_kl = self._overshooting_kl(states, stats, batch["action"], noise)
            loss += self.overshooting_scale * overshooting_kl
            metrics["overshooting_kl"] = overshooting_kl
        return loss, metrics

    def _overshooting_kl(
        self,
        states: dict[str, tf.Tensor],
        stats: dict[str, tf.Tensor],
        actions: tf.Tensor,
        noise: tf.random.Generator | None,
    ) -> tf.Tensor:
        """Mean over ``d = 2..D`` of the free-nats KL(sg posterior_{t+d} ‖ prior_{t+d|t}), ``[B]``.

        Every posterior state ``t`` starts an open-loop rollout; step ``d``
        is compared with the posterior at ``t + d`` where ``t + d < T``.
        """
        length = tf.shape(actions)[1]
        state = dict(states)
        posterior_mean = tf.stop_gradient(stats["posterior_mean"])
        posterior_std = tf.stop_gradient(stats["posterior_std"])
        total = tf.zeros(tf.shape(actions)[:1])
        for distance in range(1, self.overshooting + 1):
            shifted = [
                _shift_left(actions, distance),
                _shift_left(posterior_mean, distance),
                _shift_left(posterior_std, distance, fill=1.0),  # a valid Gaussian where masked
            ]
            flat_state = {key: _merge_batch_time(value) for key, value in state.items()}
            flat_state, mean, std = self.cell.prior_step(
                flat_state, _merge_batch_time(shifted[0]), noise
            )
            state = {key: tf.reshape(value, tf.shape(states[key])) for key, value in flat_state.items()}
            if distance == 1:
                continue  # the one-step KL is the bound's own term
            kl = tfd.kl_divergence(
                rssm.gaussian(shifted[1], shifted[2]),
                rssm.gaussian(tf.reshape(mean, tf.shape(shifted[1])), tf.reshape(std, tf.shape(shifted[2]))),
            )
            valid = tf.cast(tf.range(length) + distance < length, tf.float32)
            count = tf.maximum(tf.reduce_sum(valid), 1.0)
            total += tf.reduce_sum(tf.maximum(self.free_nats, kl) * valid, 1) / count
        return total / float(self.overshooting - 1)


def _shift_left(tensor: tf.Tensor, distance: int, fill: float = 0.0) -> tf.Tensor:
    """``tensor[:, t + distance]`` at position ``t``, padded with ``fill`` at the end."""
    padding = [[0, 0], [0, distance]] + [[0, 0]] * (tensor.shape.rank - 2)
    return tf.pad(tensor[:, distance:], padding, constant_values=fill)


def _merge_batch_time(tensor: tf.Tensor) -> tf.Tensor:
    return tf.reshape(tensor, tf.concat([[-1], tf.shape(tensor)[2:]], 0))

