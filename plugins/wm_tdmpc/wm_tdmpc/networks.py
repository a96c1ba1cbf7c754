"""TD-MPC2's networks (Hansen et al. 2024) and the arithmetic they share.

* :func:`symlog` / :func:`symexp` and :class:`TwoHot`: scalars (rewards,
  values) are predicted as categorical distributions over ``bins`` points
  evenly spaced in symlog space on ``[vmin, vmax]``; a target is the
  *two-hot* vector putting its weight on the two bins around it, a
  prediction is decoded as the softmax-expected bin, mapped back by symexp.
* :func:`simnorm`: the latent is cut into groups of ``group`` entries and
  each group goes through a softmax (a point on a simplex).
* :func:`random_shift`: DrQ's augmentation, frames padded by ``pad`` edge
  pixels and cropped back at a random offset.
* :class:`TDMPCModel`: the conv encoder (over a stack of frames, into a
  SimNorm latent), the latent dynamics, the reward head, the Q-ensemble
  (with a Polyak-averaged copy, the target) and the squashed-Gaussian policy
  prior.  Hidden layers are Linear + LayerNorm + Mish; the last layers of
  the reward head and the Q-functions start at zero, so every scalar starts
  as ``symexp(centre bin)``.

Shapes: frames ``uint8 [..., h, w, stack * C]`` (the newest frame's
channels last), latents ``float32 [..., Z]``, actions ``float32 [..., A]``
in the task's bounds (the networks see them rescaled to ``[-1, 1]``).
The networks hold no state between calls.  Layers are ``tf_keras`` layers
held by ``tf.Module``s, as in ``wm_planet``, tracked by ``tf.train.Checkpoint``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterator

import gin
import numpy as np
import tensorflow as tf
import tf_keras

from wm_core.api import spaces

__all__ = [
    "symlog",
    "symexp",
    "simnorm",
    "random_shift",
    "generator",
    "TwoHot",
    "MLP",
    "TDMPCModel",
]


def symlog(x: tf.Tensor) -> tf.Tensor:
    """``sign(x) * log(1 + |x|)``."""
    return tf.sign(x) * tf.math.log1p(tf.abs(x))


def symexp(x: tf.Tensor) -> tf.Tensor:
    """``sign(x) * (exp(|x|) - 1)``, the inverse of :func:`symlog`."""
    return tf.sign(x) * tf.math.expm1(tf.abs(x))


def simnorm(x: tf.Tensor, group: int) -> tf.Tensor:
    """Softmax over consecutive groups of ``group`` entries of the last axis
    (whose size must be a multiple of ``group``); same shape as ``x``."""
    shape = tf.shape(x)
    grouped = tf.reshape(x, tf.concat([shape[:-1], [-1, group]], 0))
    return tf.reshape(tf.nn.softmax(grouped, axis=-1), shape)


def generator(seed: int, stream: int) -> tf.random.Generator:
    """The Philox stream ``stream`` (a small integer naming a use: training,
    proposals) of a run seeded with ``seed``: the seed is the key, the stream
    the counter's high word, so every (seed, stream) pair draws its own numbers."""
    return tf.random.Generator.from_key_counter(seed, [0, stream], "philox")


def random_shift(images: tf.Tensor, pad: int, noise: tf.random.Generator) -> tf.Tensor:
    """``images [N, h, w, C]`` (any dtype) each shifted by its own random
    integer offset in ``[-pad, pad]`` along both axes, the border pixels
    repeated into the gap (DrQ's augmentation); same shape and dtype.

    One gather of whole pixels from the flattened batch (10x faster on a CPU
    than padding and cropping with batched gathers)."""
    if pad == 0:
        return images
    count, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    offsets = noise.uniform([count, 2], -pad, pad + 1, tf.int32)
    rows = tf.clip_by_value(offsets[:, :1] + tf.range(height)[None], 0, height - 1)  # [N, h]
    cols = tf.clip_by_value(offsets[:, 1:] + tf.range(width)[None], 0, width - 1)  # [N, w]
    pixels = (tf.range(count)[:, None, None] * height + rows[:, :, None]) * width + cols[:, None, :]
    flat = tf.reshape(images, [-1, images.shape[-1]])
    return tf.reshape(tf.gather(flat, pixels), tf.shape(images))


