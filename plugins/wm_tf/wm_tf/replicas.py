"""Batches for the replicas of a ``tf.distribute`` strategy."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

__all__ = ["pad_to_multiple", "split_across_replicas"]


def split_across_replicas(
    strategy: tf.distribute.Strategy, arrays: Mapping[str, np.ndarray]
) -> tf.distribute.DistributedValues:
    """``{key: array [B, ...]}`` as per-replica ``{key: tensor [B / replicas, ...]}``.

    Replica ``r`` gets rows ``r * B / R .. (r + 1) * B / R``.  Raises
    ``ValueError`` when ``B`` is not a multiple of the number of replicas.
    """
    replicas = strategy.num_replicas_in_sync
    sizes = {len(value) for value in arrays.values()}
    if len(sizes) != 1 or next(iter(sizes)) % replicas:
        raise ValueError(
            f"batch sizes {sorted(sizes)} must agree and be a multiple of the {replicas} replicas"
        )
    shards = {key: np.split(np.asarray(value), replicas) for key, value in arrays.items()}

    def shard(context: tf.distribute.ValueContext) -> dict[str, tf.Tensor]:
        index = context.replica_id_in_sync_group
        return {key: tf.constant(parts[index]) for key, parts in shards.items()}

    return strategy.experimental_distribute_values_from_function(shard)


def pad_to_multiple(array: np.ndarray, multiple: int) -> np.ndarray:
    """``array`` with its last row repeated until its length is a multiple of ``multiple``."""
    missing = -len(array) % multiple
    return np.concatenate([array, np.repeat(array[-1:], missing, axis=0)]) if missing else array
