"""The conv-LSTMs' fast gate convolution equals TensorFlow's (values and gradients), also in the whole loss."""

from __future__ import annotations


import numpy as np
import pytest
import tensorflow as tf

from wm_sv2p.latent import KLSchedule
from wm_sv2p.model import FramePredictor, sequence_loss
from wm_sv2p.networks import ConvLSTM, conv2d_same


def _close(actual, expected, tolerance=1e-5):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance * scale)


def _weighted_gradients(function, tensors):
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs = function(*tensors)
        objective = tf.reduce_sum(outputs * tf.random.stateless_normal(tf.shape(outputs), [1, 2]))
    return outputs, tape.gradient(objective, tensors)


@pytest.mark.parametrize("kernel, size", [(5, 8), (3, 16), (1, 4), (5, 3)])
def test_conv2d_same_equals_tensorflows_conv_and_its_gradients(kernel, size):
    inputs = tf.random.stateless_normal([2, size, size, 6], [0, kernel])
    weights = tf.random.stateless_normal([kernel, kernel, 6, 4], [1, kernel])
    fast = _weighted_gradients(conv2d_same, [inputs, weights])
    plain = _weighted_gradients(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"), [inputs, weights])
    _close(fast[0], plain[0])
    for actual, expected in zip(fast[1], plain[1]):
        _close(actual, expected)


def test_an_even_kernel_uses_the_keras_convolution():
    assert ConvLSTM(4, 4).fast is False and ConvLSTM(4, 5).fast is True


def test_the_loss_gradients_with_fast_conv_lstms_equal_the_keras_ones():
    network = FramePredictor((64, 64, 3), 1, num_masks=2, base_channels=4)
    network.build_variables(2, 3)
    rng = np.random.default_rng(0)
    chunk = {
        "image": tf.constant(rng.integers(0, 256, (2, 5, 64, 64, 3), dtype=np.uint8)),
        "action": tf.constant(rng.uniform(-1, 1, (2, 5, 1)).astype(np.float32)),
        "reward": tf.constant(rng.normal(size=(2, 5)).astype(np.float32)),
    }
    schedule = KLSchedule(0, 0, 0, 1e-3)

    def loss_and_gradients(fast: bool):
        for lstm in network.lstms:
            lstm.fast = fast
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(sequence_loss(
                network, schedule, chunk, tf.constant(5, tf.int64), 2, 1.0, 0.0,
                tf.constant([3, 4], tf.int64))[0])
        return loss, tape.gradient(loss, network.trainable_variables)

    fast_loss, fast_gradients = loss_and_gradients(True)
    keras_loss, keras_gradients = loss_and_gradients(False)
    np.testing.assert_allclose(float(fast_loss), float(keras_loss), rtol=1e-6)
    for variable, actual, expected in zip(network.trainable_variables, fast_gradients, keras_gradients):
        if expected is None:  # e.g. the reward decoder's statistics
            assert actual is None, variable.name
            continue
        _close(actual, expected, tolerance=1e-4)