class TwoHot:
    """Scalars as distributions over ``bins`` symlog-spaced points (see module docs).

    Bin ``i`` sits at ``vmin + i * (vmax - vmin) / (bins - 1)`` in symlog
    space; targets beyond ``[symexp(vmin), symexp(vmax)]`` are clipped.
    """

    def __init__(self, bins: int = 101, vmin: float = -10.0, vmax: float = 10.0):
        if bins < 2 or not vmin < vmax:
            raise ValueError(f"two-hot needs bins >= 2 and vmin < vmax; got {bins}, {vmin}, {vmax}")
        self.bins, self.vmin, self.vmax = int(bins), float(vmin), float(vmax)
        self.width = (self.vmax - self.vmin) / (self.bins - 1)
        self.centres = tf.constant(np.linspace(vmin, vmax, bins), tf.float32)

    def encode(self, x: tf.Tensor) -> tf.Tensor:
        """``x [...]`` as two-hot vectors ``float32 [..., bins]`` summing to one."""
        position = (tf.clip_by_value(symlog(x), self.vmin, self.vmax) - self.vmin) / self.width
        lower = tf.minimum(tf.floor(position), self.bins - 2)
        upper_weight = (position - lower)[..., None]
        lower_hot = tf.one_hot(tf.cast(lower, tf.int32), self.bins)
        upper_hot = tf.one_hot(tf.cast(lower, tf.int32) + 1, self.bins)
        return lower_hot * (1.0 - upper_weight) + upper_hot * upper_weight

    def decode(self, logits: tf.Tensor) -> tf.Tensor:
        """``logits [..., bins]`` as scalars ``[...]``: symexp of the expected bin."""
        return symexp(tf.reduce_sum(tf.nn.softmax(logits) * self.centres, -1))

    def cross_entropy(self, logits: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
        """``-sum(two_hot(x) * log_softmax(logits))``, shape ``[...]``."""
        return -tf.reduce_sum(self.encode(x) * tf.nn.log_softmax(logits), -1)


#: The encoder's kernel initialisers by name (``TDMPCModel.encoder_initializer``).
INITIALIZERS = {
    "glorot_uniform": tf_keras.initializers.GlorotUniform,
    "he_normal": tf_keras.initializers.HeNormal,
}


def _glorot(seeds: Iterator[int]) -> tf_keras.initializers.Initializer:
    return tf_keras.initializers.GlorotUniform(seed=next(seeds))


class MLP(tf.Module):
    """``layers`` hidden layers of ``units`` (Linear, LayerNorm, Mish), then a
    linear layer of ``outputs`` (zero-initialised with ``zero_output``;
    followed by a LayerNorm with ``normed_output``, as TD-MPC2's dynamics
    before their SimNorm).  Each kernel's initial values are drawn with the
    next seed of ``seeds``."""

    def __init__(self, units: int, layers: int, outputs: int, seeds: Iterator[int],
                 zero_output: bool = False, normed_output: bool = False, name: str | None = None):
        super().__init__(name=name)
        self.hidden = [
            (tf_keras.layers.Dense(units, kernel_initializer=_glorot(seeds)),
             tf_keras.layers.LayerNormalization(epsilon=1e-5))
            for _ in range(layers)
        ]
        initializer = "zeros" if zero_output else _glorot(seeds)
        self.output = tf_keras.layers.Dense(outputs, kernel_initializer=initializer)
        self.output_norm = tf_keras.layers.LayerNormalization(epsilon=1e-5) if normed_output else None

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        """``[..., inputs]`` -> ``[..., outputs]`` (any number of leading dims)."""
        leading = tf.shape(x)[:-1]
        x = tf.reshape(x, [-1, x.shape[-1]])  # Keras fixes LayerNormalization's axis at build
        for dense, norm in self.hidden:
            x = norm(dense(x))
            x = x * tf.tanh(tf.nn.softplus(x))  # Mish
        x = self.output(x)
        if self.output_norm is not None:
            x = self.output_norm(x)
        return tf.reshape(x, tf.concat([leading, [x.shape[-1]]], 0))


def _conv_output_size(size: int) -> int:
    """Spatial size after the encoder's convs (7/2, 5/2, 3/2, 3/1, all VALID)."""
    for kernel, stride in ((7, 2), (5, 2), (3, 2), (3, 1)):
        size = (size - kernel) // stride + 1
    return size


@gin.configurable(module="tdmpc")
class TDMPCModel(tf.Module):
    """TD-MPC2's networks (see module docs); no per-episode state.

    :param task: a wm task with ``image`` frames and a ``Box`` action space.
    :param frame_stack: frames the encoder sees at once (the newest last).
    :param channels: channels of each of the encoder's 4 conv layers; the
        latent size ``Z`` is ``channels * s * s``, ``s`` the convs' output
        size (4 for 64x64 frames), a multiple of ``simnorm_group``.
    :param units, layers: width and hidden-layer count of every MLP.
    :param num_q: Q-functions in the ensemble (>= 2).
    :param simnorm_group: SimNorm's group size.
    :param bins, vmin, vmax: the two-hot support (:class:`TwoHot`).
    :param log_std_min, log_std_max: range of the policy's log stdev.
    :param horizon: steps the latent is rolled out over in training, the
        longest plan ``predict_fn`` accepts.
    :param discount: the TD targets' discount (an objective bootstrapping with
        the predicted value should use the same).
    :param shift_pad: random-shift augmentation in training, in pixels (0: off).
    :param encoder_initializer: the conv kernels' initial values, a name in
        :data:`INITIALIZERS`.
    :param encoder_norm: LayerNorm the convs' flattened output before SimNorm
        (not in the published encoder; see ``configs/base/tdmpc_mppi_cpu.gin``).
    :param seed: seeds the variables' initial values (the same seed, the same
        weights) and the training noise.
    """

    def __init__(
        self,
        task: Any,
        frame_stack: int = 3,
        channels: int = 16,
        units: int = 128,
        layers: int = 2,
        num_q: int = 5,
        simnorm_group: int = 8,
        bins: int = 101,
        vmin: float = -10.0,
        vmax: float = 10.0,
        log_std_min: float = -10.0,
        log_std_max: float = 2.0,
        horizon: int = 3,
        discount: float = 0.95,
        shift_pad: int = 4,
        encoder_initializer: str = "glorot_uniform",
        encoder_norm: bool = False,
        seed: int = 0,
    ):
        super().__init__(name="tdmpc")
        if encoder_initializer not in INITIALIZERS:
            raise ValueError(
                f"encoder_initializer must be one of {sorted(INITIALIZERS)}, got {encoder_initializer!r}"
            )
        space = task.observation_space
        image = space.spaces.get("image") if isinstance(getattr(space, "spaces", None), dict) else None
        if image is None or len(image.shape) != 3:
            raise ValueError(
                f"TD-MPC learns from pixels: task {getattr(task, 'name', task)!r} must observe a "
                f"dict with an 'image' uint8 [H, W, C]; its observation space is {space!r}"
            )
        if spaces.is_discrete(task.action_space):
            raise TypeError(
                f"TD-MPC's policy prior is a squashed Gaussian: it needs a Box action space; task "
                f"{getattr(task, 'name', task)!r} has {task.action_space!r}"
            )
        height, width, colors = (int(size) for size in image.shape)
        side = min(_conv_output_size(height), _conv_output_size(width))
        if side < 1:
            raise ValueError(f"TD-MPC's encoder needs frames of at least 25x25 pixels, got {height}x{width}")
        for name, value, least in (("frame_stack", frame_stack, 1), ("num_q", num_q, 2),
                                   ("horizon", horizon, 1), ("channels", channels, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        latent = channels * _conv_output_size(height) * _conv_output_size(width)
        if latent % simnorm_group:
            raise ValueError(
                f"the latent size {latent} (channels {channels} x the convs' output) must be a "
                f"multiple of simnorm_group={simnorm_group}"
            )
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        self.frame_size = (height, width, colors)
        self.frame_stack = int(frame_stack)
        self.action_dim = spaces.action_dim(task.action_space)
        low, high = spaces.action_bounds(task.action_space)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"TD-MPC needs finite action bounds, got low={low} high={high}")
        self.action_low = tf.constant(low, tf.float32)
        self.action_high = tf.constant(high, tf.float32)
        self.latent_size = latent
        self.simnorm_group = int(simnorm_group)
        self.num_q = int(num_q)
        self.horizon = int(horizon)
        self.discount = float(discount)
        self.shift_pad = int(shift_pad)
        self.log_std_min, self.log_std_max = float(log_std_min), float(log_std_max)
        self.two_hot = TwoHot(bins, vmin, vmax)
        self.seed = int(seed)
        seeds = itertools.count(self.seed * 1_000)  # one per kernel: the initial weights
        self.convs = [
            tf_keras.layers.Conv2D(channels, kernel, stride, activation=activation,
                                   kernel_initializer=INITIALIZERS[encoder_initializer](seed=next(seeds)))
            for kernel, stride, activation in ((7, 2, "relu"), (5, 2, "relu"), (3, 2, "relu"), (3, 1, None))
        ]
        self.encoder_norm = tf_keras.layers.LayerNormalization(epsilon=1e-5) if encoder_norm else None
        self.dynamics = MLP(units, layers, latent, seeds, normed_output=True, name="dynamics")
        self.reward_head = MLP(units, layers, bins, seeds, zero_output=True, name="reward")
        self.q_heads = [MLP(units, layers, bins, seeds, zero_output=True, name=f"q{i}") for i in range(num_q)]
        # The targets start as copies of the online heads (see _build).
        self.target_q_heads = [MLP(units, layers, bins, seeds, name=f"target_q{i}") for i in range(num_q)]
        self.policy = MLP(units, layers, 2 * self.action_dim, seeds, name="policy")
        self._build()

    def _build(self) -> None:
        latent = tf.zeros([1, self.latent_size])
        action = tf.zeros([1, self.action_dim])
        self.encode(tf.zeros([1, *self.frame_size[:2], self.frame_size[2] * self.frame_stack], tf.uint8))
        self.next(latent, action)
        self.reward(latent, action)
        self.q_logits(latent, action)
        self.q_logits(latent, action, target=True)
        self.policy_action(latent, None)
        for online, target in zip(self.q_variables, self.target_q_variables):
            target.assign(online)

    # -- variable groups -------------------------------------------------------

    @property
    def encoder_variables(self) -> list[tf.Variable]:
        norm = self.encoder_norm.trainable_variables if self.encoder_norm is not None else []
        return [v for conv in self.convs for v in conv.trainable_variables] + norm

    @property
    def q_variables(self) -> list[tf.Variable]:
        return [v for head in self.q_heads for v in head.trainable_variables]

    @property
    def target_q_variables(self) -> list[tf.Variable]:
        return [v for head in self.target_q_heads for v in head.trainable_variables]

    @property
    def model_variables(self) -> list[tf.Variable]:
        """Encoder, dynamics, reward head and Q-functions: what the model loss trains."""
        return (self.encoder_variables + list(self.dynamics.trainable_variables)
                + list(self.reward_head.trainable_variables) + self.q_variables)

    @property
    def policy_variables(self) -> list[tf.Variable]:
        return list(self.policy.trainable_variables)

    # -- the networks ------------------------------------------------------------

    def encode(self, stacks: tf.Tensor) -> tf.Tensor:
        """``uint8 [N, h, w, stack * C]`` frame stacks -> latents ``float32 [N, Z]``."""
        x = tf.cast(stacks, tf.float32) / 255.0 - 0.5
        for conv in self.convs:
            x = conv(x)
        x = tf.reshape(x, [tf.shape(x)[0], self.latent_size])
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return simnorm(x, self.simnorm_group)

    def unit_actions(self, actions: tf.Tensor) -> tf.Tensor:
        """Task-bounded actions rescaled to ``[-1, 1]``."""
        return 2.0 * (actions - self.action_low) / (self.action_high - self.action_low) - 1.0

    def task_actions(self, unit: tf.Tensor) -> tf.Tensor:
        """Actions in ``[-1, 1]`` mapped to the task's bounds."""
        return self.action_low + (unit + 1.0) * 0.5 * (self.action_high - self.action_low)

    def _joint(self, latents: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        return tf.concat([latents, self.unit_actions(actions)], -1)

    def next(self, latents: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """The latent after ``actions`` (task bounds): ``[..., Z]``."""
        return simnorm(self.dynamics(self._joint(latents, actions)), self.simnorm_group)

    def reward(self, latents: tf.Tensor, actions: tf.Tensor) -> tf.Tensor:
        """Reward logits ``[..., bins]`` for taking ``actions`` in ``latents``."""
        return self.reward_head(self._joint(latents, actions))

    def q_logits(self, latents: tf.Tensor, actions: tf.Tensor, target: bool = False) -> tf.Tensor:
        """Every Q-function's logits, ``[num_q, ..., bins]`` (``target``: the Polyak copies)."""
        joint = self._joint(latents, actions)
        heads = self.target_q_heads if target else self.q_heads
        return tf.stack([head(joint) for head in heads])

    def value(self, latents: tf.Tensor) -> tf.Tensor:
        """``[...]``: the mean over the Q-ensemble of ``Q(z, policy mean action)``."""
        actions, _ = self.policy_action(latents, None)
        return tf.reduce_mean(self.two_hot.decode(self.q_logits(latents, actions)), 0)

    def policy_action(
        self, latents: tf.Tensor, unit_noise: tf.Tensor | None
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The policy prior's action (task bounds) and its statistics.

        ``unit_noise`` ``[..., A]`` standard-normal draws give a sample
        ``tanh(mean + exp(log_std) * noise)`` (``None``: ``tanh(mean)``);
        the statistics are ``{"log_prob": [...]}``, the log density of the
        squashed sample (empty without noise).
        """
        mean, raw_log_std = tf.split(self.policy(latents), 2, axis=-1)
        if unit_noise is None:
            return self.task_actions(tf.tanh(mean)), {}
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (tf.tanh(raw_log_std) + 1.0)
        sample = tf.tanh(mean + unit_noise * tf.exp(log_std))
        gaussian = (tf.reduce_sum(-0.5 * tf.square(unit_noise) - log_std, -1)
                    - 0.5 * math.log(2 * math.pi) * self.action_dim)
        log_prob = gaussian - tf.reduce_sum(tf.math.log(tf.nn.relu(1.0 - tf.square(sample)) + 1e-6), -1)
        return self.task_actions(sample), {"log_prob": log_prob}
