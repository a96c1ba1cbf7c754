"""PlaNet's 5-bit image coding: uint8 frames <-> model space ``[-0.5, 0.5)``.

A frame is quantised to ``bits`` bits (``floor(pixel / 2**(8 - bits))``) and
scaled to ``[-0.5, 0.5)``; in training, uniform noise of one quantisation
bin is added (dequantisation, Hafner et al. 2019, Appendix A).
:func:`postprocess` maps a decoder mean back to uint8 frames.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["preprocess", "postprocess"]


def preprocess(
    image: tf.Tensor, bits: int = 5, noise: tf.random.Generator | None = None
) -> tf.Tensor:
    """``uint8 [..., H, W, C]`` → ``float32`` in ``[-0.5, 0.5)``.

    With a ``noise`` generator, adds ``U(0, 2**-bits)`` dequantisation noise.
    """
    if image.dtype != tf.uint8:
        raise TypeError(f"frames must be uint8, got {image.dtype.name}")
    bins = 2.0**bits
    image = tf.floor(tf.cast(image, tf.float32) / 2.0 ** (8 - bits)) / bins - 0.5
    if noise is not None:
        image += noise.uniform(tf.shape(image), 0.0, 1.0 / bins)
    return image


def postprocess(image: tf.Tensor, bits: int = 5) -> tf.Tensor:
    """Model-space ``float [..., H, W, C]`` → ``uint8``, the inverse of :func:`preprocess`."""
    bins = 2.0**bits
    levels = tf.clip_by_value(tf.floor((tf.cast(image, tf.float32) + 0.5) * bins), 0.0, bins - 1)
    return tf.cast(levels * 2.0 ** (8 - bits), tf.uint8)
