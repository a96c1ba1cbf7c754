"""PlaNet's pixel encoder, pixel decoder and reward head (Hafner et al. 2019).

Layers are ``tf_keras`` (Keras 2) layers held by ``tf.Module``s: tested
initialisers and per-layer mixed-precision policies, tracked by
``tf.train.Checkpoint``, and no dependence on Keras 3, which TensorFlow
Probability 0.25 does not support.  Every network returns ``float32``
whatever its compute dtype.

Shapes: frames are ``[..., 64, 64, C]`` (any number of leading batch dims);
features (``concat(deter, stoch)``) are ``[..., F]``.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

__all__ = ["FRAME_SIZE", "Encoder", "Decoder", "RewardHead"]

FRAME_SIZE = (64, 64)


def _merge_leading(tensor: tf.Tensor, kept: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Flatten all but the last ``kept`` dims; return the tensor and the leading shape."""
    leading = tf.shape(tensor)[:-kept]
    merged = tf.reshape(tensor, tf.concat([[-1], tf.shape(tensor)[-kept:]], 0))
    return merged, leading


class Encoder(tf.Module):
    """Four 4×4 stride-2 ReLU convolutions of depth ``depth·{1,2,4,8}``.

    ``float32 [..., 64, 64, C]`` → ``[..., embed_size]``.  The last conv map
    is ``2×2×8·depth`` (1024 for depth 32, the published size); a linear
    projection is added only when ``embed_size`` differs from that.
    """

    def __init__(self, depth: int, embed_size: int, dtype: str = "float32"):
        super().__init__(name="encoder")
        self.convs = [
            tf_keras.layers.Conv2D(depth * scale, 4, 2, activation="relu", dtype=dtype)
            for scale in (1, 2, 4, 8)
        ]
        flat_size = 2 * 2 * 8 * depth
        self.projection = (
            None if embed_size == flat_size else tf_keras.layers.Dense(embed_size, dtype=dtype)
        )

    def __call__(self, image: tf.Tensor) -> tf.Tensor:
        hidden, leading = _merge_leading(image, 3)
        for conv in self.convs:
            hidden = conv(hidden)
        hidden = tf.reshape(hidden, [tf.shape(hidden)[0], -1])
        if self.projection is not None:
            hidden = self.projection(hidden)
        embed = tf.reshape(hidden, tf.concat([leading, tf.shape(hidden)[-1:]], 0))
        return tf.cast(embed, tf.float32)


class Decoder(tf.Module):
    """Dense to ``embed_size``, then transposed convolutions 5,5,6,6 (stride 2).

    ``[..., F]`` → mean frame ``float32 [..., 64, 64, channels]``; the
    likelihood is a unit-variance Gaussian around it.
    """

    def __init__(self, depth: int, embed_size: int, channels: int, dtype: str = "float32"):
        super().__init__(name="decoder")
        self.embed_size = embed_size
        self.dense = tf_keras.layers.Dense(embed_size, dtype=dtype)
        deconv = tf_keras.layers.Conv2DTranspose
        self.deconvs = [
            deconv(4 * depth, 5, 2, activation="relu", dtype=dtype),
            deconv(2 * depth, 5, 2, activation="relu", dtype=dtype),
            deconv(depth, 6, 2, activation="relu", dtype=dtype),
            deconv(channels, 6, 2, dtype=dtype),
        ]

    def __call__(self, features: tf.Tensor) -> tf.Tensor:
        hidden, leading = _merge_leading(features, 1)
        hidden = tf.reshape(self.dense(hidden), [-1, 1, 1, self.embed_size])
        for deconv in self.deconvs:
            hidden = deconv(hidden)
        mean = tf.reshape(hidden, tf.concat([leading, tf.shape(hidden)[1:]], 0))
        return tf.cast(mean, tf.float32)


class RewardHead(tf.Module):
    """``layers`` ReLU dense layers of ``units``, then a linear scalar: ``[..., F]`` → ``[...]``."""

    def __init__(self, units: int, layers: int, dtype: str = "float32"):
        super().__init__(name="reward_head")
        self.hidden = [
            tf_keras.layers.Dense(units, activation="relu", dtype=dtype) for _ in range(layers)
        ]
        self.out = tf_keras.layers.Dense(1, dtype=dtype)

    def __call__(self, features: tf.Tensor) -> tf.Tensor:
        hidden = features
        for layer in self.hidden:
            hidden = layer(hidden)
        return tf.cast(self.out(hidden)[..., 0], tf.float32)
