"""The SV2P latent: posterior tower, prior, KL and its three-phase schedule.

SV2P (Babaeizadeh et al. 2018) uses one time-invariant latent ``z`` per
sequence, a spatial map ``[B, h, w, latent_channels]`` at the predictor's
bottleneck resolution (``h = H / 8``).  At training time ``z`` comes from the
approximate posterior ``q(z | x_0 .. x_{L-1})`` that the latent tower infers
from the whole chunk; at prediction time from the prior ``N(0, I)``.

Training follows the paper's three phases (:class:`KLSchedule`):

1. ``step < deterministic_steps``: the predictor is trained with ``z``
   drawn from the prior; the posterior is not used (KL weight 0).
2. ``deterministic_steps <= step < deterministic_steps + posterior_steps``:
   ``z`` comes from the posterior, KL weight still 0.
3. afterwards the KL weight ramps linearly from 0 to ``kl_weight`` over
   ``kl_ramp_steps`` steps and stays there.
"""

from __future__ import annotations

import gin
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

__all__ = ["LatentTower", "KLSchedule", "kl_to_prior"]

_MIN_STD = 1e-4


class LatentTower(tf_keras.layers.Layer):
    """Posterior ``q(z | frames)``: convolutions over the chunk stacked along channels.

    ``call(frames [B, L, H, W, C])`` returns ``(mean, std)``, each
    ``[B, H/8, W/8, latent_channels]``.  ``L`` is fixed by the first call
    (the training chunk length).
    """

    def __init__(self, latent_channels: int, base_channels: int, **kwargs):
        super().__init__(**kwargs)
        widths = (base_channels, 2 * base_channels, 2 * base_channels)
        self.downsample = [
            tf_keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu")
            for width in widths
        ]
        self.norms = [tf_keras.layers.LayerNormalization() for _ in widths]
        self.statistics = tf_keras.layers.Conv2D(2 * latent_channels, 3, padding="same")

    def call(self, frames: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        shape = tf.shape(frames)
        length, height, width, channels = frames.shape[1:]
        hidden = tf.reshape(
            tf.transpose(frames, [0, 2, 3, 1, 4]), [shape[0], height, width, length * channels]
        )
        for conv, norm in zip(self.downsample, self.norms):
            hidden = norm(conv(hidden))
        mean, raw_std = tf.split(self.statistics(hidden), 2, axis=-1)
        return mean, tf.nn.softplus(raw_std) + _MIN_STD


def kl_to_prior(mean: tf.Tensor, std: tf.Tensor) -> tf.Tensor:
    """``KL(N(mean, std) || N(0, 1))`` averaged over the latent map, ``[B]``."""
    posterior = tfp.distributions.Normal(mean, std)
    prior = tfp.distributions.Normal(tf.zeros_like(mean), tf.ones_like(std))
    return tf.reduce_mean(tfp.distributions.kl_divergence(posterior, prior), axis=[1, 2, 3])


@gin.configurable(module="sv2p")
class KLSchedule:
    """The three-phase latent schedule of the module docs.

    :param deterministic_steps: phase 1 length (prior latent, no KL).
    :param posterior_steps: phase 2 length (posterior latent, KL weight 0).
    :param kl_ramp_steps: phase 3 ramp length (0: jump straight to ``kl_weight``).
    :param kl_weight: final KL weight (the paper's beta).
    """

    def __init__(
        self,
        deterministic_steps: int = 10000,
        posterior_steps: int = 10000,
        kl_ramp_steps: int = 10000,
        kl_weight: float = 1e-3,
    ):
        for name, value in (
            ("deterministic_steps", deterministic_steps),
            ("posterior_steps", posterior_steps),
            ("kl_ramp_steps", kl_ramp_steps),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight}")
        self.deterministic_steps = deterministic_steps
        self.posterior_steps = posterior_steps
        self.kl_ramp_steps = kl_ramp_steps
        self.kl_weight = float(kl_weight)

    def uses_posterior(self, step: tf.Tensor) -> tf.Tensor:
        """Boolean scalar: is ``z`` drawn from the posterior at ``step``?"""
        return tf.cast(step, tf.int64) >= self.deterministic_steps

    def weight(self, step: tf.Tensor) -> tf.Tensor:
        """The KL weight at ``step`` (``float32`` scalar)."""
        ramp_start = self.deterministic_steps + self.posterior_steps
        progress = tf.cast(tf.cast(step, tf.int64) - ramp_start, tf.float32)
        if self.kl_ramp_steps == 0:
            fraction = tf.cast(progress >= 0, tf.float32)
        else:
            fraction = tf.clip_by_value((progress + 1.0) / self.kl_ramp_steps, 0.0, 1.0)
        return self.kl_weight * fraction

    def __repr__(self) -> str:
        return (
            f"KLSchedule(deterministic_steps={self.deterministic_steps}, "
            f"posterior_steps={self.posterior_steps}, kl_ramp_steps={self.kl_ramp_steps}, "
            f"kl_weight={self.kl_weight})"
        )
