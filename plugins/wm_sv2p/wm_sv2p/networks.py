"""The layers of the SV2P frame predictor (Finn et al. 2016, CDNA).

* :class:`ConvLSTM` — a convolutional LSTM cell with layer-normalised output.
* :func:`conv2d_same` — a stride-1 ``SAME`` convolution whose input gradient
  is a forward convolution (faster on CPU than ``Conv2DBackpropInput``;
  docs/design.md).
* :class:`CDNA` — predicts ``num_masks`` normalised ``k x k`` kernels per
  example from the bottleneck.
* :func:`composite` — blends the previous frame, a generated image and the
  kernels' transformations of the previous frame with softmax masks.

All tensors are channels-last ``float32``; images are in ``[0, 1]``.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

__all__ = ["ConvLSTM", "CDNA", "composite", "conv2d_same"]

# Finn et al. keep kernel weights away from zero before normalising.
_RELU_SHIFT = 1e-12


@tf.custom_gradient
def conv2d_same(inputs: tf.Tensor, kernel: tf.Tensor):
    """``tf.nn.conv2d(inputs, kernel, 1, "SAME")`` for an odd ``kernel [k, k, in, out]``.

    The input gradient is the convolution of the output gradient with the
    kernel turned 180 degrees and its channels swapped (``SAME`` pads an odd
    kernel by ``(k - 1) / 2`` on every side, so the adjoint pads the same):
    a forward convolution, which TensorFlow's CPU kernels run faster than
    ``Conv2DBackpropInput``.  The kernel gradient is TensorFlow's.
    """
    outputs = tf.nn.conv2d(inputs, kernel, 1, "SAME")

    def gradient(outputs_gradient):
        turned = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
        inputs_gradient = tf.nn.conv2d(outputs_gradient, turned, 1, "SAME")
        kernel_gradient = tf.raw_ops.Conv2DBackpropFilter(
            input=inputs, filter_sizes=tf.shape(kernel), out_backprop=outputs_gradient,
            strides=[1, 1, 1, 1], padding="SAME",
        )
        return inputs_gradient, kernel_gradient

    return outputs, gradient


class ConvLSTM(tf_keras.layers.Layer):
    """One convolutional LSTM cell; ``state = (cell, hidden)``, each ``[B, h, w, channels]``.

    The gates come from one ``kernel x kernel`` convolution over the input
    and the previous hidden state; the forget gate is biased by +1.  The
    hidden output is layer-normalised over the channels (as in the SV2P
    reference implementation) and is also the returned output.  With
    ``fast`` (and an odd kernel) the gate convolution runs through
    :func:`conv2d_same` (the same values; the layer's variables).
    """

    def __init__(self, channels: int, kernel: int = 5, fast: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.fast = fast and kernel % 2 == 1
        self.gates = tf_keras.layers.Conv2D(4 * channels, kernel, padding="same")
        self.norm = tf_keras.layers.LayerNormalization()

    def zero_state(self, batch: tf.Tensor, height: int, width: int) -> tuple[tf.Tensor, tf.Tensor]:
        zeros = tf.zeros([batch, height, width, self.channels])
        return zeros, zeros

    def call(self, inputs: tf.Tensor, state: tuple[tf.Tensor, tf.Tensor]):
        cell, hidden = state
        stacked = tf.concat([inputs, hidden], axis=-1)
        if self.fast and self.gates.built:
            gates = tf.nn.bias_add(conv2d_same(stacked, self.gates.kernel), self.gates.bias)
        else:  # the first call builds the layer
            gates = self.gates(stacked)
        input_gate, forget_gate, output_gate, candidate = tf.split(gates, 4, axis=-1)
        cell = tf.sigmoid(forget_gate + 1.0) * cell + tf.sigmoid(input_gate) * tf.tanh(candidate)
        hidden = self.norm(tf.sigmoid(output_gate) * tf.tanh(cell))
        return hidden, (cell, hidden)


class CDNA(tf_keras.layers.Layer):
    """Convolutional dynamic neural advection: per-example transformation kernels.

    ``call(bottleneck [B, h, w, D])`` returns ``[B, k, k, num_masks]``
    kernels predicted from the bottleneck, made non-negative and normalised
    to sum to one, so each transformation moves pixel mass without creating
    it.  :func:`composite` applies them to the previous frame.
    """

    def __init__(self, num_masks: int, kernel: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.num_masks = num_masks
        self.kernel = kernel
        self.kernels = tf_keras.layers.Dense(num_masks * kernel * kernel)

    def call(self, bottleneck: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(bottleneck)[0]
        flat = tf.reshape(bottleneck, [batch, -1])
        raw = tf.reshape(self.kernels(flat), [batch, self.kernel, self.kernel, self.num_masks])
        positive = tf.nn.relu(raw - _RELU_SHIFT) + _RELU_SHIFT
        return positive / tf.reduce_sum(positive, axis=[1, 2], keepdims=True)


def apply_kernels(frame: tf.Tensor, kernels: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Convolve each example's frame with its own kernels and blend the results.

    ``frame [B, H, W, C]``, ``kernels [B, k, k, M]``, per-pixel ``weights
    [B, H, W, M]`` → ``[B, H, W, C]``:
    ``sum_m weights[..., m] * conv(frame, kernels[..., m])`` (zero padding).

    The batch is moved into the channel axis so a single depthwise
    convolution applies every example's kernels to that example only; the
    blend is done in that channel-major layout, so the ``M`` transformed
    frames are never transposed back.
    """
    batch = tf.shape(frame)[0]
    height, width, channels = frame.shape[1], frame.shape[2], frame.shape[3]
    num_masks = kernels.shape[-1]
    per_channel = tf.transpose(frame, [3, 1, 2, 0])  # [C, H, W, B]
    depthwise = tf.transpose(kernels, [1, 2, 0, 3])  # [k, k, B, M]
    moved = tf.nn.depthwise_conv2d(per_channel, depthwise, [1, 1, 1, 1], "SAME")
    moved = tf.reshape(moved, [channels, height, width, batch, num_masks])
    pixel_weights = tf.transpose(weights, [1, 2, 0, 3])  # [H, W, B, M]
    blended = tf.reduce_sum(moved * pixel_weights[None], axis=-1)  # [C, H, W, B]
    return tf.transpose(blended, [3, 1, 2, 0])


def composite(
    frame: tf.Tensor, generated: tf.Tensor, kernels: tf.Tensor, mask_logits: tf.Tensor
) -> tf.Tensor:
    """The next frame: ``softmax(mask_logits [B, H, W, M + 2])`` blends the
    previous ``frame`` (mask 0, the static background), the ``generated``
    image (mask 1) and the ``M`` transformations of ``frame`` by ``kernels
    [B, k, k, M]`` (masks ``2 ..``).

    ``frame`` and ``generated`` are ``[B, H, W, C]``; returns ``[B, H, W, C]``,
    every pixel a convex combination of the candidates' pixels there.
    """
    masks = tf.nn.softmax(mask_logits, axis=-1)
    return (
        masks[..., :1] * frame
        + masks[..., 1:2] * generated
        + apply_kernels(frame, kernels, masks[..., 2:])
    )
