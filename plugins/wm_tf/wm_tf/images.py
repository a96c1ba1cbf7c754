"""Frames in and out of a model: ``uint8`` pixels <-> ``float32`` model space.

A pixel ``x`` is quantised to ``bits`` bits and scaled into one unit
interval starting at ``offset``: ``floor(x / 2**(8 - bits)) / 2**bits +
offset``, so ``offset = -0.5`` gives ``[-0.5, 0.5)`` (PlaNet's 5-bit
coding, Hafner et al. 2019, Appendix A: the defaults) and ``bits = 8,
offset = 0`` gives ``x / 256`` in ``[0, 1)`` (SV2P).  In training, uniform
noise of one quantisation bin may be added (dequantisation).
:func:`postprocess` maps model-space images back to ``uint8`` frames.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["preprocess", "postprocess"]


def preprocess(
    image: tf.Tensor, bits: int = 5, noise: tf.random.Generator | None = None, offset: float = -0.5
) -> tf.Tensor:
    """``uint8 [..., H, W, C]`` → ``float32`` in ``[offset, offset + 1)``.

    With a ``noise`` generator, adds ``U(0, 2**-bits)`` dequantisation noise.
    Raises ``TypeError`` for frames that are not ``uint8``.
    """
    if image.dtype != tf.uint8:
        raise TypeError(f"frames must be uint8, got {image.dtype.name}")
    bins = 2.0**bits
    image = tf.floor(tf.cast(image, tf.float32) / 2.0 ** (8 - bits)) / bins + offset
    if noise is not None:
        image += noise.uniform(tf.shape(image), 0.0, 1.0 / bins)
    return image


def postprocess(image: tf.Tensor, bits: int = 5, offset: float = -0.5) -> tf.Tensor:
    """Model-space ``float [..., H, W, C]`` → ``uint8``, the inverse of
    :func:`preprocess` up to quantisation; values outside the interval clip."""
    bins = 2.0**bits
    levels = tf.clip_by_value(tf.floor((tf.cast(image, tf.float32) - offset) * bins), 0.0, bins - 1)
    return tf.cast(levels * 2.0 ** (8 - bits), tf.uint8)
