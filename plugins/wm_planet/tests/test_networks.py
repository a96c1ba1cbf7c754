"""The fast conv formulations equal TensorFlow's ops and the Keras layers (values and gradients)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from wm_planet import networks
from wm_planet.model import RecurrentStateSpaceModel


def _gradients(function, *tensors):
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs = function(*tensors)
        # A fixed random weighting: every output element's gradient matters.
        weights = tf.random.stateless_normal(tf.shape(outputs), [1, 2])
        objective = tf.reduce_sum(outputs * weights)
    return outputs, tape.gradient(objective, tensors)


def _assert_close(actual, expected, tolerance=1e-5):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance * scale)


@pytest.mark.parametrize("size, kernel, channels", [(64, 4, (3, 8)), (31, 4, (8, 16)), (14, 4, (4, 8)), (6, 4, (8, 4)), (13, 5, (4, 6))])
def test_stride2_conv_equals_tensorflows_conv_and_its_gradients(size, kernel, channels):
    inputs = tf.random.stateless_normal([2, size, size, channels[0]], [0, size])
    weights = tf.random.stateless_normal([kernel, kernel, *channels], [1, size])
    fast = _gradients(networks.conv2d_stride2, inputs, weights)
    plain = _gradients(lambda x, w: tf.nn.conv2d(x, w, 2, "VALID"), inputs, weights)
    _assert_close(fast[0], plain[0])
    for actual, expected in zip(fast[1], plain[1]):
        _assert_close(actual, expected)


@pytest.mark.parametrize("size, kernel, channels", [(1, 5, (16, 8)), (5, 5, (8, 6)), (13, 6, (6, 4)), (30, 6, (4, 3)), (4, 3, (2, 5))])
def test_stride2_transposed_conv_equals_tensorflows_and_its_gradients(size, kernel, channels):
    out_channels, in_channels = channels
    inputs = tf.random.stateless_normal([2, size, size, in_channels], [2, size])
    weights = tf.random.stateless_normal([kernel, kernel, out_channels, in_channels], [3, size])
    output_size = 2 * (size - 1) + kernel
    fast = _gradients(networks.conv2d_transpose_stride2, inputs, weights)
    plain = _gradients(
        lambda x, w: tf.nn.conv2d_transpose(x, w, [2, output_size, output_size, out_channels], 2, "VALID"),
        inputs, weights,
    )
    _assert_close(fast[0], plain[0])
    for actual, expected in zip(fast[1], plain[1]):
        _assert_close(actual, expected)


def _network_gradients(network, inputs):
    with tf.GradientTape() as tape:
        outputs = network(inputs)
        objective = tf.reduce_sum(outputs * tf.random.stateless_normal(tf.shape(outputs), [4, 5]))
    return outputs, tape.gradient(objective, network.trainable_variables)


@pytest.mark.parametrize("depth, embed_size", [(32, 1024), (4, 32)])
def test_fast_encoder_and_decoder_equal_the_keras_layers(depth, embed_size):
    encoder = networks.Encoder(depth, embed_size)
    decoder = networks.Decoder(depth, embed_size, 3)
    frames = tf.random.stateless_uniform([2, 3, 64, 64, 3], [6, 7]) - 0.5
    features = tf.random.stateless_normal([2, 3, 40], [8, 9])
    encoder(frames), decoder(features)  # builds the layers
    for network, inputs in ((encoder, frames), (decoder, features)):
        network.fast = True
        fast = _network_gradients(network, inputs)
        network.fast = False
        keras = _network_gradients(network, inputs)
        _assert_close(fast[0], keras[0])
        for actual, expected in zip(fast[1], keras[1]):
            _assert_close(actual, expected)


def test_the_fast_loss_and_gradients_equal_the_keras_ones(task, tiny_model):
    """The whole training objective, fast convolutions against the Keras layers."""
    model = tiny_model(task)
    model.build()
    rng = np.random.default_rng(0)
    batch = {
        "image": tf.constant(rng.integers(0, 256, (3, 4, 64, 64, 3), dtype=np.uint8)),
        "action": tf.constant(rng.uniform(-1, 1, (3, 4, 1)).astype(np.float32)),
        "reward": tf.constant(rng.normal(size=(3, 4)).astype(np.float32)),
    }

    def loss_and_gradients(fast: bool):
        model.encoder.fast = model.decoder.fast = fast
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model.loss(batch)[0])
        return loss, tape.gradient(loss, model.trainable_variables)

    fast_loss, fast_gradients = loss_and_gradients(True)
    keras_loss, keras_gradients = loss_and_gradients(False)
    np.testing.assert_allclose(float(fast_loss), float(keras_loss), rtol=1e-6)
    for variable, actual, expected in zip(model.trainable_variables, fast_gradients, keras_gradients):
        assert actual is not None, variable.name
        _assert_close(actual, expected, tolerance=1e-4)


def test_fast_networks_keep_the_checkpoint_layout(task):
    """Same variables, same shapes: checkpoints of the Keras-layer networks load unchanged."""
    model = RecurrentStateSpaceModel(task=task)
    model.build()
    kernels = [conv.kernel.shape.as_list() for conv in model.decoder.deconvs]
    assert kernels == [[5, 5, 128, 1024], [5, 5, 64, 128], [6, 6, 32, 64], [6, 6, 3, 32]]
    assert [conv.kernel.shape.as_list() for conv in model.encoder.convs] == [
        [4, 4, 3, 32], [4, 4, 32, 64], [4, 4, 64, 128], [4, 4, 128, 256]]
