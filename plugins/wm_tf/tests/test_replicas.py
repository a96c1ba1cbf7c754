"""wm_tf.replicas: batches padded and split for a strategy's replicas."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from wm_tf.replicas import pad_to_multiple, split_across_replicas


def test_pad_to_multiple_repeats_the_last_row():
    rows = np.array([[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(pad_to_multiple(rows, 2), [[1, 2], [3, 4], [5, 6], [5, 6]])
    np.testing.assert_array_equal(pad_to_multiple(rows, 5)[3:], [[5, 6], [5, 6]])
    assert pad_to_multiple(rows, 3) is rows


def test_one_replica_gets_the_whole_batch_and_sizes_must_agree():
    strategy = tf.distribute.get_strategy()
    arrays = {"image": np.arange(6).reshape(3, 2), "reward": np.array([0.5, 1.5, 2.5])}
    shards = split_across_replicas(strategy, arrays)
    np.testing.assert_array_equal(shards["image"].numpy(), arrays["image"])
    np.testing.assert_array_equal(shards["reward"].numpy(), arrays["reward"])
    with pytest.raises(ValueError, match="must agree"):
        split_across_replicas(strategy, {"image": np.zeros((3, 2)), "reward": np.zeros(2)})
