"""PlaNet's pixel encoder, pixel decoder and reward head (Hafner et al. 2019).

Layers are ``tf_keras`` (Keras 2) layers held by ``tf.Module``s: tested
initialisers and per-layer mixed-precision policies, tracked by
``tf.train.Checkpoint``, and no dependence on Keras 3, which TensorFlow
Probability 0.25 does not support.  Every network returns ``float32``
whatever its compute dtype.

Shapes: frames are ``[..., 64, 64, C]`` (any number of leading batch dims);
features (``concat(deter, stoch)``) are ``[..., F]``.

Speed (CPU)
-----------
The conv layers hold the variables; with ``fast=True`` (the default) the
networks compute the same functions with ops that TensorFlow's CPU kernels
run fast, and with hand-written gradients:

* the decoder's first transposed convolution reads a 1×1 map: it is one
  matmul (far faster on CPU than TensorFlow's ``Conv2DBackpropInput``;
  docs/design.md);
* a stride-2 transposed convolution runs as a *sub-pixel* convolution: one
  stride-1 convolution with ``⌈k/2⌉²`` taps and ``4 · out`` channels, then
  ``depth_to_space`` (:func:`conv2d_transpose_stride2`); its input gradient
  is the strided convolution it is the transpose of;
* a stride-2 convolution's input gradient is the transposed convolution,
  run the same sub-pixel way (:func:`conv2d_stride2`).

Outputs and gradients equal the Keras layers' up to float rounding
(``tests/test_networks.py``); ``fast=False`` calls the Keras layers.
Checkpoints are the same either way (same variables).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

__all__ = [
    "FRAME_SIZE", "Encoder", "Decoder", "RewardHead", "conv2d_stride2", "conv2d_transpose_stride2",
]

FRAME_SIZE = (64, 64)


def _merge_leading(tensor: tf.Tensor, kept: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Flatten all but the last ``kept`` dims; return the tensor and the leading shape."""
    leading = tf.shape(tensor)[:-kept]
    merged = tf.reshape(tensor, tf.concat([[-1], tf.shape(tensor)[-kept:]], 0))
    return merged, leading


# -- stride-2 convolutions with fast gradients -----------------------------------


def _subpixel_kernel(kernel: tf.Tensor) -> tf.Tensor:
    """A transposed-conv kernel ``[k, k, out, in]`` as the stride-1 kernel
    ``[t, t, in, 4·out]`` of its sub-pixel form (``t = ⌈k/2⌉``; odd ``k`` is
    zero-padded to ``2t``).  Output channel ``(r·2 + s)·out + c`` is the
    phase ``(r, s)`` of output channel ``c``, as ``depth_to_space`` reads it."""
    size, out_channels, in_channels = kernel.shape[0], kernel.shape[2], kernel.shape[3]
    if size % 2:
        kernel = tf.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0]])
    taps = (size + 1) // 2
    # kernel[2a + r, 2b + s] is tap (taps - 1 - a, taps - 1 - b) of phase (r, s).
    kernel = tf.reshape(kernel, [taps, 2, taps, 2, out_channels, in_channels])
    kernel = tf.reverse(kernel, [0, 2])
    kernel = tf.transpose(kernel, [0, 2, 5, 1, 3, 4])
    return tf.reshape(kernel, [taps, taps, in_channels, 4 * out_channels])


