"""PlaNet's random draws: independent generator streams and a fast normal sampler.

Every stochastic part of the plugin draws from its own ``tf.random.Generator``
(:func:`generator`): the posterior when acting (``"observe"``), the prior
rollouts of planning (``"predict"``) and training (``"train"``).  Latent
states are drawn with :func:`standard_normal`.
"""

from __future__ import annotations

import zlib

import numpy as np
import tensorflow as tf

__all__ = ["generator", "standard_normal"]


def generator(seed: int, stream: str) -> tf.random.Generator:
    """A Philox generator for ``stream`` of a run seeded with ``seed`` (``>= 0``).

    Its key comes from both (numpy's ``SeedSequence``), its counter starts
    at 0, so every (seed, stream) pair has its own stream.  (Not
    ``tf.random.Generator.from_seed``: that puts the seed in the counter
    under one fixed key, so seeds ``s`` and ``s + 1`` give the same numbers
    one block apart.)
    """
    entropy = [seed, zlib.crc32(stream.encode())]
    key = np.random.SeedSequence(entropy).generate_state(1, np.uint64).view(np.int64)[0]
    return tf.random.Generator.from_key_counter(key, [0, 0], "philox")


def standard_normal(noise: tf.random.Generator, shape: tf.Tensor | list[int]) -> tf.Tensor:
    """``float32`` standard-normal draws of ``shape`` from ``noise``, by inversion.

    Each 64-bit word of the generator gives two 23-bit integers ``k``, and
    each draw is ``Φ⁻¹((2k + 1) / 2²⁴)``: the normal quantile at the middle
    of one of 2²³ equally likely bins, so ``|z| < 5.3`` (an exact normal
    passes that once in 8 million draws).  Under XLA on CPU it is cheaper
    than ``noise.normal`` (docs/design.md) and draws the same numbers with
    and without XLA.
    """
    count = tf.reduce_prod(shape)
    words = noise.uniform_full_int(tf.reshape((count + 1) // 2, [1]), tf.uint64)
    high = tf.bitwise.right_shift(words, tf.constant(41, tf.uint64))
    low = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(words, tf.constant(9, tf.uint64)), tf.constant(2**23 - 1, tf.uint64)
    )
    bins = tf.cast(tf.concat([high, low], 0)[:count], tf.float32)
    return tf.reshape(tf.math.ndtri((2.0 * bins + 1.0) * 2.0**-24), shape)
