"""Moved to the ``wm-tf`` distribution: :mod:`wm_tf.replicas` and :mod:`wm_tf.checkpoints`.

Reading a name here warns (:class:`DeprecationWarning`) and returns it from
its new place; that needs ``wm-tf`` installed.  Importing this module imports
no TensorFlow.
"""

from __future__ import annotations

from wm_core.deprecation import moved_attributes

__getattr__ = moved_attributes(
    __name__,
    {
        "split_across_replicas": "wm_tf.replicas.split_across_replicas",
        "pad_to_multiple": "wm_tf.replicas.pad_to_multiple",
        "TrainingCheckpoints": "wm_tf.checkpoints.TrainingCheckpoints",
        "CheckpointWatcher": "wm_tf.checkpoints.CheckpointWatcher",
    },
)