def _transposed(inputs: tf.Tensor, kernel: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """VALID stride-2 transposed convolution of ``inputs [N, h, w, in]`` by
    ``kernel [k, k, out, in]``, cut or zero-padded at the bottom/right to
    ``size`` (its natural size is ``2(h - 1) + k``)."""
    taps = (kernel.shape[0] + 1) // 2
    padded = tf.pad(inputs, [[0, 0], [taps - 1, taps - 1], [taps - 1, taps - 1], [0, 0]])
    phases = tf.nn.conv2d(padded, _subpixel_kernel(kernel), 1, "VALID")
    outputs = tf.nn.depth_to_space(phases, 2)
    full = (2 * (inputs.shape[1] + taps - 1), 2 * (inputs.shape[2] + taps - 1))
    extra = [max(0, want - have) for want, have in zip(size, full)]
    if any(extra):
        outputs = tf.pad(outputs, [[0, 0], [0, extra[0]], [0, extra[1]], [0, 0]])
    return outputs[:, : size[0], : size[1]]


def _filter_gradient(inputs: tf.Tensor, kernel: tf.Tensor, outputs_gradient: tf.Tensor) -> tf.Tensor:
    return tf.raw_ops.Conv2DBackpropFilter(
        input=inputs, filter_sizes=tf.shape(kernel), out_backprop=outputs_gradient,
        strides=[1, 2, 2, 1], padding="VALID",
    )


@tf.custom_gradient
def conv2d_stride2(inputs: tf.Tensor, kernel: tf.Tensor):
    """``tf.nn.conv2d(inputs, kernel, 2, "VALID")`` (``kernel [k, k, in, out]``,
    static spatial shapes) whose input gradient is a sub-pixel convolution
    instead of TensorFlow's ``Conv2DBackpropInput``."""
    outputs = tf.nn.conv2d(inputs, kernel, 2, "VALID")

    def gradient(outputs_gradient):
        inputs_gradient = _transposed(outputs_gradient, kernel, inputs.shape[1:3])
        return inputs_gradient, _filter_gradient(inputs, kernel, outputs_gradient)

    return outputs, gradient


@tf.custom_gradient
def conv2d_transpose_stride2(inputs: tf.Tensor, kernel: tf.Tensor):
    """The VALID stride-2 transposed convolution of ``inputs [N, h, w, in]``
    (static ``h, w``) by ``kernel [k, k, out, in]`` (Keras' ``Conv2DTranspose``
    layout), ``[N, 2(h-1)+k, 2(w-1)+k, out]``, as a sub-pixel convolution;
    its input gradient is the strided convolution."""
    size = (2 * (inputs.shape[1] - 1) + kernel.shape[0], 2 * (inputs.shape[2] - 1) + kernel.shape[1])
    outputs = _transposed(inputs, kernel, size)

    def gradient(outputs_gradient):
        inputs_gradient = tf.nn.conv2d(outputs_gradient, kernel, 2, "VALID")
        return inputs_gradient, _filter_gradient(outputs_gradient, kernel, inputs)

    return outputs, gradient


def _finish(layer: tf_keras.layers.Layer, outputs: tf.Tensor) -> tf.Tensor:
    """Bias and activation of a conv ``layer``, in its compute dtype."""
    bias = tf.cast(layer.bias, layer.compute_dtype)
    return layer.activation(tf.nn.bias_add(outputs, bias))


def _conv(layer: tf_keras.layers.Conv2D, inputs: tf.Tensor, first: bool) -> tf.Tensor:
    """A built VALID stride-2 ``Conv2D`` layer, computed fast (see module docs)."""
    inputs = tf.cast(inputs, layer.compute_dtype)
    kernel = tf.cast(layer.kernel, layer.compute_dtype)
    # The frames need no gradient: the first layer is a plain convolution.
    outputs = tf.nn.conv2d(inputs, kernel, 2, "VALID") if first else conv2d_stride2(inputs, kernel)
    return _finish(layer, outputs)


def _deconv(layer: tf_keras.layers.Conv2DTranspose, inputs: tf.Tensor) -> tf.Tensor:
    """A built VALID stride-2 ``Conv2DTranspose`` layer, computed fast (see module docs)."""
    inputs = tf.cast(inputs, layer.compute_dtype)
    kernel = tf.cast(layer.kernel, layer.compute_dtype)  # [k, k, out, in]
    if inputs.shape[1] == 1 and inputs.shape[2] == 1:  # one matmul
        size, out_channels, in_channels = kernel.shape[0], kernel.shape[2], kernel.shape[3]
        matrix = tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [in_channels, -1])
        outputs = tf.reshape(tf.matmul(inputs[:, 0, 0], matrix), [-1, size, kernel.shape[1], out_channels])
    else:
        outputs = conv2d_transpose_stride2(inputs, kernel)
    return _finish(layer, outputs)


class Encoder(tf.Module):
    """Four 4×4 stride-2 ReLU convolutions of depth ``depth·{1,2,4,8}``.

    ``float32 [..., 64, 64, C]`` → ``[..., embed_size]``.  The last conv map
    is ``2×2×8·depth`` (1024 for depth 32, the published size); a linear
    projection is added only when ``embed_size`` differs from that.
    ``fast``: see the module docs.
    """

    def __init__(self, depth: int, embed_size: int, dtype: str = "float32", fast: bool = True):
        super().__init__(name="encoder")
        self.fast = fast
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
        for index, conv in enumerate(self.convs):
            fast = self.fast and conv.built  # the first call builds the layers
            hidden = _conv(conv, hidden, first=index == 0) if fast else conv(hidden)
        hidden = tf.reshape(hidden, [tf.shape(hidden)[0], -1])
        if self.projection is not None:
            hidden = self.projection(hidden)
        embed = tf.reshape(hidden, tf.concat([leading, tf.shape(hidden)[-1:]], 0))
        return tf.cast(embed, tf.float32)


class Decoder(tf.Module):
    """Dense to ``embed_size``, then transposed convolutions 5,5,6,6 (stride 2).

    ``[..., F]`` → mean frame ``float32 [..., 64, 64, channels]``; the
    likelihood is a unit-variance Gaussian around it.  ``fast``: see the
    module docs.
    """

    def __init__(
        self, depth: int, embed_size: int, channels: int, dtype: str = "float32", fast: bool = True
    ):
        super().__init__(name="decoder")
        self.embed_size = embed_size
        self.fast = fast
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
            fast = self.fast and deconv.built  # the first call builds the layers
            hidden = _deconv(deconv, hidden) if fast else deconv(hidden)
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
